"""How often the canary rule rolls back a good release, and how often it lets a bad one through.

Simulates production canaries with the decision code `churnops canary auto` runs
(:func:`churnops.deploy.canary.judge`, :func:`~churnops.deploy.canary.combine` and
:func:`~churnops.deploy.canary.next_step`, with the settings' defaults): every window, each arm of the
predictor and of the transformer gets Poisson traffic (the canary its share), binomial 5xx answers and
log-normal latencies counted into Knative's queue-proxy buckets; the windows add up as the analysis
adds them. Scenarios:

* ``same model``: both arms are the same release (0.5 % 5xx, median 100 ms); every rollback is false;
* ``errors x4`` / ``errors x2``: the canary answers 2 % / 1 % 5xx; every promotion is a missed regression;
* ``latency x1.5``: the canary's latencies are 1.5 times the stable ones; every promotion is missed;
* ``low traffic``: the same model at 1 request/s, where the deadline comes before enough requests.

Prints, per scenario, the share of canaries promoted, rolled back for a reason and rolled back at the
deadline, and the mean windows to a decision.

Run: ``.venv/bin/python benchmarks/canary.py [--runs N] [--seed S]``
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np

from churnops.deploy.canary import (
    COMPONENTS,
    LATENCY_BUCKETS_MS,
    RevisionMetrics,
    Thresholds,
    combine,
    judge,
    next_step,
)
from churnops.platform.settings import Settings


@dataclass(frozen=True)
class Arm:
    """How one release answers: its 5xx share and its latency distribution."""

    error_rate: float = 0.005
    median_ms: float = 100.0
    sigma: float = 0.45


@dataclass(frozen=True)
class Scenario:
    """A canary: the stable and canary releases and the traffic."""

    name: str
    canary: Arm
    requests_per_s: float = 20.0
    stable: Arm = Arm()


SCENARIOS = (
    Scenario("same model", Arm()),
    Scenario("errors x4", Arm(error_rate=0.02)),
    Scenario("errors x2", Arm(error_rate=0.01)),
    Scenario("latency x1.5", Arm(median_ms=150.0)),
    Scenario("low traffic", Arm(), requests_per_s=1.0),
)


def window(rng: np.random.Generator, arm: Arm, requests: int, revision: str) -> RevisionMetrics:
    """One window of one arm's traffic, as the queue-proxy's counters increase."""
    errors = rng.binomial(requests, arm.error_rate)
    latencies = rng.lognormal(np.log(arm.median_ms), arm.sigma, requests)
    bounds = [*LATENCY_BUCKETS_MS, float("inf")]
    counts = np.searchsorted(np.sort(latencies), bounds, side="right")
    return RevisionMetrics(
        revision, float(requests), float(errors), {float(b): float(c) for b, c in zip(bounds, counts)}
    )


def simulate(scenario: Scenario, settings: Settings, rng: np.random.Generator) -> tuple[str, int]:
    """One canary from start to its end: (``promote``, ``rollback`` or ``expire``, windows analysed)."""
    limits = Thresholds.from_settings(settings)
    share = 0.10
    per_window = scenario.requests_per_s * settings.canary_interval_s
    totals: dict[str, RevisionMetrics] = {}
    number = 0
    while True:
        number += 1
        verdicts = []
        for component in COMPONENTS:
            for role, arm in (("stable", scenario.stable), ("canary", scenario.canary)):
                key = f"{component}-{role}"
                now = window(rng, arm, int(rng.poisson(per_window * (share if role == "canary" else 1 - share))), key)
                totals[key] = totals[key].plus(now) if key in totals else now
            verdicts.append(judge(totals[f"{component}-stable"], totals[f"{component}-canary"], limits, component))
        step = next_step(
            combine(verdicts),
            number,
            settings.canary_intervals,
            number * settings.canary_interval_s,
            settings.canary_deadline_s,
        )
        if step != "continue":
            return step, number


def main() -> None:
    """Run every scenario and print its rates."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=1000, help="Simulated canaries per scenario.")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    settings = Settings()
    rng = np.random.default_rng(args.seed)
    print(
        f"canary rule: min {settings.canary_min_requests} requests per arm, 5xx margin "
        f"{settings.canary_error_margin:.1%}, slow = over {settings.canary_slow_ms:g} ms with margin "
        f"{settings.canary_slow_margin:.1%}, confidence {settings.canary_confidence}, promote after "
        f"{settings.canary_intervals} windows of {settings.canary_interval_s:g} s, deadline "
        f"{settings.canary_deadline_s:g} s; canary share 10 %; {args.runs} runs per scenario"
    )
    started = time.perf_counter()
    for scenario in SCENARIOS:
        ends = [simulate(scenario, settings, rng) for _ in range(args.runs)]
        share = {step: sum(1 for s, _ in ends if s == step) / args.runs for step in ("promote", "rollback", "expire")}
        windows = sum(n for _, n in ends) / args.runs
        print(
            f"{scenario.name:>13} ({scenario.requests_per_s:g} req/s): promoted {share['promote']:6.1%}  "
            f"rolled back {share['rollback']:6.1%}  expired {share['expire']:6.1%}  "
            f"mean windows {windows:.1f}"
        )
    load = os.getloadavg()
    print(f"{time.perf_counter() - started:.1f} s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
