"""Online features: the features of every customer at the latest cutoff, as one snapshot table in the lake.

The transformer that answers "what is this customer's churn risk?" looks customers up in this
snapshot instead of recomputing features per request. This module builds it with the training feature
code (:func:`churnops.training.features.build_features`): one implementation, so a customer's row
here is exactly the row a model trained on the same windows would see at that cutoff.
"""

from __future__ import annotations

import logging

import pandas as pd

from churnops.data.versioning import DataRepository, open_repository
from churnops.data.versioning.base import DEFAULT_BRANCH
from churnops.model.online import OnlineSnapshot, publish_snapshot
from churnops.model.spec import FeatureSpec
from churnops.platform.alerts import Alert, AlertSink
from churnops.platform.settings import Settings
from churnops.training.config import TrainingConfig
from churnops.training.features import (
    GHOST_AFTER_HOURS,
    Activity,
    build_features,
    data_span,
    feature_spec,
    ghost_customers,
)
from churnops.training.train import load_activity

logger = logging.getLogger(__name__)

SILENT = "silent"  # the inactive status of a ghost: active by its records, silent beyond GHOST_AFTER_HOURS


def latest_cutoff(events: Activity, subscriptions: pd.DataFrame) -> pd.Timestamp:
    """The end of the data, rounded up to the hour: every published event lies before it."""
    _, end = data_span(events, subscriptions)
    cutoff = end.ceil("h")
    return cutoff if cutoff > end else cutoff + pd.Timedelta(hours=1)


def inactive_customers(subscriptions: pd.DataFrame, active_tokens: pd.Index, cutoff: pd.Timestamp) -> pd.Series:
    """The latest status before ``cutoff`` of every customer in ``subscriptions`` not in ``active_tokens``."""
    updated = pd.to_datetime(subscriptions["updated_at"], utc=True, errors="coerce")
    known = subscriptions.loc[updated < cutoff, ["customer_token", "status"]].assign(_t=updated[updated < cutoff])
    latest = known.sort_values("_t", kind="stable").drop_duplicates("customer_token", keep="last")
    latest = latest[~latest["customer_token"].astype(str).isin(active_tokens)]
    status = latest["status"].fillna("unknown").astype(str)
    return pd.Series(
        status.to_numpy(), index=pd.Index(latest["customer_token"].astype(str), name="customer_token"), name="status"
    ).sort_index()


def build_snapshot(
    events: Activity, subscriptions: pd.DataFrame, spec: FeatureSpec, cutoff: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, pd.Series, pd.Timestamp]:
    """Feature rows (indexed by token) of customers active at ``cutoff`` (default: the latest), and the inactive.

    Ghosts (silent for more than ``GHOST_AFTER_HOURS`` with no cancellation) are not scored: they are
    listed as inactive with the status ``silent``.
    """
    cutoff = cutoff if cutoff is not None else latest_cutoff(events, subscriptions)
    frame = build_features(events, subscriptions, cutoff, windows=spec.windows_h, ghost_after_h=GHOST_AFTER_HOURS)
    features = frame.set_index("customer_token")[spec.columns]
    inactive = inactive_customers(subscriptions, features.index, cutoff)
    ghosts = ghost_customers(events, subscriptions, cutoff, GHOST_AFTER_HOURS)["customer_token"]
    inactive.loc[inactive.index.isin(ghosts)] = SILENT
    return features, inactive, cutoff


def refresh_online_features(
    settings: Settings,
    data_commit: str | None = None,
    repo: DataRepository | None = None,
    alerts: AlertSink | None = None,
) -> OnlineSnapshot:
    """Build the snapshot at ``data_commit`` (default: the head of ``main``) and publish it.

    Ghost customers left out of it raise a ``ghost_customers`` alert (a count, no identifier): their
    cancellations may be in a billing export that never arrived.
    """
    repo = repo or open_repository(settings)
    commit = repo.resolve(data_commit or DEFAULT_BRANCH)
    events, subscriptions = load_activity(repo, commit)  # as training reads it: hourly pre-aggregates when complete
    spec = feature_spec(TrainingConfig.from_settings(settings).windows_h)
    features, inactive, cutoff = build_snapshot(events, subscriptions, spec)
    snapshot = OnlineSnapshot(features, inactive, commit, cutoff, spec, commit_id="")
    commit_id = publish_snapshot(repo, snapshot)
    ghosts = int((inactive == SILENT).sum())
    if ghosts:
        (alerts or AlertSink(settings)).emit(
            Alert(
                kind="ghost_customers",
                message=f"{ghosts} customers active by their records have been silent for more than "
                f"{GHOST_AFTER_HOURS:g} h with no cancellation (a lost billing export?): left out of scoring and "
                "labels until heard of again",
                counts={"ghosts": ghosts, "active": len(features)},
            )
        )
    logger.info(
        "published online features: %d active customers at %s (data commit %s)",
        len(features),
        cutoff.isoformat(),
        commit,
    )
    return OnlineSnapshot(features, inactive, commit, cutoff, spec, commit_id)
