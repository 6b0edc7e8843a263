"""Model evaluation: metrics, plots, feature importance, the decision rule and the promotion gate.

Accuracy, precision, recall and F1 threshold the churn probability at the model's decision threshold
(:func:`decision_rule`); precision and lift at k rank the rows and look at the top ``capacity_share``
of them (the customers a retention team can contact); Brier score, log-loss and the expected
calibration error (:func:`calibration_error`) say how far the probabilities are from observed churn
rates. ROC-AUC and PR-AUC are undefined when a split holds one class only; they are reported as NaN
then (never an error), and a NaN never passes the gate.

The gate chooses the winner on the validation rows and confirms it on the test rows, with
uncertainty: a paired bootstrap of the ROC-AUC difference that resamples customers
(:func:`paired_auc_difference`) gives an interval, and the decision is taken on the interval's
bounds, not on the point estimates. A winner that fails its behavioural checks
(:mod:`churnops.training.behaviour`) is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.calibration import CalibrationDisplay
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.pipeline import Pipeline

from churnops.model.predict import THRESHOLD, DecisionRule, churn_probability
from churnops.training.transform import selected_feature_names

__all__ = ["THRESHOLD", "churn_probability"]  # the predict contract, re-exported for the evaluation code

DEFAULT_CAPACITY_SHARE = 0.1

METRICS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
    "calibration_error",
    "precision_at_k",
    "lift_at_k",
)
CALIBRATION_BINS = 10


def calibration_error(y_true: Any, probability: Any, bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error: over ``bins`` bins of equal row count by probability, the row-weighted mean
    of |mean probability - observed churn rate|. 0 for probabilities that mean what they say."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    error = 0.0
    for part in np.array_split(order, min(bins, p.size)):
        error += part.size * abs(float(p[part].mean()) - float(y[part].mean()))
    return error / p.size


def precision_lift_at_k(y_true: Any, probability: Any, share: float) -> tuple[float, float]:
    """(precision, lift) among the ``share`` of rows with the highest probability (at least one row): the
    churn rate of the customers a team contacting that share would reach, and that rate over the base rate
    (NaN when no row churns). Ties at the cut are broken by row order."""
    if not 0 < share <= 1:
        raise ValueError(f"the share at k must be in (0, 1], got {share}")
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    k = max(1, math.ceil(share * y.size))
    top = np.argsort(-p, kind="stable")[:k]
    precision = float(y[top].mean())
    base = float(y.mean())
    return precision, precision / base if base > 0 else math.nan


def classification_metrics(
    y_true: Any, probability: Any, threshold: float = THRESHOLD, capacity_share: float = DEFAULT_CAPACITY_SHARE
) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (at ``threshold``), ROC-AUC and PR-AUC; precision and lift at k (the
    top ``capacity_share`` of rows); and how far the probabilities are from observed rates: Brier score,
    log-loss and expected calibration error."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(probability, dtype=np.float64)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"need as many probabilities as labels, and at least one (got {p.shape} and {y.shape})")
    predicted = (p >= threshold).astype(int)
    two_classes = np.unique(y).size == 2
    probabilities = bool(np.all((p >= 0) & (p <= 1)))
    precision_k, lift_k = precision_lift_at_k(y, p, capacity_share)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else math.nan,
        "pr_auc": float(average_precision_score(y, p)) if two_classes else math.nan,
        # Scores that are not probabilities (outside [0, 1]) rank but have no calibration.
        "brier": float(brier_score_loss(y, p, labels=[0, 1])) if probabilities else math.nan,
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if probabilities else math.nan,
        "calibration_error": calibration_error(y, p) if probabilities else math.nan,
        "precision_at_k": precision_k,
        "lift_at_k": lift_k,
    }


def decision_rule(  # pylint: disable=too-many-arguments  # the retention team's terms
    kind: str,
    probability: Any,
    *,
    capacity_share: float,
    save_rate: float,
    customer_value: float,
    contact_cost: float,
) -> DecisionRule:
    """The threshold at which ``churn_label`` is 1, from the retention team's terms.

    - ``top_k``: the team contacts ``capacity_share`` of the customers; the threshold is the probability
      of the last customer in that share of ``probability`` (calibrated probabilities of a population
      like the one scored, e.g. validation), so about that share is labelled 1.
    - ``expected_value``: contacting a customer is worth ``p x save_rate x customer_value -
      contact_cost``; the threshold is where that is 0, ``contact_cost / (save_rate x customer_value)``
      (which needs calibrated probabilities to mean anything).
    """
    if kind == "top_k":
        p = np.sort(np.asarray(probability, dtype=np.float64))[::-1]
        if p.size == 0:
            raise ValueError("the top-k rule needs probabilities to choose its threshold from")
        k = max(1, math.ceil(capacity_share * p.size))
        return DecisionRule("top_k", float(p[k - 1]), {"capacity_share": capacity_share, "rows": float(p.size)})
    if kind == "expected_value":
        break_even = contact_cost / (save_rate * customer_value)
        if break_even > 1:
            raise ValueError(
                f"a contact costs more ({contact_cost:g}) than a certain churner is worth saving "
                f"({save_rate:g} x {customer_value:g}): no customer is worth contacting"
            )
        terms = {"save_rate": save_rate, "customer_value": customer_value, "contact_cost": contact_cost}
        return DecisionRule("expected_value", break_even, terms)
    raise ValueError(f"unknown decision rule {kind!r}: use top_k or expected_value")


def confusion_matrix_figure(y_true: Any, probability: Any, title: str, threshold: float = THRESHOLD) -> Figure:
    """Confusion matrix at the decision threshold."""
    fig = Figure(figsize=(4.5, 4))
    ax = fig.add_subplot()
    predicted = (np.asarray(probability) >= threshold).astype(int)
    ConfusionMatrixDisplay.from_predictions(
        np.asarray(y_true).astype(int),
        predicted,
        labels=[0, 1],
        display_labels=["stays", "churns"],
        ax=ax,
        colorbar=False,
    )
    ax.set_title(title)
    fig.tight_layout()
    return fig


def reliability_figure(y_true: Any, probability: Any, title: str, bins: int = CALIBRATION_BINS) -> Figure:
    """Reliability diagram: observed churn rate against mean probability per bin of equal row count, and the
    diagonal a calibrated model follows."""
    fig = Figure(figsize=(4.5, 4))
    ax = fig.add_subplot()
    CalibrationDisplay.from_predictions(
        np.asarray(y_true).astype(int),
        np.asarray(probability, dtype=np.float64),
        n_bins=bins,
        strategy="quantile",
        ax=ax,
        name=title,
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
class AucComparison:
    """ROC-AUC of one model minus another's on the same rows, with a paired-bootstrap interval."""

    difference: float
    low: float
    high: float
    confidence: float
    resamples: int
    rows: int
    groups: int  # independent units resampled: customers (cluster bootstrap), else rows

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return asdict(self)

    def describe(self) -> str:
        """``+0.0123 (95% interval -0.0040 to +0.0290)``."""
        units = f"{self.rows} rows" if self.groups == self.rows else f"{self.rows} rows, {self.groups} customers"
        return f"{self.difference:+.4f} ({self.confidence:.0%} interval {self.low:+.4f} to {self.high:+.4f}, {units})"


def _resample_counts(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """How often each of ``n`` rows is drawn in each of ``size`` resamples of ``n`` draws with replacement."""
    draws = rng.integers(0, n, (size, n)) + (np.arange(size) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=size * n).reshape(size, n)


def _weighted_aucs(positive: np.ndarray, negative: np.ndarray, w_pos: np.ndarray, w_neg: np.ndarray) -> np.ndarray:
    """ROC-AUC per resample, the rows weighted by how often each resample drew them (ties count half).

    For each positive row, the weighted count of negatives scored lower (plus half those scored
    equal) comes from a cumulative sum over the negatives in score order: no sort per resample. A
    resample without a positive or a negative has no AUC (NaN).
    """
    order = np.argsort(negative, kind="stable")
    sorted_negative = negative[order]
    below = np.searchsorted(sorted_negative, positive, side="left")
    at_or_below = np.searchsorted(sorted_negative, positive, side="right")
    cumulative = np.zeros((w_neg.shape[0], negative.size + 1))
    np.cumsum(w_neg[:, order], axis=1, out=cumulative[:, 1:])
    wins = (cumulative[:, below] + cumulative[:, at_or_below]) / 2
    pairs = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (w_pos * wins).sum(axis=1) / pairs, np.nan)


def _bootstrap_aucs(
    y: np.ndarray,
    scores: list[np.ndarray],
    resamples: int,
    seed: int,
    groups: np.ndarray | None = None,
    batch: int = 100,
) -> list[np.ndarray]:
    """ROC-AUC of each score vector on ``resamples`` paired resamples, the same draws for every model.

    Without ``groups`` the rows are drawn, stratified by class: every resample holds as many
    positives and negatives as the data. With ``groups`` (one integer code per row, e.g. the
    customer) whole groups are drawn with replacement and each row counts as often as its group
    was drawn (a cluster bootstrap): rows of one customer at several cutoffs are not independent.
    """
    rng = np.random.default_rng(seed)
    positives, negatives = y == 1, y == 0
    out: list[list[np.ndarray]] = [[] for _ in scores]
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        if groups is None:
            w_pos = _resample_counts(rng, int(positives.sum()), size)
            w_neg = _resample_counts(rng, int(negatives.sum()), size)
        else:
            counts = _resample_counts(rng, int(groups.max()) + 1, size)
            w_pos, w_neg = counts[:, groups[positives]], counts[:, groups[negatives]]
        for i, score in enumerate(scores):
            out[i].append(_weighted_aucs(score[positives], score[negatives], w_pos, w_neg))
    return [np.concatenate(parts) for parts in out]


def paired_auc_difference(  # pylint: disable=too-many-arguments  # the comparison's inputs and its bootstrap
    y_true: Any,
    scores_a: Any,
    scores_b: Any,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    groups: Any = None,
) -> AucComparison:
    """ROC-AUC(a) - ROC-AUC(b) on the same rows and a percentile interval from a paired bootstrap.

    Without ``groups`` the rows are resampled, stratified by class. With ``groups`` (a key per row,
    e.g. the customer token) whole groups are resampled (cluster bootstrap): a customer scored at
    several cutoffs counts as one draw, so the interval is not narrowed by the repeats. The same
    ``seed`` gives the same interval. Raises ``ValueError`` when the rows hold one class only.
    """
    y = np.asarray(y_true).astype(int)
    a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    if not y.shape == a.shape == b.shape:
        raise ValueError(f"need one score per label from both models (got {a.shape}, {b.shape}, {y.shape})")
    if np.unique(y).size != 2:
        raise ValueError("ROC-AUC differences need both classes among the rows")
    _check_bootstrap(confidence, resamples)
    codes = None
    if groups is not None:
        keys = np.asarray(groups)
        if keys.shape != y.shape:
            raise ValueError(f"need one group per label (got {keys.shape} and {y.shape})")
        codes = pd.factorize(keys, sort=True)[0]
    auc_a, auc_b = _bootstrap_aucs(y, [a, b], resamples, seed, codes)
    return _comparison(
        float(roc_auc_score(y, a) - roc_auc_score(y, b)),
        auc_a - auc_b,
        confidence,
        rows=int(y.size),
        groups=int(codes.max()) + 1 if codes is not None else int(y.size),
    )


def _check_bootstrap(confidence: float, resamples: int) -> None:
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")


def _comparison(
    difference: float, resampled: np.ndarray, confidence: float, *, rows: int, groups: int
) -> AucComparison:
    """The comparison of ``difference`` with the percentile interval of its ``resampled`` values."""
    alpha = 1 - confidence
    low, high = np.nanquantile(resampled, [alpha / 2, 1 - alpha / 2])
    return AucComparison(
        difference=difference,
        low=float(low),
        high=float(high),
        confidence=confidence,
        resamples=int(resampled.size),
        rows=rows,
        groups=groups,
    )


def subgroup_auc_difference(  # pylint: disable=too-many-arguments  # the comparison's inputs and its bootstrap
    y_true: Any,
    scores: Any,
    in_first: Any,
    groups: Any,
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> AucComparison:
    """ROC-AUC of one model on the rows ``in_first`` (a boolean mask) minus its ROC-AUC on the other rows, and a
    percentile interval from a cluster bootstrap: whole groups (``groups``, e.g. the customer of each row) are
    resampled, and both ROC-AUCs are taken on the same resample. The groups should not straddle the two
    subsets (e.g. customers seen in training and customers held out). Raises ``ValueError`` when a subset
    holds one class only."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(scores, dtype=np.float64)
    first = np.asarray(in_first, dtype=bool)
    keys = np.asarray(groups)
    if not y.shape == p.shape == first.shape == keys.shape:
        raise ValueError(
            f"need one score, subset flag and group per label (got {p.shape}, {first.shape}, {keys.shape})"
        )
    if np.unique(y[first]).size != 2 or np.unique(y[~first]).size != 2:
        raise ValueError("ROC-AUC differences need both classes in both subsets")
    _check_bootstrap(confidence, resamples)
    codes = pd.factorize(keys, sort=True)[0]
    rng = np.random.default_rng(seed)
    differences: list[np.ndarray] = []
    for start in range(0, resamples, 100):
        counts = _resample_counts(rng, int(codes.max()) + 1, min(100, resamples - start))
        aucs = []
        for subset in (first, ~first):
            positive, negative = subset & (y == 1), subset & (y == 0)
            aucs.append(
                _weighted_aucs(p[positive], p[negative], counts[:, codes[positive]], counts[:, codes[negative]])
            )
        differences.append(aucs[0] - aucs[1])
    return _comparison(
        float(roc_auc_score(y[first], p[first]) - roc_auc_score(y[~first], p[~first])),
        np.concatenate(differences),
        confidence,
        rows=int(y.size),
        groups=int(codes.max()) + 1,
    )


@dataclass(frozen=True)
class GateDecision:  # pylint: disable=too-many-instance-attributes  # a flat record the pipeline UI shows
    """Which model may become ``candidate`` (the winner of challenger vs baseline), with figures and reasons.

    ``passed`` says the winner may be registered; ``reasons`` lists every failed check. The winner is
    chosen on the ``selection_split`` (``challenger_auc`` and ``baseline_auc`` are ROC-AUCs there,
    ``vs_baseline`` the challenger minus the baseline); ``winner_auc`` is the winner's ROC-AUC on the
    test rows, where it is compared with the best of the recent production versions
    (``recent_production``: version -> test ROC-AUC; ``production_version`` and ``production_auc``
    name the best, ``vs_production`` the winner minus it). Comparisons are None when no scores were given.
    """

    passed: bool
    challenger_auc: float
    baseline_auc: float
    production_auc: float | None = None
    production_version: str | None = None
    margin: float = 0.0
    min_auc: float = 0.0
    reasons: list[str] = field(default_factory=list)
    winner: str | None = None
    winner_auc: float | None = None
    vs_baseline: AucComparison | None = None
    vs_production: AucComparison | None = None
    summary: str = ""
    selection_split: str = "test"
    recent_production: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "passed": self.passed,
            "winner": self.winner,
            "winner_auc": self.winner_auc,
            "selection_split": self.selection_split,
            "challenger_auc": self.challenger_auc,
            "baseline_auc": self.baseline_auc,
            "production_auc": self.production_auc,
            "production_version": self.production_version,
            "recent_production": dict(self.recent_production),
            "margin": self.margin,
            "min_auc": self.min_auc,
            "vs_baseline": self.vs_baseline.to_dict() if self.vs_baseline else None,
            "vs_production": self.vs_production.to_dict() if self.vs_production else None,
            "summary": self.summary,
            "reasons": list(self.reasons),
        }

    def markdown(self) -> str:
        """The decision as a short Markdown report (the pipeline UI shows it as the gate's visualization)."""
        verdict = f"**passed**: register `{self.winner}`" if self.passed else "**refused**: nothing is registered"
        lines = [
            f"# Gate: {verdict}",
            "",
            self.summary or "",
            "",
            f"| model | {self.selection_split} ROC-AUC |",
            "|---|---|",
            f"| challenger | {self.challenger_auc:.4f} |",
            f"| baseline | {self.baseline_auc:.4f} |",
            "",
        ]
        if self.winner_auc is not None:
            lines.append(f"- {self.winner} test ROC-AUC: {self.winner_auc:.4f}")
        lines.extend(
            f"- production version {version} test ROC-AUC: {auc:.4f}" for version, auc in self.recent_production.items()
        )
        for label, comparison in (
            (f"challenger - baseline ({self.selection_split})", self.vs_baseline),
            (f"{self.winner} - best recent production, version {self.production_version} (test)", self.vs_production),
        ):
            if comparison is not None:
                lines.append(f"- {label}: {comparison.describe()}")
        lines.append(f"- margin against production: {self.margin}")
        lines.append(f"- minimum test ROC-AUC: {self.min_auc}")
        lines.extend(f"- reason: {reason}" for reason in self.reasons)
        return "\n".join(lines) + "\n"

    def metrics(self) -> dict[str, float]:
        """The comparisons as flat MLflow metrics (``gate_vs_<other>_auc_diff``, ``..._low``, ``..._high``)."""
        out: dict[str, float] = {}
        for other, comparison in (("baseline", self.vs_baseline), ("production", self.vs_production)):
            if comparison is not None:
                out.update(
                    {
                        f"gate_vs_{other}_auc_diff": comparison.difference,
                        f"gate_vs_{other}_auc_diff_low": comparison.low,
                        f"gate_vs_{other}_auc_diff_high": comparison.high,
                    }
                )
        return {key: value for key, value in out.items() if not math.isnan(value)}


@dataclass(frozen=True)
class GateRows:
    """Labels, the customer of each row and each model's scores on one split (``scores``: name -> probabilities)."""

    labels: Any
    scores: Mapping[str, Any]
    groups: Any = None


def _auc(labels: Any, scores: Any) -> float:
    y = np.asarray(labels).astype(int)
    if np.unique(y).size != 2:
        return math.nan
    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64)))


def _best_production(
    production_scores: Any, production_version: str | None, test: GateRows | None
) -> tuple[dict[str, float], str | None, Any]:
    """(version -> test ROC-AUC, best version, its scores) of the production versions' scores on the test rows.

    ``production_scores`` is one score vector (the current version, ``production_version``) or a
    mapping version -> scores (the recent production versions); the best is the highest test ROC-AUC.
    """
    if production_scores is None or test is None:
        return {}, production_version, None
    by_version = (
        dict(production_scores)
        if isinstance(production_scores, Mapping)
        else {production_version or "production": production_scores}
    )
    aucs = {str(version): _auc(test.labels, scores) for version, scores in by_version.items()}
    defined = {version: auc for version, auc in aucs.items() if not math.isnan(auc)}
    if not defined:
        return aucs, production_version, None
    best = max(defined, key=lambda version: (defined[version], version))
    return aucs, best, by_version[best]


def _unseen_rows(
    test: GateRows | None, production_scores: Any, winner_scores: Any, production_rows: Any
) -> tuple[GateRows | None, Any, Any]:
    """The test rows, the production scores and the winner's scores, limited to ``production_rows`` (a boolean
    mask over the test rows) when it is given."""
    if test is None or production_rows is None or production_scores is None:
        return test, production_scores, winner_scores
    keep = np.asarray(production_rows, dtype=bool)

    def pick(values: Any) -> Any:
        return None if values is None else np.asarray(values)[keep]

    rows = GateRows(pick(test.labels), {name: pick(scores) for name, scores in test.scores.items()}, pick(test.groups))
    if isinstance(production_scores, Mapping):
        return rows, {version: pick(scores) for version, scores in production_scores.items()}, pick(winner_scores)
    return rows, pick(production_scores), pick(winner_scores)


def gate(  # pylint: disable=too-many-arguments,too-many-locals,too-many-branches  # both splits' inputs and checks
    challenger_auc: float,
    baseline_auc: float,
    production_auc: float | None = None,
    margin: float = 0.01,
    production_version: str | None = None,
    *,
    labels: Any = None,
    challenger_scores: Any = None,
    baseline_scores: Any = None,
    production_scores: Any = None,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    challenger: str = "xgboost",
    baseline: str = "baseline",
    groups: Any = None,
    min_auc: float = 0.0,
    test: GateRows | None = None,
    selection_split: str = "validation",
    production_rows: Any = None,
    behaviour: Mapping[str, Sequence[str]] | None = None,
) -> GateDecision:
    """Pick the winner of challenger vs baseline on the selection rows, then confirm it on the test rows.

    ``challenger_auc``/``baseline_auc`` and, for intervals, ``labels``, the two models' scores and
    ``groups`` are the selection rows (validation). ``test`` holds the test rows, with the scores of
    both models (``challenger``, ``baseline`` keys); without it the selection rows serve as test rows.
    Both comparisons use the interval of :func:`paired_auc_difference`:

    1. on the selection rows, the challenger wins only if the lower bound of (challenger - baseline)
       is above 0; otherwise the baseline wins (a challenger better by noise only does not displace
       the simpler model);
    2. on the test rows, the winner must reach ``min_auc``, and with production scores (one vector,
       or a mapping version -> scores of the recent production versions) the lower bound of
       (winner - best production version) must be at least ``-margin``: it is not worse than the best
       recent production model by more than the margin, with the chosen confidence, so quality cannot
       ratchet down by the margin at each retrain.

    3. the winner must pass its behavioural checks: ``behaviour`` maps a model's name to the checks it failed
       (:mod:`churnops.training.behaviour`, one sentence each), and each becomes a reason to refuse it. A model
       that fails them is refused, as for the other conditions, not silently replaced by the other model.

    ``production_rows`` (a boolean mask over the test rows) limits the comparison with production to
    the rows no compared production version was trained on: a registered version was refit on every
    labelled cutoff of its commit, so on those rows it would grade its own homework.

    With ``groups`` (the customer of each row) the bootstrap resamples customers, not rows. Without
    scores the point estimates decide the same questions (no interval is recorded). Every failed
    check is listed in ``reasons``; ``summary`` says who won and why.
    """
    if margin < 0:
        raise ValueError(f"gate margin must be >= 0, got {margin}")
    y = np.asarray(labels).astype(int) if labels is not None else None
    two_classes = y is not None and np.unique(y).size == 2
    if test is None and labels is not None:
        test = GateRows(labels, {challenger: challenger_scores, baseline: baseline_scores}, groups)
        selection_split = "test"
    if test is None:
        selection_split = "test"

    def compare(rows_labels: Any, a: Any, b: Any, rows_groups: Any) -> AucComparison | None:
        if a is None or b is None or rows_labels is None or np.unique(np.asarray(rows_labels)).size != 2:
            return None
        return paired_auc_difference(
            rows_labels, a, b, confidence=confidence, resamples=resamples, seed=seed, groups=rows_groups
        )

    reasons: list[str] = []
    vs_baseline = vs_production = None
    if math.isnan(challenger_auc) and math.isnan(baseline_auc):
        reasons.append(f"{selection_split} ROC-AUC is undefined for both models (the split has one class)")
        return GateDecision(
            passed=False,
            challenger_auc=challenger_auc,
            baseline_auc=baseline_auc,
            production_auc=production_auc,
            production_version=production_version,
            margin=margin,
            reasons=reasons,
            summary=reasons[0],
            selection_split=selection_split,
        )
    if math.isnan(baseline_auc):
        challenger_wins, why = True, f"the baseline's {selection_split} ROC-AUC is undefined; {challenger} wins"
    elif math.isnan(challenger_auc):
        challenger_wins, why = False, f"{challenger}'s {selection_split} ROC-AUC is undefined; {baseline} wins"
    else:
        vs_baseline = compare(y if two_classes else None, challenger_scores, baseline_scores, groups)
        if vs_baseline is not None:
            challenger_wins = vs_baseline.low > 0
            verdict = "beats" if challenger_wins else "does not beat beyond noise"
            why = (
                f"{challenger} {verdict} the baseline on {selection_split}: ROC-AUC difference {vs_baseline.describe()}"
            )
        else:
            challenger_wins = challenger_auc > baseline_auc
            verdict = "beats" if challenger_wins else "does not beat"
            why = (
                f"{challenger} {selection_split} ROC-AUC {challenger_auc:.4f} {verdict} "
                f"the baseline's {baseline_auc:.4f}"
            )
    winner = challenger if challenger_wins else baseline
    if test is not None and test.scores.get(winner) is not None:
        winner_scores = test.scores[winner]
        winner_auc = _auc(test.labels, winner_scores)
    else:
        winner_scores = None
        winner_auc = challenger_auc if challenger_wins else baseline_auc
    summary = f"{why}; {winner} is the winner"
    reasons.extend(_winner_reasons(winner, winner_auc, min_auc, (behaviour or {}).get(winner, [])))
    unseen, production_scores, unseen_winner = _unseen_rows(test, production_scores, winner_scores, production_rows)
    recent, production_version, best_scores = _best_production(production_scores, production_version, unseen)
    if best_scores is not None:
        production_auc = recent[str(production_version)]
    if production_auc is not None:
        unseen_auc = winner_auc
        if unseen is not None:
            vs_production = compare(unseen.labels, unseen_winner, best_scores, unseen.groups)
            if unseen_winner is not None:
                unseen_auc = _auc(unseen.labels, unseen_winner)
        reasons.extend(
            _production_reasons(winner, unseen_auc, production_auc, production_version, margin, vs_production)
        )
    return GateDecision(
        passed=not reasons,
        challenger_auc=challenger_auc,
        baseline_auc=baseline_auc,
        production_auc=production_auc,
        production_version=production_version,
        margin=margin,
        min_auc=min_auc,
        reasons=reasons,
        winner=winner,
        winner_auc=winner_auc,
        vs_baseline=vs_baseline,
        vs_production=vs_production,
        summary=summary,
        selection_split=selection_split,
        recent_production=recent,
    )


def _winner_reasons(winner: str, winner_auc: float, min_auc: float, behaviour: Sequence[str]) -> list[str]:
    """Why the winner may not be registered whatever production holds: the behavioural checks it failed, and a
    test ROC-AUC below the minimum."""
    reasons = list(behaviour)
    if not winner_auc >= min_auc:
        reasons.append(f"{winner} test ROC-AUC {winner_auc:.4f} is below the minimum {min_auc:.4f} a model must reach")
    return reasons


def _production_reasons(
    winner: str,
    winner_auc: float,
    production_auc: float,
    production_version: str | None,
    margin: float,
    vs_production: AucComparison | None,
) -> list[str]:
    """Why the winner may not replace production: worse by more than ``margin`` (at the interval's lower
    bound when there is one, else on the point estimates)."""
    if vs_production is not None:
        if vs_production.low < -margin:
            return [
                f"{winner} may be worse than the best recent production version ({production_version}) by more than "
                f"{margin:.4f}: ROC-AUC difference {vs_production.describe()}"
            ]
    elif winner_auc < production_auc - margin:
        return [
            f"{winner} test ROC-AUC {winner_auc:.4f} is worse than the best recent production version "
            f"({production_version}) "
            f"{production_auc:.4f} by more than {margin:.4f}"
        ]
    return []


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
