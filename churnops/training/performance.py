"""Performance on matured labels: how the production model ranks and calibrates once the truth is known.

A prediction made at a cutoff can be judged once its label window ``(cutoff, cutoff + horizon]`` has
passed. :func:`matured_performance` builds, from the lake's data after the model's training data, every
hourly cutoff whose window lies inside the data (the features and labels of training, ghosts left out),
scores them with the model and measures what a retention team relies on:

- ROC-AUC (ranking), expected calibration error and the mean probability against the observed churn
  rate (calibration);
- precision at k: the share of churners among the ``k_share`` highest-scored customers of each cutoff,
  averaged over the cutoffs (the contact list a team with that capacity would work through).

:func:`check_matured_performance` compares them with limits and raises a ``performance`` alert when
the model has degraded: ROC-AUC below ``min_auc``, or calibration error above ``max_calibration_error``.

:func:`check_production_performance` runs them on a registered version (``production`` by default) and the
head of the lake's ``main`` (or another ref): the period starts where the version's labels end (its ``labels_through``
tag), the limits are the settings' ``performance_min_auc`` and ``performance_max_calibration_error``, k is
``retention_capacity_share``, and the figures go to an MLflow run of the monitoring experiment. When no
label has matured since, or the matured ones hold one class only, it says so (:class:`NotYetMatured`) and
judges nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from churnops.data.versioning import DataRepository, open_repository
from churnops.errors import RegistryError
from churnops.model import registry
from churnops.model.scoring import load_model
from churnops.platform.alerts import Alert, AlertSink
from churnops.platform.settings import Settings
from churnops.training import evaluate
from churnops.training.config import LABELS_THROUGH_TAG, TrainingConfig
from churnops.training.features import (
    LABEL,
    Activity,
    InsufficientData,
    build_training_set,
    data_span,
    to_utc,
)
from churnops.training.train import load_tables, published_at

logger = logging.getLogger(__name__)


class NotYetMatured(InsufficientData):
    """No label has matured since the model's data, or the matured labels hold one class only: nothing to judge
    yet (a state that passes with time, not an error)."""


@dataclass(frozen=True)
class MaturedPerformance:
    """The model's quality on the matured cutoffs of a period."""

    first_cutoff: str
    last_cutoff: str
    cutoffs: int
    rows: int
    churners: int
    roc_auc: float
    calibration_error: float
    mean_probability: float
    churn_rate: float
    precision_at_k: float
    k_share: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def matured_cutoffs(
    events: Activity, subscriptions: pd.DataFrame, since: Any, horizon_h: float, step_h: int = 1
) -> list[pd.Timestamp]:
    """Hourly cutoffs from ``since`` (rounded up to the hour) whose label window ends by the end of the data (rounded
    up to the hour, as for training)."""
    _, end = data_span(events, subscriptions)
    first = to_utc(since).ceil("h")
    last = end.ceil("h") - pd.Timedelta(hours=horizon_h)  # as training's choose_cutoffs
    if last < first:
        raise NotYetMatured(
            f"no label has matured since {first}: the data ends at {end} and a label needs {horizon_h:g} h after its "
            "cutoff"
        )
    count = int((last - first) // pd.Timedelta(hours=step_h)) + 1
    return [first + pd.Timedelta(hours=step_h * i) for i in range(count)]


def precision_at_k(frame: pd.DataFrame, probability: np.ndarray, k_share: float) -> float:
    """The share of churners among the top ``k_share`` of each cutoff's rows by probability, averaged over cutoffs."""
    if not 0 < k_share <= 1:
        raise ValueError(f"k_share must be in (0, 1], got {k_share}")
    scored = pd.DataFrame({"cutoff": frame["cutoff"].to_numpy(), "p": probability, "y": frame[LABEL].to_numpy()})
    shares = []
    for _, rows in scored.groupby("cutoff", sort=True):
        k = max(1, math.ceil(k_share * len(rows)))
        shares.append(float(rows.nlargest(k, "p", keep="first")["y"].mean()))
    return float(np.mean(shares))


def matured_performance(
    model: Any,
    events: Activity,
    subscriptions: pd.DataFrame,
    since: Any,
    *,
    columns: Sequence[str],
    config: TrainingConfig | None = None,
) -> MaturedPerformance:
    """Score every matured cutoff since ``since`` with ``model`` (its input ``columns``) and measure it, with the
    label horizon, the feature windows and k (``capacity_share``) of ``config`` (the defaults when None)."""
    config = config or TrainingConfig()
    k_share = config.capacity_share
    cutoffs = matured_cutoffs(events, subscriptions, since, config.horizon_h)
    frame = build_training_set(events, subscriptions, cutoffs, horizon=config.horizon_h, windows=config.windows_h)
    labels = frame[LABEL].to_numpy()
    if frame.empty or labels.min() == labels.max():
        raise NotYetMatured(
            f"the {len(cutoffs)} matured cutoffs from {cutoffs[0].isoformat()} hold {len(frame)} rows of one class "
            "only: ROC-AUC needs churners and customers who stayed"
        )
    probability = evaluate.churn_probability(model, frame[list(columns)])
    metrics = evaluate.classification_metrics(labels, probability)
    return MaturedPerformance(
        first_cutoff=cutoffs[0].isoformat(),
        last_cutoff=cutoffs[-1].isoformat(),
        cutoffs=len(cutoffs),
        rows=len(frame),
        churners=int(labels.sum()),
        roc_auc=metrics["roc_auc"],
        calibration_error=metrics["calibration_error"],
        mean_probability=float(probability.mean()),
        churn_rate=float(labels.mean()),
        precision_at_k=precision_at_k(frame, probability, k_share),
        k_share=k_share,
    )


def degradations(performance: MaturedPerformance, min_auc: float, max_calibration_error: float) -> list[str]:
    """What is wrong with ``performance`` against the limits (empty when nothing is)."""
    problems = []
    if math.isnan(performance.roc_auc) or performance.roc_auc < min_auc:
        problems.append(f"ROC-AUC {performance.roc_auc:.3f} below {min_auc:.3f}")
    if performance.calibration_error > max_calibration_error:
        problems.append(
            f"calibration error {performance.calibration_error:.3f} above {max_calibration_error:.3f} (mean "
            f"probability {performance.mean_probability:.3f}, churn rate {performance.churn_rate:.3f})"
        )
    return problems


def check_matured_performance(  # pylint: disable=too-many-arguments  # the figures, the limits, who is judged
    performance: MaturedPerformance,
    alerts: AlertSink,
    min_auc: float,
    max_calibration_error: float,
    model: str,
    run_id: str | None = None,
) -> list[str]:
    """Raise a ``performance`` alert when the model degraded on matured labels; return the problems found."""
    problems = degradations(performance, min_auc, max_calibration_error)
    if problems:
        alerts.emit(
            Alert(
                kind="performance",
                message=f"{model} on {performance.cutoffs} matured cutoffs from {performance.first_cutoff}: "
                + "; ".join(problems),
                counts={"rows": performance.rows, "churners": performance.churners},
                run_id=run_id,
            )
        )
    return problems


@dataclass
class PerformanceCheck:  # pylint: disable=too-many-instance-attributes  # the verdict and what it was judged on
    """One check of a registered version on the matured labels of a lake commit.

    ``performance`` is None when nothing has matured yet (``waiting`` says why); then nothing is logged
    and no alert is raised.
    """

    model: str
    version: str
    data_commit: str
    since: str
    min_auc: float
    max_calibration_error: float
    performance: MaturedPerformance | None = None
    waiting: str = ""
    problems: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None

    @property
    def degraded(self) -> bool:
        """Whether the version fell below a limit on its matured labels."""
        return bool(self.problems)


def unseen_since(tags: dict[str, str], repo: DataRepository) -> pd.Timestamp:
    """Where a registered version's unseen labels begin: its ``labels_through`` tag; for a version registered
    without it, the end of its data commit's data (rounded up to the hour, as training's last label window)."""
    if tags.get(LABELS_THROUGH_TAG):
        return to_utc(tags[LABELS_THROUGH_TAG])
    if tags.get("data_commit"):
        _, end = data_span(*load_tables(repo, tags["data_commit"]))
        return end.ceil("h")
    raise RegistryError(
        f"the version has neither a {LABELS_THROUGH_TAG!r} nor a 'data_commit' tag: which labels it never saw is "
        "unknown"
    )


def _log_to_mlflow(settings: Settings, check: PerformanceCheck, performance: MaturedPerformance) -> str:
    registry.use_tracking(settings)
    mlflow.set_experiment(f"{settings.mlflow_experiment}-monitoring")
    tags = {
        "run_kind": "performance",
        "model": check.model,
        "model_version": check.version,
        "data_commit": check.data_commit,
        "labels_since": check.since,
        "performance_degraded": str(check.degraded).lower(),
    }
    with mlflow.start_run(run_name=f"performance-v{check.version}-{performance.last_cutoff[:13]}", tags=tags) as run:
        mlflow.log_params(
            {
                "min_auc": check.min_auc,
                "max_calibration_error": check.max_calibration_error,
                "k_share": performance.k_share,
            }
        )
        figures = performance.to_dict()
        mlflow.log_metrics(
            {
                key: float(value)
                for key, value in figures.items()
                if isinstance(value, (int, float)) and key != "k_share"
            }
        )
        mlflow.log_dict({**figures, "problems": check.problems}, "performance/report.json")
    return str(run.info.run_id)


def check_production_performance(
    settings: Settings,
    model_ref: str = "production",
    repo: DataRepository | None = None,
    alerts: AlertSink | None = None,
    data_ref: str | None = None,
) -> PerformanceCheck:
    """Judge the version holding ``model_ref`` (an alias or a version) on every label matured at ``data_ref``
    (a lake branch or commit; the head of ``main`` by default) since the version's data: log the figures to
    MLflow and raise a ``performance`` alert when it degraded (limits ``performance_min_auc`` and
    ``performance_max_calibration_error``)."""
    repo = repo or open_repository(settings)
    name = settings.registered_model
    uri = f"models:/{name}/{model_ref}" if model_ref.isdigit() else f"models:/{name}@{model_ref}"
    client = registry.client_for(settings)
    loaded = load_model(uri, client.tracking_uri)
    tags = dict(registry.model_version(client, name, loaded.model_version).tags or {})
    since = unseen_since(tags, repo)
    data = published_at(repo, data_ref)
    check = PerformanceCheck(
        name,
        loaded.model_version,
        data.commit,
        since.isoformat(),
        settings.performance_min_auc,
        settings.performance_max_calibration_error,
    )
    try:
        performance = matured_performance(
            loaded.pipeline,
            data.events,
            data.subscriptions,
            since,
            columns=loaded.columns,
            config=TrainingConfig.from_settings(settings),
        )
    except NotYetMatured as exc:
        check.waiting = str(exc)
        logger.info("performance of %s v%s: nothing to judge yet: %s", name, check.version, exc)
        return check
    check.performance = performance
    check.problems = degradations(performance, check.min_auc, check.max_calibration_error)
    check.mlflow_run_id = _log_to_mlflow(settings, check, performance)
    check_matured_performance(
        performance,
        alerts or AlertSink(settings),
        check.min_auc,
        check.max_calibration_error,
        f"{name} v{check.version}",
        run_id=check.mlflow_run_id,
    )
    logger.info(
        "performance of %s v%s on %d matured cutoffs: ROC-AUC %.3f, calibration error %.3f: %s",
        name,
        check.version,
        performance.cutoffs,
        performance.roc_auc,
        performance.calibration_error,
        "degraded" if check.degraded else "within limits",
    )
    return check
