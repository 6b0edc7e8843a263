"""Model evaluation: metrics, plots, feature importance and the promotion gate.

Metrics threshold the churn probability at 0.5. ROC-AUC and PR-AUC are undefined when a split holds
one class only; they are reported as NaN then (never an error), and a NaN never passes the gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.pipeline import Pipeline

from churnops.training.transform import selected_feature_names

THRESHOLD = 0.5
METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")


def churn_probability(model: Any, X: pd.DataFrame) -> np.ndarray:
    """The model's probability of the positive class (churn) for each row."""
    proba = np.asarray(model.predict_proba(X))
    classes = list(getattr(model, "classes_", [0, 1]))
    if 1 not in classes:
        return np.zeros(len(X))
    return proba[:, classes.index(1)]


def classification_metrics(y_true: Any, probability: Any, threshold: float = THRESHOLD) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (at ``threshold``), ROC-AUC and PR-AUC."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(probability, dtype=np.float64)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"need as many probabilities as labels, and at least one (got {p.shape} and {y.shape})")
    predicted = (p >= threshold).astype(int)
    two_classes = np.unique(y).size == 2
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else math.nan,
        "pr_auc": float(average_precision_score(y, p)) if two_classes else math.nan,
    }


def confusion_matrix_figure(y_true: Any, probability: Any, title: str) -> Figure:
    """Confusion matrix at the 0.5 threshold."""
    fig = Figure(figsize=(4.5, 4))
    ax = fig.add_subplot()
    predicted = (np.asarray(probability) >= THRESHOLD).astype(int)
    ConfusionMatrixDisplay.from_predictions(
        np.asarray(y_true).astype(int), predicted, labels=[0, 1], display_labels=["stays", "churns"], ax=ax,
        colorbar=False,
    )
    ax.set_title(title)
    fig.tight_layout()
    return fig


def curve_figure(kind: str, y_true: Any, probability: Any, title: str) -> Figure | None:
    """ROC (``kind="roc"``) or precision-recall (``"pr"``) curve; None for a single-class split."""
    y = np.asarray(y_true).astype(int)
    if np.unique(y).size < 2:
        return None
    fig = Figure(figsize=(4.5, 4))
    ax = fig.add_subplot()
    display = RocCurveDisplay if kind == "roc" else PrecisionRecallDisplay
    display.from_predictions(y, np.asarray(probability), ax=ax, name=title)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def feature_importance(model: Pipeline) -> pd.DataFrame:
    """Importance per input column of the estimator (gain-based for trees, |coefficient| for linear)."""
    estimator = model.named_steps["model"]
    names = selected_feature_names(model)
    if hasattr(estimator, "feature_importances_"):
        values = np.asarray(estimator.feature_importances_, dtype=np.float64)
    elif hasattr(estimator, "coef_"):
        values = np.abs(np.asarray(estimator.coef_, dtype=np.float64)).ravel()
    else:
        raise ValueError(f"{type(estimator).__name__} exposes no feature importance")
    table = pd.DataFrame({"feature": names, "importance": values})
    return table.sort_values(["importance", "feature"], ascending=[False, True], kind="mergesort").reset_index(
        drop=True
    )


def importance_figure(importance: pd.DataFrame, title: str, top: int = 20) -> Figure:
    """Horizontal bar chart of the ``top`` most important columns."""
    shown = importance.head(top).iloc[::-1]
    fig = Figure(figsize=(6, max(2.5, 0.28 * len(shown) + 1)))
    ax = fig.add_subplot()
    ax.barh(shown["feature"], shown["importance"])
    ax.set_title(title)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class GateDecision:
    """Whether a challenger may become ``candidate``, with the figures and reasons behind it."""

    passed: bool
    challenger_auc: float
    baseline_auc: float
    production_auc: float | None = None
    production_version: str | None = None
    margin: float = 0.0
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "passed": self.passed,
            "challenger_auc": self.challenger_auc,
            "baseline_auc": self.baseline_auc,
            "production_auc": self.production_auc,
            "production_version": self.production_version,
            "margin": self.margin,
            "reasons": list(self.reasons),
        }


def gate(
    challenger_auc: float,
    baseline_auc: float,
    production_auc: float | None = None,
    margin: float = 0.01,
    production_version: str | None = None,
) -> GateDecision:
    """Decide on test ROC-AUC: beat the baseline, and be no worse than production by more than ``margin``.

    ``production_auc`` is the current production model scored on the same test rows (None when no
    model holds the ``production`` alias). Every failed check is listed in ``reasons``.
    """
    if margin < 0:
        raise ValueError(f"gate margin must be >= 0, got {margin}")
    reasons = []
    if math.isnan(challenger_auc):
        reasons.append("challenger test ROC-AUC is undefined (test split has one class)")
    elif math.isnan(baseline_auc) or not challenger_auc > baseline_auc:
        reasons.append(f"challenger test ROC-AUC {challenger_auc:.4f} does not beat the baseline's {baseline_auc:.4f}")
    if production_auc is not None and not math.isnan(challenger_auc) and challenger_auc < production_auc - margin:
        reasons.append(
            f"challenger test ROC-AUC {challenger_auc:.4f} is worse than production (version {production_version}) "
            f"{production_auc:.4f} by more than {margin:.4f}"
        )
    return GateDecision(
        passed=not reasons,
        challenger_auc=challenger_auc,
        baseline_auc=baseline_auc,
        production_auc=production_auc,
        production_version=production_version,
        margin=margin,
        reasons=reasons,
    )


def roc_points(y_true: Any, probability: Any, max_points: int = 200) -> dict[str, list[float]]:
    """The ROC curve as ``fpr``, ``tpr`` and ``thresholds`` lists (at most ``max_points``, ends kept).

    Thresholds are finite (scikit-learn's leading ``inf`` becomes 1.0), so the lists are valid JSON
    and what the KFP UI's ROC view expects. Empty lists for a single-class split.
    """
    y = np.asarray(y_true).astype(int)
    if np.unique(y).size < 2:
        return {"fpr": [], "tpr": [], "thresholds": []}
    fpr, tpr, thresholds = roc_curve(y, np.asarray(probability, dtype=np.float64))
    thresholds = np.minimum(thresholds, 1.0)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}


def confusion_counts(y_true: Any, probability: Any, threshold: float = THRESHOLD) -> list[list[int]]:
    """The 2x2 confusion matrix at ``threshold``: rows are the true class (stays, churns), columns the predicted."""
    predicted = (np.asarray(probability) >= threshold).astype(int)
    matrix = confusion_matrix(np.asarray(y_true).astype(int), predicted, labels=[0, 1])
    return [[int(value) for value in row] for row in matrix]
