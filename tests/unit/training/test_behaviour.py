"""Behavioural tests: the trained model against what the generator knows to be true.

One training per model (the baseline and the XGBoost challenger: whichever the gate picks), on a small generated
lake (the real feature build, split, candidates, constraints and calibration); the checks score a *fresh*
population (another seed: other customers, other histories) whose every customer's churn logit and cancellation
time the generator knows:

- directional: what raises the generator's churn logit raises the model's probability, row by row;
- invariance: what the generator ignores (country) barely moves it;
- minimum functionality: ROC-AUC on the true labels of the fresh population between a floor and the
  generator's own Bayes ceiling (a model above the ceiling sees something it should not: leakage);
- calibration: on the true labels, probabilities are churn rates (calibration error, mean probability);
- memorisation: the customers training never saw are ranked as well as the ones it did.

Each check holds for the model, or the gate's own behavioural checks (on validation, as training runs them)
refuse the model: a model that fails here is never registered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from churnops.platform.alerts import AlertSink
from churnops.platform.settings import Settings
from churnops.training import evaluate
from churnops.training.behaviour import BehaviourReport, check_behaviour
from churnops.training.estimators import BASELINE, CHALLENGER, fit_chosen
from churnops.training.features import (
    GHOST_AFTER_HOURS,
    LABEL,
    FeatureSpec,
    build_features,
    build_training_set,
    feature_spec,
    held_out_customers,
)
from churnops.training.performance import check_matured_performance, matured_cutoffs, matured_performance
from churnops.training.train import TrainingConfig, alert_ghosts, build_splits
from tests.support.generated import START, GeneratedLake, generate_lake, label_agreement, oracle_scores

HOURS, CUSTOMERS = 48, 1200
TRAIN_SEED, FRESH_SEED = 11, 12
# Cutoffs of the fresh population: each with a full label horizon inside the generated span.
FRESH_CUTOFFS = tuple(pd.Timestamp(START) + pd.Timedelta(hours=h) for h in range(24, 43, 3))
PERTURBED_CUTOFFS = FRESH_CUTOFFS[::2]
AUC_FLOOR = 0.75  # the floor the model must reach on a population it never saw (stated in docs/training.md)
DIRECTIONAL_SHARE = 0.99
INVARIANCE_SHARE, INVARIANCE_TOLERANCE = 0.95, 0.02
# Half the customers held out of training (by id, as training does with 10 %): a tighter seen/unseen comparison.
HOLDOUT_SHARE = 0.5
MEMORISATION_GAP = 0.02
# Calibration on the fresh population's true labels (stated in docs/training.md): expected calibration error and
# the gap between the mean probability and the churn rate.
CALIBRATION_ERROR_MAX, MEAN_PROBABILITY_GAP = 0.02, 0.01


@dataclass(frozen=True)
class Trained:
    """The model under test, its spec and configuration, the training split, and the fresh population."""

    model: Pipeline
    spec: FeatureSpec
    config: TrainingConfig
    splits: dict[str, pd.DataFrame]
    lake: GeneratedLake
    fresh: GeneratedLake
    fresh_rows: pd.DataFrame
    gate_checks: BehaviourReport  # the gate's behavioural checks of this model on validation

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        """The model's churn probability per row."""
        return evaluate.churn_probability(self.model, rows[self.spec.columns])

    def rebuilt(self, events: pd.DataFrame, subscriptions: pd.DataFrame) -> pd.DataFrame:
        """The fresh population's feature rows at the perturbation cutoffs, from (changed) tables."""
        frames = [build_features(events, subscriptions, c, self.config.windows_h) for c in PERTURBED_CUTOFFS]
        return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class Lakes:
    """The training lake, its split, and the fresh population with its feature rows: built once per module."""

    config: TrainingConfig
    lake: GeneratedLake
    splits: dict[str, pd.DataFrame]
    fresh: GeneratedLake
    fresh_rows: pd.DataFrame


@pytest.fixture(scope="module", name="lakes")
def lakes_fixture() -> Lakes:
    """The lakes both models are trained and checked on."""
    config = TrainingConfig(holdout_share=HOLDOUT_SHARE)
    lake = generate_lake(HOURS, CUSTOMERS, TRAIN_SEED)
    splits = build_splits(lake.events, lake.subscriptions, config)
    fresh = generate_lake(HOURS, CUSTOMERS, FRESH_SEED)
    rows = pd.concat(
        [build_features(fresh.events, fresh.subscriptions, c, config.windows_h) for c in FRESH_CUTOFFS],
        ignore_index=True,
    )
    return Lakes(config, lake, splits, fresh, rows)


@pytest.fixture(scope="module", name="trained", params=[BASELINE, CHALLENGER])
def trained_fixture(request: pytest.FixtureRequest, lakes: Lakes) -> Trained:
    """Each model as training fits it (its features, split, candidates, constraints and preprocessing), chosen on
    validation and calibrated there, trained once: whichever the gate picks must pass."""
    spec = feature_spec(lakes.config.windows_h)
    _, model = fit_chosen(request.param, lakes.splits, spec, lakes.config, 42)
    seen = set(lakes.splits["train"]["customer_token"].astype(str))
    checks = check_behaviour(request.param, model, lakes.splits["validation"], spec, lakes.config, seen, 42)
    return Trained(model, spec, lakes.config, lakes.splits, lakes.lake, lakes.fresh, lakes.fresh_rows, checks)


def holds_or_is_refused(trained: Trained, holds: bool, figure: object) -> None:
    """The ground truth's check holds for the model, or the gate refuses to register it: its own behavioural
    checks on validation fail. A model that fails on the fresh population never becomes a candidate."""
    assert holds or not trained.gate_checks.passed, (figure, trained.gate_checks.to_dict())


def _with_subscription_value(trained: Trained, column: str, value: str) -> pd.DataFrame:
    """The perturbation rows with ``column`` set to ``value`` on every subscription record, all else unchanged."""
    return trained.rebuilt(trained.fresh.events, trained.fresh.subscriptions.assign(**{column: value}))


def test_the_lake_labels_are_the_generators_truth(lakes: Lakes) -> None:
    for frame in lakes.splits.values():
        assert label_agreement(lakes.lake, frame, lakes.config.horizon_h) == 1.0


@pytest.mark.parametrize(
    ("column", "riskier", "safer"),
    [
        ("contract", "monthly", "annual"),
        ("contract", "annual", "two_year"),
        ("payment_method", "invoice", "card"),
    ],
)
def test_directional_what_the_generator_makes_riskier_the_model_scores_higher(
    trained: Trained, column: str, riskier: str, safer: str
) -> None:
    higher = trained.score(_with_subscription_value(trained, column, riskier))
    lower = trained.score(_with_subscription_value(trained, column, safer))
    holds_or_is_refused(trained, (higher > lower).mean() >= DIRECTIONAL_SHARE, (higher > lower).mean())


def test_directional_a_support_spike_with_falling_activity_raises_the_risk(trained: Trained) -> None:
    """Every customer's last six hours: half the events gone, three support contacts in the last three hours."""
    events = trained.fresh.events
    before = trained.rebuilt(events, trained.fresh.subscriptions)
    changed = []
    for cutoff in PERTURBED_CUTOFFS:
        recent = (events["event_time"] >= cutoff - pd.Timedelta(hours=6)) & (events["event_time"] < cutoff)
        kept = events[~recent | (np.arange(len(events)) % 2 == 0)]
        spike = pd.DataFrame(
            {
                "customer_token": np.repeat(trained.fresh.truth.index.to_numpy(), 3),
                "event_time": np.tile(
                    [cutoff - pd.Timedelta(hours=h) for h in (0.5, 1.5, 2.5)], len(trained.fresh.truth)
                ),
                "event_type": "support_contact",
                "session_id": "support",
                "duration_s": 60.0,
                "amount": np.nan,
            }
        )
        changed.append(build_features(pd.concat([kept, spike], ignore_index=True), trained.fresh.subscriptions, cutoff))
    after = pd.concat(changed, ignore_index=True)
    assert after["customer_token"].tolist() == before["customer_token"].tolist()
    share = (trained.score(after) > trained.score(before)).mean()
    holds_or_is_refused(trained, share >= DIRECTIONAL_SHARE, share)


@pytest.mark.parametrize("country", ["US", "DE", "IN"])
def test_invariance_changing_only_the_country_barely_moves_the_probability(trained: Trained, country: str) -> None:
    original = trained.score(trained.rebuilt(trained.fresh.events, trained.fresh.subscriptions))
    moved = np.abs(trained.score(_with_subscription_value(trained, "country", country)) - original)
    holds_or_is_refused(trained, (moved < INVARIANCE_TOLERANCE).mean() >= INVARIANCE_SHARE, moved)


def test_minimum_functionality_between_a_floor_and_the_generators_ceiling(trained: Trained) -> None:
    rows = trained.fresh_rows
    truth = trained.fresh.true_labels(rows, trained.config.horizon_h)
    auc = roc_auc_score(truth, trained.score(rows))
    ceiling = roc_auc_score(truth, oracle_scores(trained.fresh, rows, trained.config.horizon_h))
    holds_or_is_refused(trained, AUC_FLOOR <= auc <= ceiling, (auc, ceiling))


def test_calibration_on_a_fresh_population_probabilities_are_churn_rates(trained: Trained) -> None:
    """What a retention team reads as "p = 0.2" is a 20 % chance: on the fresh population's true labels the
    expected calibration error stays small, the mean probability is the observed churn rate, and the Brier
    score beats always predicting that rate."""
    rows = trained.fresh_rows
    truth = trained.fresh.true_labels(rows, trained.config.horizon_h)
    probability = trained.score(rows)
    error = evaluate.calibration_error(truth, probability)
    holds_or_is_refused(
        trained,
        error <= CALIBRATION_ERROR_MAX
        and abs(probability.mean() - truth.mean()) <= MEAN_PROBABILITY_GAP
        and np.mean((probability - truth) ** 2) < np.mean((truth.mean() - truth) ** 2),
        (error, probability.mean(), truth.mean()),
    )


def test_no_memorisation_customers_never_trained_on_are_ranked_as_well_as_the_others(trained: Trained) -> None:
    """On validation and test, the customers training saw are not ranked better than the held-out ones."""
    rows = pd.concat([trained.splits["validation"], trained.splits["test"]], ignore_index=True)
    held_out = held_out_customers(rows["customer_token"], trained.config.holdout_share)
    scores, truth = trained.score(rows), rows[LABEL].to_numpy()
    unseen = roc_auc_score(truth[held_out], scores[held_out])
    seen = roc_auc_score(truth[~held_out], scores[~held_out])
    holds_or_is_refused(trained, seen - unseen <= MEMORISATION_GAP, (seen, unseen))


def test_churners_whose_cancellation_was_lost_become_ghosts_not_negatives(lakes: Lakes) -> None:
    """Lose every cancellation record (as an empty billing export would): a churner falls silent when it leaves,
    so once silent beyond the span it is a ghost and is neither labelled "stayed" nor scored; few live
    customers are silent that long."""
    lake = lakes.lake
    lost = lake.subscriptions[lake.subscriptions["status"] != "cancelled"]
    frame = build_training_set(lake.events, lost, FRESH_CUTOFFS, lakes.config.horizon_h)
    churn = lake.truth.loc[frame["customer_token"], "churn_time"].to_numpy()
    gone_for = (pd.DatetimeIndex(frame["cutoff"]) - pd.DatetimeIndex(churn)) / pd.Timedelta(hours=1)
    assert not (gone_for > GHOST_AFTER_HOURS + 2).any()  # two hours of decayed activity at most before leaving
    live = frame[pd.isna(churn) | (gone_for < 0)]
    everyone = build_training_set(lake.events, lost, FRESH_CUTOFFS, lakes.config.horizon_h, ghost_after_h=None)
    everyone_churn = lake.truth.loc[everyone["customer_token"], "churn_time"].to_numpy()
    everyone_live = (pd.isna(everyone_churn)) | (
        pd.DatetimeIndex(everyone_churn) > pd.DatetimeIndex(everyone["cutoff"])
    )
    assert 1 - len(live) / everyone_live.sum() < 0.01, (len(live), everyone_live.sum())


def test_training_alerts_on_the_ghosts_it_leaves_out(lakes: Lakes, settings: Settings) -> None:
    """Every cancellation record lost: at the last cutoff, every churner gone for longer than the span (and two
    hours of decayed activity) is a ghost, and the alert training raises counts the ghosts, naming no one."""
    lake, cutoff = lakes.lake, FRESH_CUTOFFS[-1]
    lost = lake.subscriptions[lake.subscriptions["status"] != "cancelled"]
    sink = AlertSink(settings)
    count = alert_ghosts(sink, lake.events, lost, cutoff, "run-1")
    churn = pd.DatetimeIndex(lake.truth["churn_time"])
    long_gone = int(((cutoff - churn) / pd.Timedelta(hours=1) > GHOST_AFTER_HOURS + 2).sum())
    assert count >= long_gone > 0
    assert len(sink.emitted) == 1
    alert = sink.emitted[0]
    assert (alert.kind, alert.counts, alert.run_id) == ("ghost_customers", {"ghosts": count}, "run-1")
    assert not set(lake.truth.index) & set(alert.message.split())
    assert alert_ghosts(sink, lake.events, lost, pd.Timestamp(START) + pd.Timedelta(hours=6)) == 0
    assert len(sink.emitted) == 1  # no ghost, no alert


def test_matured_labels_measure_the_model_and_alert_on_degradation(trained: Trained, settings: Settings) -> None:
    """The fresh population stands in for the period after training: its labels have matured."""
    fresh = trained.fresh
    since = FRESH_CUTOFFS[0]
    result = matured_performance(
        trained.model,
        fresh.events,
        fresh.subscriptions,
        since,
        columns=trained.spec.columns,
        config=TrainingConfig(capacity_share=0.1),
    )
    assert result.first_cutoff == since.isoformat() and result.cutoffs == HOURS - 6 - 24 + 1
    rows = build_training_set(
        fresh.events, fresh.subscriptions, matured_cutoffs(fresh.events, fresh.subscriptions, since, 6)
    )
    assert (rows[LABEL].to_numpy() == fresh.true_labels(rows, 6)).all()  # the lake's matured labels are the truth
    assert result.rows == len(rows) and result.churners == int(rows[LABEL].sum())
    assert result.roc_auc == pytest.approx(roc_auc_score(rows[LABEL], trained.score(rows)))
    assert result.precision_at_k > 2 * result.churn_rate  # the top tenth holds churners well above the base rate
    sink = AlertSink(settings)
    assert not check_matured_performance(result, sink, min_auc=0.6, max_calibration_error=1.0, model="m")
    assert not sink.emitted
    problems = check_matured_performance(
        result, sink, min_auc=result.roc_auc + 0.01, max_calibration_error=1.0, model="m"
    )
    assert len(problems) == 1 and [a.kind for a in sink.emitted] == ["performance"]
