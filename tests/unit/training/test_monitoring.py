"""Drift monitoring's binning and verdict, against hand-computed PSI values, and its sensitivity on simulated
shifts: a price rise and an engagement drop fire the check, unshifted data does not."""

from __future__ import annotations

import gzip
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from churnops.local import datagen, driftsim
from churnops.platform.settings import Settings
from churnops.training import monitoring
from churnops.training.monitoring import Distribution, DriftReport, DriftRule

EPS = 1e-4  # the PSI share floor


def psi_by_hand(expected: list[float], actual: list[float]) -> float:
    """PSI written out term by term."""
    e = [max(x / sum(expected), EPS) for x in expected]
    a = [max(x / sum(actual), EPS) for x in actual]
    return sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a))


def test_categorical_bins_are_the_reference_categories_plus_unseen_and_missing() -> None:
    reference = pd.Series(["basic"] * 6 + ["premium"] * 4)
    current = pd.Series(["basic"] * 3 + ["premium"] * 3 + ["family"] * 2 + [None] * 2)
    result = monitoring.categorical_distribution("plan", reference, current)

    assert result.bins == ["basic", "premium", monitoring.OTHER_BIN, monitoring.MISSING_BIN]
    assert result.reference_share == [0.6, 0.4, 0.0, 0.0]
    assert result.current_share == [0.3, 0.3, 0.2, 0.2]
    assert result.psi == pytest.approx(psi_by_hand([6, 4, 0, 0], [3, 3, 2, 2]))


def test_numeric_bins_are_reference_quantiles_plus_a_missing_bin() -> None:
    reference = pd.Series([1.0, 2.0, 3.0, 4.0])
    current = pd.Series([1.0, 1.0, 4.0, np.nan])
    result = monitoring.numeric_distribution("x", reference, current, bins=2)  # one edge: the median, 2.5

    assert result.bins == ["<= 2.5", "> 2.5", monitoring.MISSING_BIN]
    assert result.reference_share == [0.5, 0.5, 0.0]
    assert result.current_share == [0.5, 0.25, 0.25]
    assert result.psi == pytest.approx(psi_by_hand([2, 2, 0], [2, 1, 1]))


def test_identical_samples_have_zero_psi() -> None:
    values = pd.Series(np.random.default_rng(0).normal(size=500))
    assert monitoring.numeric_distribution("x", values, values, bins=10).psi == pytest.approx(0.0)


def test_prediction_bins_are_equal_width_on_the_unit_interval() -> None:
    result = monitoring.prediction_distribution(np.array([0.05, 0.15, 0.95]), np.array([0.05, 0.05, 0.05]), bins=10)
    assert len(result.bins) == 10 and result.bins[0] == "<= 0.10" and result.bins[-1] == "> 0.90"
    assert result.reference_share[0] == pytest.approx(1 / 3) and result.current_share[0] == 1.0


def _report(psis: list[float], prediction_psi: float, size: int = 1000) -> DriftReport:
    shares = [0.1] * 10
    distributions = [Distribution(f"f{i}", "numeric", p, [], shares, shares, size, size) for i, p in enumerate(psis)]
    distributions.append(
        Distribution(monitoring.PREDICTION, "prediction", prediction_psi, [], shares, shares, size, size)
    )
    return DriftReport(
        "m", "1", "ref", "snap", "data", "cutoff", threshold=0.25, false_alarm_rate=0.01, distributions=distributions
    )


def test_one_drifted_feature_of_many_fires_the_check() -> None:
    report = _report([0.9] + [0.01] * 9, prediction_psi=0.6)
    assert report.drifted == ["f0", monitoring.PREDICTION]
    assert report.drifted_feature_share == pytest.approx(0.1)
    assert report.fired and report.to_dict()["fired"] is True


def test_features_below_the_threshold_and_a_drifted_prediction_alone_stay_quiet() -> None:
    report = _report([0.24] * 10, prediction_psi=0.6)
    assert report.drifted == [monitoring.PREDICTION] and not report.fired
    assert report.table()["bar"].tolist() == pytest.approx([0.25] * 11)  # large samples: the threshold is the bar


def test_in_small_samples_a_psi_sampling_noise_can_reach_does_not_count() -> None:
    report = _report([0.9] + [0.01] * 9, prediction_psi=0.0, size=20)
    threshold = report.table().set_index("name").loc["f0", "bar"]
    assert threshold > 0.9 and not report.drifted and not report.fired


def test_the_rule_counts_only_occupied_bins_and_divides_the_false_alarm_rate_among_the_features() -> None:
    rule = DriftRule(threshold=0.01, false_alarm_rate=0.01)
    wide = Distribution("x", "numeric", 0.0, [], [0.5, 0.5, 0.0], [0.5, 0.5, 0.0], 100, 100)
    assert wide.occupied_bins == 2
    assert rule.psi_bar(wide, features=10) > rule.psi_bar(wide, features=1) > rule.threshold


@pytest.mark.parametrize(
    ("scenario", "moved"),
    [
        ("none", ()),
        ("price", ("monthly_charges",)),
        ("engagement", ("events_6h", "relative_activity_6h", "relative_activity_24h", "rate_change_6h_24h")),
    ],
)
def test_a_price_rise_and_an_engagement_drop_fire_and_unshifted_data_does_not(
    scenario: str, moved: tuple[str, ...]
) -> None:
    # a model trained at hour 48 of 60; from hour 48 a 15 % list-price rise or a 30 % engagement drop
    shift = driftsim.Shift(hours=60, customers=600, shift_hour=48)
    reference, current, spec = driftsim.drift_sample(shift, scenario, seed=0)
    settings = Settings()
    distributions = monitoring.compare(reference, current, spec, settings.drift_bins)
    rule = DriftRule.from_settings(settings)

    assert rule.fires(distributions) is (scenario != "none")
    drifted = rule.drifted(distributions)
    assert not drifted if scenario == "none" else set(drifted) & set(moved)
    # the reference is the latest training cutoffs, all before the shift; the current sample is after it
    assert (
        pd.to_datetime(reference["cutoff"]).max()
        < shift.moment
        < pd.Timestamp(driftsim.START) + pd.Timedelta(hours=shift.hours)
    )
    assert len(current) > 0 and reference["customer_token"].nunique() == distributions[0].reference_size


def test_the_generator_drift_option_lowers_activity_of_the_shifted_share_only_after_its_start() -> None:
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    plain = datagen.generate(12, 200, start=start, seed=4)
    shifted = datagen.generate(
        12, 200, start=start, seed=4, drift=datagen.Drift(start_h=6, share=0.5, activity_factor=0.0)
    )

    def event_lines(data: datagen.GeneratedData, from_h: int, to_h: int) -> list[bytes]:
        window = (start + timedelta(hours=from_h), start + timedelta(hours=to_h))
        return [
            line
            for o in data.objects
            if "/events/" in o.name and window[0] <= o.hour < window[1]
            for line in gzip.decompress(o.data).splitlines()
        ]

    assert event_lines(plain, 0, 6) == event_lines(shifted, 0, 6)  # nothing changes before the shift
    assert len(event_lines(shifted, 6, 12)) < 0.7 * len(event_lines(plain, 6, 12))
    with pytest.raises(ValueError, match="drift needs"):
        datagen.Drift(start_h=1, share=0.0)
