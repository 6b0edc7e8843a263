"""Batch scoring: the ``production`` model scores every active customer, into the lake's ``predictions/`` table.

:func:`score_customers` resolves a ref of the lake (``main`` by default) to a commit, builds the
features of every customer active at the cutoff (the hour after the last data at that commit), loads
the model holding the registry alias (``production`` by default) with the feature spec it was
trained with, and writes one parquet partition per cutoff,
``predictions/dt=YYYY-MM-DD/hr=HH/predictions.parquet``: customer token, churn probability and
label, model name and version, data commit and cutoff. The partition is committed on a run branch
and merged into ``main`` in one step, so ``read_table(ref, "predictions/")`` is one versioned table
of churn risk; scoring the same cutoff again replaces that cutoff's partition.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from dataclasses import dataclass

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnops.data.versioning import DataRepository, open_repository
from churnops.data.versioning.base import DEFAULT_BRANCH
from churnops.model import registry
from churnops.model.predict import LABEL, PROBABILITY, DecisionRule, churn_label, churn_probability
from churnops.model.scoring import load_model
from churnops.model.spec import FeatureSpec
from churnops.platform.buildinfo import git_sha
from churnops.platform.settings import Settings
from churnops.training.features import GHOST_AFTER_HOURS, Activity, build_features, data_span
from churnops.training.resolve import resolve_model
from churnops.training.train import load_activity

logger = logging.getLogger(__name__)

PREDICTIONS_PREFIX = "predictions"
PREDICTION_COLUMNS: tuple[str, ...] = (
    "customer_token",
    PROBABILITY,
    LABEL,
    "model_name",
    "model_version",
    "data_commit",
    "cutoff",
)


@dataclass(frozen=True)
class ScoringResult:
    """One scoring run: what it read, which model scored, where the predictions went."""

    data_commit: str
    cutoff: str
    model_name: str
    model_version: str
    rows: int
    positives: int
    path: str
    commit_id: str


def scoring_cutoff(events: Activity, subscriptions: pd.DataFrame) -> pd.Timestamp:
    """The hour after the last timestamp in the tables: features then use every row of the commit."""
    _, end = data_span(events, subscriptions)
    return end.floor("h") + pd.Timedelta(hours=1)


def predictions_path(cutoff: pd.Timestamp) -> str:
    """Lake path of the predictions partition of one cutoff."""
    return f"{PREDICTIONS_PREFIX}/dt={cutoff:%Y-%m-%d}/hr={cutoff:%H}/predictions.parquet"


def load_registered_model(settings: Settings, ref: str) -> tuple[object, FeatureSpec, str, DecisionRule]:
    """The registered model ``ref`` (an alias or a version) names, the feature spec logged with it, its version and
    its decision rule."""
    resolved = resolve_model(settings, ref)
    loaded = load_model(resolved.model_uri, registry.use_tracking(settings).tracking_uri)
    spec = FeatureSpec.from_dict(mlflow.artifacts.load_dict(f"runs:/{resolved.run_id}/feature_spec.json"))
    return loaded.pipeline, spec, resolved.version, loaded.rule


def predictions_frame(  # pylint: disable=too-many-arguments,too-many-positional-arguments  # one table's inputs
    model: object,
    spec: FeatureSpec,
    features: pd.DataFrame,
    model_name: str,
    version: str,
    data_commit: str,
    rule: DecisionRule | None = None,
) -> pd.DataFrame:
    """The predictions table for ``features`` (one row per customer at one cutoff); ``churn_label`` by the
    model's decision ``rule``."""
    probability = churn_probability(model, features[spec.columns])
    return pd.DataFrame(
        {
            "customer_token": features["customer_token"].astype(str).to_numpy(),
            PROBABILITY: probability.astype("float64"),
            LABEL: churn_label(probability, (rule or DecisionRule()).threshold).astype("int8"),
            "model_name": model_name,
            "model_version": version,
            "data_commit": data_commit,
            "cutoff": pd.to_datetime(features["cutoff"], utc=True).to_numpy(),
        },
        columns=list(PREDICTION_COLUMNS),
    )


def score_customers(
    settings: Settings,
    data_ref: str = DEFAULT_BRANCH,
    alias: str = "production",
    repo: DataRepository | None = None,
    *,
    version: str | None = None,
) -> ScoringResult:
    """Score every customer active at the head of ``data_ref`` and publish the predictions (see the module doc).

    The model is the version holding ``alias``, or ``version`` when given (what ``alias`` named when the scoring
    pipeline resolved it: the predictions record both).
    """
    repo = repo or open_repository(settings)
    data_commit = repo.resolve(data_ref)
    model, spec, version, rule = load_registered_model(settings, version or alias)
    events, subscriptions = load_activity(repo, data_commit)  # hourly pre-aggregates when the commit has them
    cutoff = scoring_cutoff(events, subscriptions)
    features = build_features(events, subscriptions, cutoff, spec.windows_h, ghost_after_h=GHOST_AFTER_HOURS)
    if features.empty:
        raise ValueError(f"no customer is active at {cutoff:%Y-%m-%dT%H} in commit {data_commit}: nothing to score")
    table = predictions_frame(model, spec, features, settings.registered_model, version, data_commit, rule)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), buffer, compression="zstd")
    path = predictions_path(cutoff)
    metadata = {
        "kind": "predictions",
        "data_commit": data_commit,
        "cutoff": cutoff.isoformat(),
        "model_name": settings.registered_model,
        "model_version": version,
        "model_alias": alias,
        "rows": str(len(table)),
        "code_version": git_sha(settings),
        "summary": json.dumps({"rows": len(table), "positives": int(table["churn_label"].sum())}),
    }
    branch = f"scoring-{cutoff:%Y%m%dT%H}-{uuid.uuid4().hex[:8]}"
    repo.create_branch(branch, source=data_commit)
    try:
        repo.put_objects(branch, {path: buffer.getvalue()})
        repo.commit(branch, f"predictions at {cutoff:%Y-%m-%dT%H} by {settings.registered_model} v{version}", metadata)
        commit = repo.merge(
            branch, into=DEFAULT_BRANCH, message=f"publish predictions {cutoff:%Y-%m-%dT%H}", metadata=metadata
        )
    finally:
        repo.delete_branch(branch)
    logger.info("predictions published", extra={"commit": commit, "rows": len(table), "model_version": version})
    return ScoringResult(
        data_commit=data_commit,
        cutoff=cutoff.isoformat(),
        model_name=settings.registered_model,
        model_version=version,
        rows=len(table),
        positives=int(table["churn_label"].sum()),
        path=path,
        commit_id=commit,
    )
