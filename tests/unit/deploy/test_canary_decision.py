"""The canary decision on stored metric series: the canary is judged against the stable revision with a
Bayesian rule on the 5xx and slow-request rates, needs a minimum sample, and reports PSI without acting on it."""

from __future__ import annotations

import math
from typing import Any

import pytest

from churnops.deploy.canary import (
    RevisionMetrics,
    Thresholds,
    Verdict,
    bin_counts,
    combine,
    histogram_quantile,
    judge,
    next_step,
    prob_worse,
)
from churnops.errors import ConfigurationError, DeploymentError
from churnops.platform.settings import Settings
from tests.support.prometheus_double import load_series

LIMITS = Thresholds(min_requests=500, error_margin=0.002, slow_ms=250, slow_margin=0.01, confidence=0.99, max_psi=0.2)


def _metrics(role: str, data: dict[str, Any]) -> RevisionMetrics:
    def buckets(raw: dict[str, float]) -> dict[float, float]:
        return {float(le): float(count) for le, count in raw.items()}

    return RevisionMetrics(
        role,
        float(data["requests"]),
        float(data["errors_5xx"]),
        buckets(data["latency_ms"]),
        buckets(data["probability"]),
    )


def _verdicts(series: str) -> list[Verdict]:
    """The verdict after each window, on the traffic since the start (as the automatic canary adds it up)."""
    stable = canary = None
    verdicts = []
    for window in load_series(series):
        now_stable, now_canary = _metrics("stable", window["stable"]), _metrics("canary", window["canary"])
        stable = now_stable if stable is None else stable.plus(now_stable)
        canary = now_canary if canary is None else canary.plus(now_canary)
        verdicts.append(judge(stable, canary, LIMITS))
    return verdicts


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    cumulative = {10.0: 50.0, 20.0: 90.0, 50.0: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, cumulative) == pytest.approx(10.0)  # rank 50 at the first bucket's top
    assert histogram_quantile(0.7, cumulative) == pytest.approx(15.0)  # 10 + 10 * (70 - 50) / 40
    assert histogram_quantile(0.99, cumulative) == pytest.approx(47.0)  # 20 + 30 * (99 - 90) / 10
    assert histogram_quantile(0.99, {10.0: 10.0, math.inf: 100.0}) == 10.0  # in +Inf: the highest finite bound
    assert math.isnan(histogram_quantile(0.99, {10.0: 0.0, math.inf: 0.0}))
    assert bin_counts(cumulative) == [50.0, 40.0, 10.0, 0.0]


def test_the_posterior_probability_of_worse_follows_the_evidence() -> None:
    # the same rate on both arms: about even odds of "worse", far below the confidence that rolls back
    assert 0.3 < prob_worse(3, 600, 27, 5400, 0.0) < 0.7
    # 2 % against 0.5 % on 600 and 5400 requests: confidently worse by more than 0.2 points
    assert prob_worse(12, 600, 27, 5400, 0.002) > 0.99
    # the same 2 % on 50 requests (one error) is not enough to roll back
    assert prob_worse(1, 50, 27, 5400, 0.002) < 0.99
    # reproducible: a fixed seed
    assert prob_worse(5, 600, 27, 5400, 0.002) == prob_worse(5, 600, 27, 5400, 0.002)


def test_a_healthy_canary_is_healthy_once_it_has_the_minimum_sample() -> None:
    verdicts = _verdicts("healthy")
    assert [v.decision for v in verdicts] == ["hold", "healthy", "healthy"]  # 300, 600, 900 canary requests
    assert "needs 500" in verdicts[0].reasons[0]
    assert verdicts[1].figures["psi"] == pytest.approx(0.0, abs=1e-3)
    assert verdicts[1].figures["p_error_worse"] < 0.5


def test_a_raised_5xx_rate_is_rolled_back_against_the_stable_rate() -> None:
    verdicts = _verdicts("errors")
    assert [v.decision for v in verdicts] == ["hold", "rollback", "rollback"]
    assert verdicts[1].figures["canary_error_rate"] == pytest.approx(12 / 600)
    assert verdicts[1].reasons[0].startswith("predictor 5xx rate 2.00% vs stable 0.07%: P(worse by more than 0.20%)")


def test_an_absolute_5xx_rate_the_stable_revision_shares_is_not_a_rollback() -> None:
    latency = {250.0: 1000.0, math.inf: 1000.0}
    stable = RevisionMetrics("s", 9000, 180, {250.0: 9000.0, math.inf: 9000.0})  # 2 % on both arms
    canary = RevisionMetrics("c", 1000, 20, latency)
    assert judge(stable, canary, LIMITS).decision == "healthy"


def test_slower_requests_are_rolled_back() -> None:
    verdict = _verdicts("latency")[1]
    assert verdict.decision == "rollback"
    assert verdict.figures["canary_slow_rate"] > 0.1 and verdict.figures["stable_slow_rate"] == 0
    assert any("requests over 250 ms" in reason for reason in verdict.reasons)


def test_shifted_predictions_are_reported_but_not_rolled_back() -> None:
    verdict = _verdicts("shifted")[1]
    assert verdict.decision == "healthy"
    assert verdict.figures["psi"] > LIMITS.max_psi
    assert verdict.notes and "PSI" in verdict.notes[0] and "rolls nothing back" in verdict.notes[0]
    assert "note: predicted-probability PSI" in verdict.line()


def test_too_little_traffic_holds_and_says_so() -> None:
    verdicts = _verdicts("little_traffic")
    assert {v.decision for v in verdicts} == {"hold"}
    assert "too little traffic to decide" in verdicts[0].reasons[0] and "needs 500" in verdicts[0].reasons[0]


def test_a_latency_histogram_without_the_slow_bound_is_an_error_not_a_guess() -> None:
    odd = RevisionMetrics("c", 1000, 0, {200.0: 990.0, 300.0: 1000.0, math.inf: 1000.0})
    with pytest.raises(DeploymentError, match="no bucket at 250 ms"):
        judge(odd, odd, LIMITS)
    with pytest.raises(ConfigurationError, match="bucket bound of Knative's latency histogram"):
        Thresholds(500, 0.002, 251, 0.01, 0.99, 0.2)
    Thresholds.from_settings(Settings())  # the defaults are valid


def test_the_components_are_judged_together() -> None:
    healthy = Verdict("healthy", (), {"canary_requests": 900})
    worse = Verdict("rollback", ("transformer 5xx rate ...",), {"transformer_canary_requests": 900})
    hold = Verdict("hold", ("too little traffic ...",), {})
    assert combine([healthy, worse]).decision == "rollback"
    assert combine([healthy, worse]).reasons == ("transformer 5xx rate ...",)
    assert combine([healthy, hold]).decision == "hold"
    assert combine([healthy, healthy]).decision == "healthy"


@pytest.mark.parametrize(
    ("decision", "windows", "elapsed", "expected"),
    [
        ("rollback", 1, 0, "rollback"),
        ("healthy", 2, 600, "continue"),  # fewer healthy windows than required
        ("healthy", 3, 900, "promote"),
        ("hold", 5, 1500, "continue"),
        ("hold", 12, 3600, "expire"),  # no decision by the deadline: rolled back, never left at its share
        ("healthy", 1, 3600, "expire"),
    ],
)
def test_every_window_ends_in_one_step(decision: str, windows: int, elapsed: float, expected: str) -> None:
    verdict = Verdict(decision, (), {})  # type: ignore[arg-type]
    assert next_step(verdict, windows, 3, elapsed, 3600) == expected
