"""Metrics, plots, importance and the promotion gate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from xgboost import XGBClassifier

from churnops.model.predict import DecisionRule, churn_label, decision_rule_of
from churnops.model.spec import FeatureSpec
from churnops.training import evaluate
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
    X = pd.DataFrame(
        {"signal": y + rng.normal(0, 0.3, 300), "noise": rng.normal(size=300), "plan": rng.choice(["a", "b"], 300)}
    )
    model = build_model(spec, estimator, percentile=100).fit(X, y)
    importance = evaluate.feature_importance(model)
    assert importance.iloc[0]["feature"] == "numeric__signal"
    assert set(importance["feature"]) == {
        "numeric__signal",
        "numeric__noise",
        "categorical__plan_a",
        "categorical__plan_b",
    }
    assert evaluate.churn_probability(model, X).shape == (300,)


def synthetic_scores(rows: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels (20 % positives) and a model's scores with a ROC-AUC near 0.80."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.2).astype(int)
    return y, y * 1.2 + rng.normal(size=rows)


def noisy_copy(scores: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """The same model, disturbed: no better in expectation, a little better or worse on any sample."""
    return scores + np.random.default_rng(seed).normal(scale=noise, size=scores.size)


def test_paired_difference_of_a_model_with_itself_is_exactly_zero() -> None:
    y, scores = synthetic_scores()
    same = evaluate.paired_auc_difference(y, scores, scores.copy(), resamples=200)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)


def test_paired_difference_interval_covers_the_difference_and_is_reproducible() -> None:
    y, scores = synthetic_scores()
    other = noisy_copy(scores, 0.5, seed=1)
    first = evaluate.paired_auc_difference(y, scores, other, confidence=0.9, resamples=500, seed=7)
    assert first.difference == pytest.approx(
        evaluate.classification_metrics(y, scores)["roc_auc"] - evaluate.classification_metrics(y, other)["roc_auc"],
        abs=1e-12,
    )
    assert first.low < first.difference < first.high
    assert first == evaluate.paired_auc_difference(y, scores, other, confidence=0.9, resamples=500, seed=7)
    wider = evaluate.paired_auc_difference(y, scores, other, confidence=0.99, resamples=500, seed=7)
    assert wider.low < first.low and wider.high > first.high
    with pytest.raises(ValueError, match="both classes"):
        evaluate.paired_auc_difference(np.zeros(10), np.ones(10), np.ones(10))


def test_a_challenger_better_by_noise_only_is_refused_and_the_baseline_wins() -> None:
    y, baseline = synthetic_scores()
    # A challenger that is the baseline plus noise, picked so that its point estimate is higher.
    challenger = next(
        c
        for c in (noisy_copy(baseline, 0.15, seed) for seed in range(50))
        if evaluate.classification_metrics(y, c)["roc_auc"] > evaluate.classification_metrics(y, baseline)["roc_auc"]
    )
    auc = {
        name: evaluate.classification_metrics(y, s)["roc_auc"]
        for name, s in (("challenger", challenger), ("baseline", baseline))
    }
    decision = evaluate.gate(
        auc["challenger"], auc["baseline"], labels=y, challenger_scores=challenger, baseline_scores=baseline
    )
    assert auc["challenger"] > auc["baseline"], "better on the point estimate"
    assert decision.winner == "baseline" and decision.winner_auc == auc["baseline"]
    assert decision.vs_baseline is not None and decision.vs_baseline.low <= 0 < decision.vs_baseline.difference
    assert "does not beat beyond noise" in decision.summary
    # The point estimate alone would have picked the challenger.
    assert evaluate.gate(auc["challenger"], auc["baseline"]).winner == "xgboost"


def test_a_clearly_better_challenger_wins_and_the_interval_is_in_the_decision() -> None:
    y, baseline = synthetic_scores()
    challenger = baseline + y * 1.0
    auc = [evaluate.classification_metrics(y, s)["roc_auc"] for s in (challenger, baseline)]
    decision = evaluate.gate(
        *auc, labels=y, challenger_scores=challenger, baseline_scores=baseline, confidence=0.95, resamples=500, seed=3
    )
    assert decision.passed and decision.winner == "xgboost" and not decision.reasons
    comparison = decision.vs_baseline
    assert comparison is not None and 0 < comparison.low < comparison.difference < comparison.high
    recorded = decision.to_dict()["vs_baseline"]
    assert recorded == {
        "difference": comparison.difference,
        "low": comparison.low,
        "high": comparison.high,
        "confidence": 0.95,
        "resamples": 500,
        "rows": 2000,
        "groups": 2000,
    }
    assert decision.metrics() == {
        "gate_vs_baseline_auc_diff": comparison.difference,
        "gate_vs_baseline_auc_diff_low": comparison.low,
        "gate_vs_baseline_auc_diff_high": comparison.high,
    }


def test_the_winner_must_not_lose_to_production_beyond_the_margin() -> None:
    y, baseline = synthetic_scores()
    challenger = baseline + y * 1.0
    aucs = [evaluate.classification_metrics(y, s)["roc_auc"] for s in (challenger, baseline)]
    kwargs = {"labels": y, "challenger_scores": challenger, "baseline_scores": baseline, "resamples": 300}
    same = evaluate.gate(*aucs, production_scores=challenger, production_version="4", **kwargs)
    assert same.passed and same.vs_production is not None and same.vs_production.high == 0.0
    assert same.production_auc == pytest.approx(aucs[0])
    much_better = challenger + y * 2.0
    refused = evaluate.gate(*aucs, production_scores=much_better, production_version="4", margin=0.01, **kwargs)
    assert not refused.passed and refused.winner == "xgboost"
    assert "worse than the best recent production version (4)" in refused.reasons[0]
    assert refused.vs_production is not None and refused.vs_production.high < -0.01
    # The gate report the pipeline UI shows: the verdict, each interval and each reason.
    report = refused.markdown()
    assert report.startswith("# Gate: **refused**") and refused.reasons[0] in report
    assert f"xgboost - best recent production, version 4 (test): {refused.vs_production.describe()}" in report
    assert "production version 4 test ROC-AUC" in report and same.markdown().startswith(
        "# Gate: **passed**: register `xgboost`"
    )


def test_point_estimates_decide_when_no_scores_are_given() -> None:
    assert evaluate.gate(0.85, 0.80).winner == "xgboost"
    tie = evaluate.gate(0.80, 0.80)
    assert tie.passed and tie.winner == "baseline" and tie.vs_baseline is None
    assert evaluate.gate(0.845, 0.80, production_auc=0.85, margin=0.01).passed
    refused = evaluate.gate(0.83, 0.80, production_auc=0.85, margin=0.01, production_version="3")
    assert not refused.passed and "worse than the best recent production version (3)" in refused.reasons[0]


def test_undefined_aucs_never_win() -> None:
    assert not evaluate.gate(math.nan, math.nan).passed
    assert evaluate.gate(math.nan, 0.7).winner == "baseline"
    assert evaluate.gate(0.8, math.nan).winner == "xgboost"
    with pytest.raises(ValueError, match="margin"):
        evaluate.gate(0.8, 0.7, margin=-0.1)
    both = evaluate.gate(0.70, 0.75, production_auc=0.90, margin=0.01)
    assert both.to_dict()["reasons"] == both.reasons and len(both.reasons) == 1


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


def test_the_customer_bootstrap_is_not_narrowed_by_a_customer_scored_at_many_cutoffs() -> None:
    y, scores = synthetic_scores(rows=600)
    other = noisy_copy(scores, 0.5, seed=1)
    customers = np.arange(y.size)
    once = evaluate.paired_auc_difference(y, scores, other, resamples=1000, seed=5, groups=customers)
    # The same customers at five cutoffs each: five times the rows, no more information.
    repeated = [np.tile(values, 5) for values in (y, scores, other, customers)]
    by_row = evaluate.paired_auc_difference(*repeated[:3], resamples=1000, seed=5)
    by_customer = evaluate.paired_auc_difference(*repeated[:3], resamples=1000, seed=5, groups=repeated[3])
    width = {name: c.high - c.low for name, c in (("once", once), ("row", by_row), ("customer", by_customer))}
    assert by_customer.groups == 600 and by_customer.rows == 3000 and by_row.groups == 3000
    assert width["customer"] == pytest.approx(width["once"], rel=0.15)
    assert width["row"] < 0.6 * width["customer"]  # about 1/sqrt(5): resampling rows is anti-conservative
    assert "3000 rows, 600 customers" in by_customer.describe()


def test_a_winner_below_the_minimum_quality_is_refused_without_a_production_model() -> None:
    y, baseline = synthetic_scores()
    weak = baseline * 0.05 + np.random.default_rng(4).normal(size=y.size)
    auc = [evaluate.classification_metrics(y, s)["roc_auc"] for s in (weak, weak)]
    refused = evaluate.gate(*auc, labels=y, challenger_scores=weak, baseline_scores=weak, min_auc=0.6, resamples=200)
    assert not refused.passed and refused.production_version is None
    assert any("below the minimum 0.6000" in reason for reason in refused.reasons)
    assert refused.to_dict()["min_auc"] == 0.6
    good = [evaluate.classification_metrics(y, baseline)["roc_auc"]] * 2
    assert evaluate.gate(
        *good, labels=y, challenger_scores=baseline, baseline_scores=baseline, min_auc=0.6, resamples=200
    ).passed


def test_calibration_metrics_tell_calibrated_probabilities_from_inflated_ones() -> None:
    rng = np.random.default_rng(2)
    probability = rng.uniform(0.0, 0.3, 20_000)
    y = (rng.random(probability.size) < probability).astype(int)  # churns at exactly the stated rate
    inflated = np.clip(probability * 3, 0, 0.99)  # what class weighting does: same ranking, three times the rate
    honest, weighted = evaluate.classification_metrics(y, probability), evaluate.classification_metrics(y, inflated)
    assert honest["roc_auc"] == pytest.approx(weighted["roc_auc"], abs=1e-12)
    assert honest["calibration_error"] < 0.01 < 0.2 < weighted["calibration_error"]
    assert honest["brier"] < weighted["brier"] and honest["log_loss"] < weighted["log_loss"]
    assert evaluate.calibration_error([0, 1, 1, 0], [0.0, 1.0, 1.0, 0.0]) == 0.0
    assert evaluate.reliability_figure(y, probability, "calibrated").axes


def test_precision_and_lift_at_k_look_at_the_top_share() -> None:
    y = [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    p = [0.9, 0.8, 0.7, 0.1, 0.2, 0.3, 0.1, 0.05, 0.0, 0.15]
    # top 30% = 3 rows (0.9, 0.8, 0.7): two churners; base rate 0.3
    assert evaluate.precision_lift_at_k(y, p, 0.3) == pytest.approx((2 / 3, (2 / 3) / 0.3))
    metrics = evaluate.classification_metrics(y, p, capacity_share=0.1)
    assert metrics["precision_at_k"] == 1.0 and metrics["lift_at_k"] == pytest.approx(1 / 0.3)
    assert math.isnan(evaluate.precision_lift_at_k([0, 0], [0.1, 0.2], 0.5)[1])
    with pytest.raises(ValueError, match="share"):
        evaluate.precision_lift_at_k(y, p, 0.0)


def test_metrics_label_at_the_decision_threshold() -> None:
    metrics = evaluate.classification_metrics([0, 0, 1, 1], [0.1, 0.3, 0.25, 0.9], threshold=0.2)
    assert metrics["recall"] == 1.0 and metrics["precision"] == pytest.approx(2 / 3)


def test_top_k_rule_labels_the_share_the_team_can_contact() -> None:
    probability = np.linspace(0.0, 0.99, 100)
    rule = evaluate.decision_rule(
        "top_k", probability, capacity_share=0.1, save_rate=0.3, customer_value=100, contact_cost=5
    )
    assert rule.kind == "top_k" and rule.terms["capacity_share"] == 0.1
    assert int(churn_label(probability, rule.threshold).sum()) == 10
    assert DecisionRule.from_dict(rule.to_dict()) == rule


def test_expected_value_rule_contacts_where_the_saving_exceeds_the_cost() -> None:
    rule = evaluate.decision_rule(
        "expected_value", [0.5], capacity_share=0.1, save_rate=0.25, customer_value=80, contact_cost=5
    )
    assert rule.threshold == pytest.approx(0.25)  # 0.25 x 0.25 x 80 = 5: break-even
    assert churn_label(np.array([0.249, 0.25, 0.9]), rule.threshold).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="no customer is worth contacting"):
        evaluate.decision_rule(
            "expected_value", [0.5], capacity_share=0.1, save_rate=0.1, customer_value=10, contact_cost=5
        )
    with pytest.raises(ValueError, match="unknown decision rule"):
        evaluate.decision_rule("top_half", [0.5], capacity_share=0.1, save_rate=0.1, customer_value=1, contact_cost=0)


def test_a_model_without_a_recorded_rule_labels_at_one_half() -> None:
    assert decision_rule_of(None) == DecisionRule("fixed", 0.5, {})
    recorded = {"decision_rule": {"kind": "top_k", "threshold": 0.12, "terms": {"capacity_share": 0.1}}}
    assert decision_rule_of(recorded).threshold == 0.12
    with pytest.raises(ValueError, match="probability"):
        DecisionRule("top_k", 1.5)


def test_the_winner_is_chosen_on_validation_and_confirmed_on_test() -> None:
    """Validation says the challenger is better; on test the baseline would look better: the choice stands,
    and the winner's test ROC-AUC is what the gate reports and checks against the minimum."""
    y, baseline = synthetic_scores()
    strong = baseline + y * 1.0
    aucs = [evaluate.classification_metrics(y, s)["roc_auc"] for s in (strong, baseline)]
    test_y, test_baseline = synthetic_scores(seed=1)
    test_scores = {"xgboost": test_baseline - test_y * 1.2, "baseline": test_baseline}  # no signal left on test
    decision = evaluate.gate(
        *aucs,
        labels=y,
        challenger_scores=strong,
        baseline_scores=baseline,
        resamples=200,
        test=evaluate.GateRows(test_y, test_scores),
        min_auc=0.6,
    )
    assert decision.winner == "xgboost" and decision.selection_split == "validation"
    assert decision.winner_auc == pytest.approx(
        evaluate.classification_metrics(test_y, test_scores["xgboost"])["roc_auc"]
    )
    assert decision.winner_auc < decision.challenger_auc
    assert (
        not decision.passed
        and "xgboost test ROC-AUC" in decision.reasons[0]
        and "below the minimum" in decision.reasons[0]
    )


def test_quality_cannot_ratchet_down_the_best_recent_production_version_is_the_bar() -> None:
    """Production moved from a strong version 2 to a weaker version 3 (within the margin each time): a new
    model as weak as version 3 passes against the current version but is refused against the best recent one."""
    y, baseline = synthetic_scores()
    strong, weaker = baseline + y * 1.0, baseline + y * 0.6
    aucs = [evaluate.classification_metrics(y, s)["roc_auc"] for s in (weaker, baseline)]
    kwargs = {"labels": y, "challenger_scores": weaker, "baseline_scores": baseline, "resamples": 300, "margin": 0.01}
    against_current = evaluate.gate(*aucs, production_scores={"3": weaker}, **kwargs)
    assert against_current.passed and against_current.production_version == "3"
    against_recent = evaluate.gate(*aucs, production_scores={"2": strong, "3": weaker}, **kwargs)
    assert not against_recent.passed and against_recent.production_version == "2"
    assert set(against_recent.recent_production) == {"2", "3"}
    assert against_recent.recent_production["2"] > against_recent.recent_production["3"]
    assert "best recent production version (2)" in against_recent.reasons[0]


def test_production_is_compared_only_on_test_rows_it_was_not_trained_on() -> None:
    """A registered version was refit on every labelled cutoff of its commit: on the rows it saw it is perfect,
    on later rows it is as good as the new model. Compared on every row it refuses an equal model; limited
    to the rows it never saw (``production_rows``), it does not, and its reported ROC-AUC is the one there."""
    y, baseline = synthetic_scores()
    winner = baseline + y * 0.6
    seen = np.arange(y.size) < y.size // 2
    production = np.where(seen, y.astype(float), winner)  # memorised where seen, the same model elsewhere
    aucs = [evaluate.classification_metrics(y, s)["roc_auc"] for s in (winner, baseline)]
    kwargs = {"labels": y, "challenger_scores": winner, "baseline_scores": baseline, "resamples": 300, "margin": 0.01}
    everywhere = evaluate.gate(*aucs, production_scores={"1": production}, **kwargs)
    assert not everywhere.passed and "best recent production version (1)" in everywhere.reasons[0]
    unseen = evaluate.gate(*aucs, production_scores={"1": production}, production_rows=~seen, **kwargs)
    assert unseen.passed and unseen.vs_production is not None
    assert unseen.production_auc == pytest.approx(evaluate.classification_metrics(y[~seen], winner[~seen])["roc_auc"])
