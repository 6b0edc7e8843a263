"""The canary decision on stored metric series: healthy is promoted, broken is rolled back, quiet holds."""

from __future__ import annotations

import math
from typing import Any

import pytest

from churnops.deploy.canary import RevisionMetrics, Thresholds, bin_counts, histogram_quantile, judge
from tests.support.prometheus_double import load_series

LIMITS = Thresholds(min_requests=200, max_error_rate=0.01, max_p99_ratio=1.5, max_p99_s=0.5, max_psi=0.2)


def _metrics(role: str, data: dict[str, Any]) -> RevisionMetrics:
    def buckets(raw: dict[str, float]) -> dict[float, float]:
        return {float(le): float(count) for le, count in raw.items()}

    return RevisionMetrics(role, float(data["requests"]), float(data["errors_5xx"]),
                           buckets(data["latency_ms"]), buckets(data["probability"]))


def _verdicts(series: str) -> list[Any]:
    windows = load_series(series)
    return [judge(_metrics("stable", w["stable"]), _metrics("canary", w["canary"]), LIMITS) for w in windows]


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    cumulative = {10.0: 50.0, 20.0: 90.0, 50.0: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, cumulative) == pytest.approx(10.0)  # rank 50 at the first bucket's top
    assert histogram_quantile(0.7, cumulative) == pytest.approx(15.0)  # 10 + 10 * (70 - 50) / 40
    assert histogram_quantile(0.99, cumulative) == pytest.approx(47.0)  # 20 + 30 * (99 - 90) / 10
    assert histogram_quantile(0.99, {10.0: 10.0, math.inf: 100.0}) == 10.0  # in +Inf: the highest finite bound
    assert math.isnan(histogram_quantile(0.99, {10.0: 0.0, math.inf: 0.0}))
    assert bin_counts(cumulative) == [50.0, 40.0, 10.0, 0.0]


def test_a_healthy_canary_is_healthy_in_every_window() -> None:
    verdicts = _verdicts("healthy")
    assert [v.decision for v in verdicts] == ["healthy"] * 3
    assert verdicts[0].figures["psi"] == pytest.approx(0.0, abs=1e-3)
    assert verdicts[0].figures["canary_p99_s"] == pytest.approx(verdicts[0].figures["stable_p99_s"], rel=0.05)


def test_a_raised_5xx_rate_is_rolled_back_from_the_window_it_starts() -> None:
    verdicts = _verdicts("errors")
    assert [v.decision for v in verdicts] == ["healthy", "rollback", "rollback"]
    assert verdicts[1].figures["canary_error_rate"] == pytest.approx(12 / 300)
    assert verdicts[1].reasons == ("5xx rate 4.00% > 1.00%",)


def test_raised_latency_is_rolled_back() -> None:
    verdict = _verdicts("latency")[0]
    assert verdict.decision == "rollback"
    assert verdict.figures["canary_p99_s"] > LIMITS.max_p99_s
    assert any("p99 latency" in reason for reason in verdict.reasons)


def test_latency_within_the_absolute_limit_but_far_above_stable_is_rolled_back() -> None:
    fast = {10.0: 990.0, 20.0: 1000.0, math.inf: 1000.0}
    slower = {10.0: 100.0, 50.0: 280.0, 100.0: 300.0, math.inf: 300.0}
    probability = {0.5: 50.0, 1.0: 100.0, math.inf: 100.0}
    stable, canary = RevisionMetrics("s", 1000, 0, fast, probability), RevisionMetrics("c", 300, 0, slower, probability)
    verdict = judge(stable, canary, LIMITS)
    assert verdict.decision == "rollback" and "x stable" in verdict.reasons[0]


def test_shifted_predictions_are_rolled_back_on_psi() -> None:
    verdict = _verdicts("shifted")[0]
    assert verdict.decision == "rollback"
    assert verdict.figures["psi"] > LIMITS.max_psi
    assert verdict.reasons == (f"predicted-probability PSI {verdict.figures['psi']:.3f} > 0.2",)


def test_too_little_traffic_holds_and_says_so() -> None:
    verdicts = _verdicts("little_traffic")
    assert {v.decision for v in verdicts} == {"hold"}
    assert "too little traffic to decide" in verdicts[0].reasons[0] and "needs 200" in verdicts[0].reasons[0]


def test_a_canary_without_probability_observations_holds() -> None:
    latency = {10.0: 300.0, math.inf: 300.0}
    verdict = judge(RevisionMetrics("s", 3000, 0, latency, {}), RevisionMetrics("c", 300, 0, latency, {}), LIMITS)
    assert verdict.decision == "hold" and "no predicted-probability" in verdict.reasons[-1]
