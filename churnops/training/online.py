"""Online features: the features of every customer at the latest cutoff, as one snapshot table in the lake.

The transformer that answers "what is this customer's churn risk?" looks customers up in this
snapshot instead of recomputing features per request. The snapshot is built by the training feature
code (:func:`churnops.training.features.build_features`): one implementation, so a customer's row
here is exactly the row a model trained on the same windows would see at that cutoff.

Layout on the lake's ``features`` branch (which never merges into ``main``):

- ``features/online/snapshot.parquet``: one row per customer active at the cutoff,
  ``customer_token`` + the feature spec's columns;
- ``features/online/inactive.parquet``: customers known to the lake but not active at the cutoff
  (``customer_token``, ``status``), so a lookup can say "cancelled" rather than "unknown";
- ``features/online/manifest.json``: the data commit and cutoff the snapshot was built at, the
  feature spec, and the row counts.

Each publish is one commit on ``features`` (through a run branch and a merge), so readers see
either the old or the new snapshot, never a mix; the commit id identifies the snapshot.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnops.data.versioning import DataRepository, NotFoundError, open_repository
from churnops.data.versioning.base import DEFAULT_BRANCH
from churnops.platform.alerts import Alert, AlertSink
from churnops.platform.settings import Settings
from churnops.training.features import (
    GHOST_AFTER_HOURS,
    FeatureSpec,
    build_features,
    data_span,
    feature_spec,
    ghost_customers,
)
from churnops.training.train import FEATURES_BRANCH, TrainingConfig, load_tables

logger = logging.getLogger(__name__)

ONLINE_PREFIX = "features/online"
SNAPSHOT_PATH = f"{ONLINE_PREFIX}/snapshot.parquet"
INACTIVE_PATH = f"{ONLINE_PREFIX}/inactive.parquet"
MANIFEST_PATH = f"{ONLINE_PREFIX}/manifest.json"
SILENT = "silent"  # the inactive status of a ghost: active by its records, silent beyond GHOST_AFTER_HOURS


@dataclass(frozen=True)
class OnlineSnapshot:
    """One published snapshot: feature rows by customer token, and where they come from."""

    features: pd.DataFrame  # indexed by customer_token, columns = spec.columns
    inactive: pd.Series  # status by customer_token, for customers not active at the cutoff
    data_commit: str
    cutoff: pd.Timestamp
    spec: FeatureSpec
    commit_id: str  # the features-branch commit that holds this snapshot

    def manifest(self) -> dict[str, Any]:
        """The JSON-ready description stored beside the tables."""
        return {
            "data_commit": self.data_commit,
            "cutoff": self.cutoff.isoformat(),
            "spec": self.spec.to_dict(),
            "rows": len(self.features),
            "inactive_rows": len(self.inactive),
        }


def latest_cutoff(events: pd.DataFrame, subscriptions: pd.DataFrame) -> pd.Timestamp:
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
    events: pd.DataFrame, subscriptions: pd.DataFrame, spec: FeatureSpec, cutoff: pd.Timestamp | None = None
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


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=True), buffer)
    return buffer.getvalue()


def publish_snapshot(repo: DataRepository, snapshot: OnlineSnapshot) -> str:
    """Commit ``snapshot`` to the ``features`` branch in one merge; return the commit id holding it."""
    if not repo.branch_exists(FEATURES_BRANCH):
        repo.create_branch(FEATURES_BRANCH, source=snapshot.data_commit)
    run_branch = f"online-{uuid.uuid4().hex[:12]}"
    repo.create_branch(run_branch, source=FEATURES_BRANCH)
    metadata = {"source_commit": snapshot.data_commit, "cutoff": snapshot.cutoff.isoformat(), "kind": "online"}
    try:
        repo.put_objects(
            run_branch,
            {
                SNAPSHOT_PATH: _parquet(snapshot.features),
                INACTIVE_PATH: _parquet(snapshot.inactive.to_frame()),
                MANIFEST_PATH: json.dumps(snapshot.manifest(), indent=2, sort_keys=True).encode(),
            },
        )
        repo.commit(
            run_branch, f"online features at {snapshot.cutoff.isoformat()} of {snapshot.data_commit[:12]}", metadata
        )
        return repo.merge(run_branch, into=FEATURES_BRANCH, message="online feature snapshot", metadata=metadata)
    finally:
        repo.delete_branch(run_branch)


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
    events, subscriptions = load_tables(repo, commit)
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


def snapshot_commit(repo: DataRepository) -> str | None:
    """The commit id the ``features`` branch points at, or None when no features were ever published."""
    return repo.head(FEATURES_BRANCH) if repo.branch_exists(FEATURES_BRANCH) else None


def load_snapshot(repo: DataRepository, ref: str | None = None) -> OnlineSnapshot:
    """The snapshot at ``ref`` (default: the head of ``features``); :class:`NotFoundError` if none was published."""
    commit = ref or snapshot_commit(repo)
    if commit is None:
        raise NotFoundError("no online feature snapshot: run `churnops features online` after an ingest")
    commit = repo.resolve(commit)
    manifest = json.loads(repo.get_object(commit, MANIFEST_PATH))
    features = pq.read_table(io.BytesIO(repo.get_object(commit, SNAPSHOT_PATH))).to_pandas()
    inactive = pq.read_table(io.BytesIO(repo.get_object(commit, INACTIVE_PATH))).to_pandas()["status"]
    return OnlineSnapshot(
        features=features,
        inactive=inactive,
        data_commit=manifest["data_commit"],
        cutoff=pd.Timestamp(manifest["cutoff"]),
        spec=FeatureSpec.from_dict(manifest["spec"]),
        commit_id=commit,
    )
