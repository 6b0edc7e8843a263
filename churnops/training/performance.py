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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from churnops.platform.alerts import Alert, AlertSink
from churnops.training import evaluate
from churnops.training.features import (
    DEFAULT_HORIZON_HOURS,
    DEFAULT_WINDOWS_HOURS,
    LABEL,
    InsufficientData,
    build_training_set,
    data_span,
    to_utc,
)


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
    events: pd.DataFrame, subscriptions: pd.DataFrame, since: Any, horizon_h: float, step_h: int = 1
) -> list[pd.Timestamp]:
    """Hourly cutoffs from ``since`` (rounded up to the hour) whose label window ends by the end of the data (rounded
    up to the hour, as for training)."""
    _, end = data_span(events, subscriptions)
    first = to_utc(since).ceil("h")
    last = end.ceil("h") - pd.Timedelta(hours=horizon_h)  # as training's choose_cutoffs
    if last < first:
        raise InsufficientData(
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


def matured_performance(  # pylint: disable=too-many-arguments  # the data, the model and the period's terms
    model: Any,
    events: pd.DataFrame,
    subscriptions: pd.DataFrame,
    since: Any,
    *,
    columns: Sequence[str],
    horizon_h: float = DEFAULT_HORIZON_HOURS,
    windows: Sequence[int] = DEFAULT_WINDOWS_HOURS,
    k_share: float = 0.1,
) -> MaturedPerformance:
    """Score every matured cutoff since ``since`` with ``model`` (its input ``columns``) and measure it."""
    cutoffs = matured_cutoffs(events, subscriptions, since, horizon_h)
    frame = build_training_set(events, subscriptions, cutoffs, horizon=horizon_h, windows=windows)
    probability = evaluate.churn_probability(model, frame[list(columns)])
    labels = frame[LABEL].to_numpy()
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


def check_matured_performance(
    performance: MaturedPerformance, alerts: AlertSink, min_auc: float, max_calibration_error: float, model: str
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
            )
        )
    return problems
