"""Metrics, plots, importance and the promotion gate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from xgboost import XGBClassifier

from churnops.training import evaluate
from churnops.training.features import FeatureSpec
from churnops.training.transform import build_model


def test_metrics_at_the_half_threshold() -> None:
    metrics = evaluate.classification_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    assert metrics["accuracy"] == 0.5
    assert metrics["precision"] == 0.5 and metrics["recall"] == 0.5 and metrics["f1"] == 0.5
    assert metrics["roc_auc"] == 0.75
    assert metrics["pr_auc"] == pytest.approx(0.8333333)


def test_single_class_split_gives_undefined_aucs_not_an_error() -> None:
    metrics = evaluate.classification_metrics([0, 0, 0], [0.2, 0.7, 0.1])
    assert math.isnan(metrics["roc_auc"]) and math.isnan(metrics["pr_auc"])
    assert metrics["accuracy"] == pytest.approx(2 / 3) and metrics["precision"] == 0.0
    assert evaluate.curve_figure("roc", [0, 0, 0], [0.2, 0.7, 0.1], "t") is None


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="as many"):
        evaluate.classification_metrics([0, 1], [0.5])


def test_figures_render_to_png(tmp_path) -> None:
    y, p = [0, 1, 0, 1], [0.2, 0.8, 0.6, 0.4]
    for name, figure in {
        "cm": evaluate.confusion_matrix_figure(y, p, "t"),
        "roc": evaluate.curve_figure("roc", y, p, "t"),
        "pr": evaluate.curve_figure("pr", y, p, "t"),
    }.items():
        path = tmp_path / f"{name}.png"
        figure.savefig(path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("estimator", [LogisticRegression(), XGBClassifier(n_estimators=10, n_jobs=1)])
def test_feature_importance_names_the_encoded_columns(estimator) -> None:
    spec = FeatureSpec(numeric=("signal", "noise"), categorical=("plan",), windows_h=(1,))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    X = pd.DataFrame({"signal": y + rng.normal(0, 0.3, 300), "noise": rng.normal(size=300),
                      "plan": rng.choice(["a", "b"], 300)})
    model = build_model(spec, estimator, percentile=100).fit(X, y)
    importance = evaluate.feature_importance(model)
    assert importance.iloc[0]["feature"] == "numeric__signal"
    assert set(importance["feature"]) == {"numeric__signal", "numeric__noise", "categorical__plan_a",
                                          "categorical__plan_b"}
    assert evaluate.churn_probability(model, X).shape == (300,)


def test_gate_passes_a_model_that_beats_the_baseline_without_production() -> None:
    decision = evaluate.gate(0.85, 0.80)
    assert decision.passed and not decision.reasons


def test_gate_refuses_a_model_that_does_not_beat_the_baseline() -> None:
    decision = evaluate.gate(0.80, 0.80)
    assert not decision.passed and "does not beat the baseline" in decision.reasons[0]


def test_gate_allows_losing_at_most_the_margin_against_production() -> None:
    assert evaluate.gate(0.845, 0.80, production_auc=0.85, margin=0.01).passed
    refused = evaluate.gate(0.83, 0.80, production_auc=0.85, margin=0.01, production_version="3")
    assert not refused.passed and "worse than production (version 3)" in refused.reasons[0]


def test_gate_lists_every_failed_check_and_refuses_undefined_aucs() -> None:
    both = evaluate.gate(0.70, 0.75, production_auc=0.90, margin=0.01)
    assert len(both.reasons) == 2
    assert not evaluate.gate(math.nan, 0.7).passed
    assert not evaluate.gate(0.8, math.nan).passed
    with pytest.raises(ValueError, match="margin"):
        evaluate.gate(0.8, 0.7, margin=-0.1)
    assert both.to_dict()["reasons"] == both.reasons


def test_roc_points_are_finite_json_and_bounded() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    p = np.clip(y * 0.3 + rng.random(1000) * 0.7, 0, 1)
    curve = evaluate.roc_points(y, p, max_points=50)
    assert len(curve["fpr"]) == len(curve["tpr"]) == len(curve["thresholds"]) <= 50
    assert curve["fpr"][0] == 0.0 and curve["fpr"][-1] == 1.0 and curve["tpr"][-1] == 1.0
    assert all(0.0 <= t <= 1.0 for t in curve["thresholds"])
    assert evaluate.roc_points([1, 1], [0.2, 0.9]) == {"fpr": [], "tpr": [], "thresholds": []}


def test_confusion_counts_rows_are_true_classes() -> None:
    assert evaluate.confusion_counts([0, 0, 1, 1, 1], [0.1, 0.7, 0.2, 0.6, 0.9]) == [[1, 1], [1, 2]]
