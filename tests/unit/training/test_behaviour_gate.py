"""The gate's behavioural checks, the challenger's monotone constraints, and the gate refusing a winner that fails.

The ground-truth behavioural tests (``test_behaviour.py``) score a fresh generated population; these test the
checks training itself runs on validation rows, on models and scores whose behaviour is known by construction.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from xgboost import XGBClassifier

from churnops.model.spec import FeatureSpec
from churnops.training import behaviour, evaluate
from churnops.training.config import DEFAULT_MONOTONE_DIRECTIONS, TrainingConfig
from churnops.training.estimators import BASELINE, fit_chosen, fit_pipeline
from churnops.training.features import feature_spec
from churnops.training.train import build_splits
from churnops.training.transform import ANY_CATEGORY, encoded_direction, encodes
from tests.unit.training.conftest import synthetic_lake

SPEC = FeatureSpec(numeric=("contract_months", "noise"), categorical=("payment_method",), windows_h=(1,))


def rows(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Model inputs of SPEC: contract months, a noise column, a payment method."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "contract_months": rng.choice([1.0, 12.0, 24.0], n),
            "noise": rng.normal(size=n),
            "payment_method": rng.choice(["card", "invoice", "paypal"], n),
        }
    )


def test_a_declared_direction_maps_onto_the_encoded_columns_it_names() -> None:
    directions = {"contract_months": -1, "n_support_contact_*": 1, "payment_method=invoice": 1}
    assert encoded_direction("numeric__contract_months", directions) == -1
    assert encoded_direction("numeric__n_support_contact_6h", directions) == 1
    assert encoded_direction("categorical__payment_method_invoice", directions) == 1
    assert encoded_direction("categorical__payment_method_card", directions) == 0
    assert encoded_direction("numeric__payment_method_invoice", directions) == 0  # a category is not a numeric column
    assert encoded_direction("numeric__tenure_h", directions) == 0


def test_an_encoded_column_is_known_by_the_column_and_category_it_encodes() -> None:
    assert encodes("numeric__contract_months", "contract_months")
    assert encodes("numeric__n_support_contact_6h", "n_support_contact_*")
    assert not encodes("numeric__contract_months", "contract")
    assert not encodes("numeric__contract_months", "contract_months", ANY_CATEGORY)  # a numeric column has none
    assert encodes("categorical__payment_method_invoice", "payment_method", "invoice")
    assert encodes("categorical__payment_method_invoice", "payment_method", ANY_CATEGORY)
    assert not encodes("categorical__payment_method_invoice", "payment_method", "card")
    assert not encodes("categorical__payment_method_invoice", "payment_method")  # a category is not a numeric column
    assert not encodes("categorical__payment_method_invoice", "payment", "invoice")


def test_every_declared_direction_names_a_model_input_of_the_default_spec() -> None:
    spec = feature_spec()
    for key in DEFAULT_MONOTONE_DIRECTIONS:
        column, _, category = key.partition("=")
        if category:
            assert column in spec.categorical
        else:
            assert any(encoded_direction(f"numeric__{name}", {key: 1}) for name in spec.numeric), key
    for column, _, _ in TrainingConfig().behaviour_directions:
        assert column in spec.columns


def test_the_challenger_follows_a_declared_direction_even_where_its_training_sample_says_otherwise() -> None:
    """A sample where longer contracts churn *more*: unconstrained, XGBoost learns that; constrained to the
    declared direction (-1), raising contract months never raises its probability."""
    frame = rows(2000, seed=1)
    rng = np.random.default_rng(2)
    labels = (rng.random(len(frame)) < np.where(frame["contract_months"] > 6, 0.5, 0.1)).astype(int)
    params = {"n_estimators": 30, "max_depth": 3, "n_jobs": 1, "random_state": 0}
    free = fit_pipeline(
        SPEC, XGBClassifier(**params), dataclasses.replace(TrainingConfig(), monotone_directions={}), frame, labels
    )
    bound = fit_pipeline(SPEC, XGBClassifier(**params), TrainingConfig(), frame, labels)
    assert "-1" in str(bound.named_steps["model"].get_params()["monotone_constraints"])
    short, long = frame.assign(contract_months=1.0), frame.assign(contract_months=24.0)
    free_p = (evaluate.churn_probability(free, long), evaluate.churn_probability(free, short))
    bound_p = (evaluate.churn_probability(bound, long), evaluate.churn_probability(bound, short))
    assert (free_p[0] > free_p[1]).mean() > 0.9  # the sample's direction
    assert (bound_p[0] <= bound_p[1]).all()  # the declared one, on every row


def test_directional_check_needs_the_riskier_value_strictly_higher_on_the_share() -> None:
    frame = rows()

    def decreasing(f: pd.DataFrame) -> np.ndarray:
        return 1 / (1 + f["contract_months"].to_numpy())

    def flat_above_a_year(f: pd.DataFrame) -> np.ndarray:
        return np.where(f["contract_months"].to_numpy() < 12, 0.3, 0.1)

    assert behaviour.directional(decreasing, frame, "contract_months", 12.0, 24.0, 0.99).passed
    tied = behaviour.directional(flat_above_a_year, frame, "contract_months", 12.0, 24.0, 0.99)
    assert not tied.passed and tied.figure == 0.0 and "0.0% of rows" in tied.detail
    assert tied.name == "directional_contract_months_12_over_24"
    absent = behaviour.directional(decreasing, frame, "tenure_h", 1.0, 2.0, 0.99)
    assert not absent.passed and "no model input" in absent.detail


def test_invariance_check_bounds_how_far_an_irrelevant_attribute_moves_the_probability() -> None:
    frame = rows()

    def by_payment(shift: float):
        def score(f: pd.DataFrame) -> np.ndarray:
            return 0.2 + shift * (f["payment_method"] == "invoice").to_numpy()

        return score

    assert behaviour.invariance(by_payment(0.01), frame, "payment_method", ["card", "invoice"], 0.95, 0.02).passed
    moved = behaviour.invariance(by_payment(0.1), frame, "payment_method", ["card", "invoice"], 0.95, 0.02)
    # Set to card, the invoice rows move by 0.1; set to invoice, every other row does: the invoice rows' share holds.
    assert not moved.passed and moved.figure == pytest.approx((frame["payment_method"] == "invoice").mean())
    assert behaviour.invariance(by_payment(0.1), frame, "country", ["US"], 0.95, 0.02).passed


def test_memorisation_is_refused_only_when_seen_customers_rank_better_beyond_noise() -> None:
    rng = np.random.default_rng(3)
    customers = np.repeat(np.arange(600), 3)
    labels = np.repeat(rng.random(600) < 0.2, 3).astype(int)
    seen = customers < 400
    honest = labels * 1.0 + rng.normal(size=labels.size)
    memorised = np.where(seen, labels * 3.0, labels * 0.5) + rng.normal(size=labels.size)
    args = (0.02, 0.95, 300, 0)
    assert behaviour.memorisation(labels, honest, seen, customers, *args).passed
    refused = behaviour.memorisation(labels, memorised, seen, customers, *args)
    assert not refused.passed and refused.figure > 0.2 and "600 customers" in refused.detail


def test_memorisation_cannot_tell_from_one_or_two_churning_held_out_customers() -> None:
    """One churning held-out customer ranked low: its rank is the held-out ROC-AUC, and the bootstrap's resamples
    that miss it are dropped, so the interval is narrow; the check says it cannot tell. Three, all ranked low,
    are a clear case and refused."""
    rng = np.random.default_rng(6)
    seen_labels = (rng.random(240) < 0.07).astype(int)
    seen_scores = seen_labels * 1.2 + rng.normal(size=240)
    args = (0.02, 0.95, 300, 0)
    for churning, passes in ((1, True), (2, True), (3, False)):
        held_labels = np.r_[np.ones(churning), np.zeros(24 - churning)].astype(int)
        held_scores = np.r_[np.full(churning, -5.0), rng.normal(size=24 - churning)]  # churners ranked lowest
        labels, scores = np.r_[seen_labels, held_labels], np.r_[seen_scores, held_scores]
        seen = np.arange(labels.size) < 240
        check = behaviour.memorisation(labels, scores, seen, np.arange(labels.size), *args)
        assert check.passed == passes, check.detail
        if passes:
            assert math.isnan(check.figure) and f"{churning} churning and {24 - churning} staying held-out" in (
                check.detail
            )
            assert not behaviour.BehaviourReport("baseline", "validation", (check,)).metrics()  # no figure logged
        else:
            assert check.figure > 0.5


def test_a_customer_bootstrap_of_a_subgroup_gap_covers_the_gap() -> None:
    rng = np.random.default_rng(4)
    customers = np.arange(1000)
    labels = (rng.random(1000) < 0.3).astype(int)
    scores = labels + rng.normal(size=1000)
    first = customers % 2 == 0
    gap = evaluate.subgroup_auc_difference(labels, scores, first, customers, resamples=500, seed=1)
    assert gap.low < gap.difference < gap.high and gap.low < 0 < gap.high  # the same model on both halves
    with pytest.raises(ValueError, match="both classes"):
        evaluate.subgroup_auc_difference(labels, scores, labels == 1, customers)
    assert gap.resamples == 500 and gap.groups == 1000 and gap.rows == 1000
    with pytest.raises(ValueError, match="resamples must be positive, got 0"):
        evaluate.subgroup_auc_difference(labels, scores, first, customers, resamples=0)


def test_the_gate_refuses_a_winner_that_fails_a_behavioural_check_and_says_why() -> None:
    rng = np.random.default_rng(5)
    labels = (rng.random(2000) < 0.2).astype(int)
    strong, weak = labels * 2.0 + rng.normal(size=2000), labels * 0.5 + rng.normal(size=2000)
    aucs = [evaluate.classification_metrics(labels, s)["roc_auc"] for s in (strong, weak)]
    kwargs = {"labels": labels, "challenger_scores": strong, "baseline_scores": weak, "resamples": 200}
    why = "xgboost fails the behavioural check directional_contract_months_12_over_24 on validation: ..."
    refused = evaluate.gate(*aucs, behaviour={"xgboost": [why], "baseline": []}, **kwargs)
    assert refused.winner == "xgboost" and not refused.passed and refused.reasons == [why]
    assert why in refused.markdown() and refused.to_dict()["reasons"] == [why]
    # The loser's failures do not refuse the winner.
    assert evaluate.gate(*aucs, behaviour={"baseline": ["baseline fails ..."]}, **kwargs).passed


@pytest.fixture(scope="module", name="small")
def small_fixture() -> tuple[TrainingConfig, dict[str, pd.DataFrame]]:
    """The splits of a small synthetic lake (contract and payment method in its records)."""
    config = TrainingConfig(windows_h=(1, 6), horizon_h=4, min_history_h=6, gate_resamples=200)
    events, subscriptions = synthetic_lake(customers=300, hours=40, seed=3)
    return config, build_splits(events, subscriptions, config)


def test_check_behaviour_reports_every_declared_check_as_metrics_and_reasons(
    small: tuple[TrainingConfig, dict[str, pd.DataFrame]],
) -> None:
    """Every declared check is in the report, its figure a metric; a failed one is a reason the gate refuses with.
    Monthly contracts churn more in this lake: the baseline holds that direction on every row."""
    config, splits = small
    spec = feature_spec(config.windows_h)
    _, model = fit_chosen(BASELINE, splits, spec, config, 42)
    seen = set(splits["train"]["customer_token"].astype(str))
    report = behaviour.check_behaviour(BASELINE, model, splits["validation"], spec, config, seen, 42)
    names = [check.name for check in report.checks]
    assert names == [
        "directional_contract_months_1_over_12",
        "directional_contract_months_12_over_24",
        "directional_payment_method_invoice_over_card",
        "invariance_country",
        "memorisation_gap",
    ]
    assert set(report.metrics()) <= {f"validation_behaviour_{name}" for name in names}
    assert report.metrics()["validation_behaviour_directional_contract_months_1_over_12"] == 1.0
    failed = [check.name for check in report.checks if not check.passed]
    assert report.passed == (not failed) and len(report.reasons()) == len(failed)
    assert all("fails the behavioural check" in reason for reason in report.reasons())
    assert json.loads(json.dumps(report.to_dict()))["checks"][0]["name"] == names[0]


def test_the_configuration_round_trips_its_declarations_through_json() -> None:
    config = TrainingConfig(behaviour_directions=(("contract_months", 1.0, 24.0),), monotone_directions={"x": 1})
    again = TrainingConfig.from_json(config.to_json())
    assert again == config and again.behaviour_irrelevant == (("country", ("US", "DE", "IN")),)
    assert json.loads(config.as_params()["monotone_directions"]) == {"x": 1}
