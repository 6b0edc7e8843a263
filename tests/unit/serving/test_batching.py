"""Micro-batching scores concurrent requests together without changing any request's probabilities,
and the batch histogram exposes exactly what prometheus_client's own histogram would."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from xgboost import XGBClassifier

from churnops.model.fastpath import FastPath
from churnops.training.transform import build_model
from serving.batching import MicroBatcher
from serving.predictor import BatchHistogram
from tests.unit.training.test_fastpath import SPEC, split, training_frame


@pytest.fixture(scope="module", name="fast_path")
def fixture_fast_path() -> FastPath:
    """A small XGBoost churn Pipeline, compiled."""
    X, y = training_frame()
    model = build_model(SPEC, XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1, random_state=0), percentile=70).fit(
        X, y
    )
    return FastPath.from_pipeline(model)


def requests_of(sizes: list[int]) -> list[tuple[np.ndarray, list[list[str | None]]]]:
    """Consecutive slices of a frame with missing values and unknown categories, one per request."""
    frame, _ = training_frame(rows=sum(sizes), seed=9)
    frame.loc[::7, "plan"] = "never-seen"
    requests, start = [], 0
    for size in sizes:
        requests.append(split(frame.iloc[start : start + size]))
        start += size
    return requests


async def concurrently(batcher: MicroBatcher, requests: list[tuple[np.ndarray, list[list[str | None]]]]) -> list[Any]:
    """Every request handed to ``batcher`` at the same moment; each one's probabilities, or its exception."""
    return await asyncio.gather(
        *(batcher.predict(numeric, categorical) for numeric, categorical in requests), return_exceptions=True
    )


class Counting:  # pylint: disable=too-few-public-methods  # a callable that records its calls
    """The fast path's predict, recording the rows of each call."""

    def __init__(self, fast_path: FastPath) -> None:
        self.fast_path = fast_path
        self.calls: list[int] = []

    def __call__(self, numeric: np.ndarray, categorical: list[list[str | None]]) -> np.ndarray:
        self.calls.append(numeric.shape[0])
        return self.fast_path.predict(numeric, categorical)


def test_concurrent_requests_share_one_call_and_get_their_own_probabilities(fast_path: FastPath) -> None:
    sizes = [1, 5, 1, 64, 3, 1, 17]
    requests = requests_of(sizes)
    score = Counting(fast_path)
    batcher = MicroBatcher(score, max_rows=4096)

    results = asyncio.run(concurrently(batcher, requests))
    assert score.calls == [sum(sizes)]
    for (numeric, categorical), result in zip(requests, results):
        assert np.array_equal(result, fast_path.predict(numeric, categorical))  # bit for bit, as if alone


def test_a_turn_above_the_row_limit_is_split_into_calls_within_it(fast_path: FastPath) -> None:
    sizes = [40, 40, 40, 10, 90]
    requests = requests_of(sizes)
    score = Counting(fast_path)
    batcher = MicroBatcher(score, max_rows=100)

    results = asyncio.run(concurrently(batcher, requests))
    assert score.calls == [80, 50, 90]
    for (numeric, categorical), result in zip(requests, results):
        assert np.array_equal(result, fast_path.predict(numeric, categorical))


def test_a_request_that_finds_the_worker_idle_is_scored_alone_at_once(fast_path: FastPath) -> None:
    requests = requests_of([2, 3])
    score = Counting(fast_path)
    batcher = MicroBatcher(score, max_rows=4096)

    async def one_after_the_other() -> list[np.ndarray]:
        return [await batcher.predict(numeric, categorical) for numeric, categorical in requests]

    results = asyncio.run(one_after_the_other())
    assert score.calls == [2, 3]
    assert [len(r) for r in results] == [2, 3]


def test_a_failing_call_fails_only_the_requests_whose_own_rows_fail_and_the_next_turn_works(
    fast_path: FastPath,
) -> None:
    requests = requests_of([1, 2, 3])
    poisoned = requests[1][0].shape[0]  # the booster fails on any call holding the 2-row request

    def failing_on(numeric: np.ndarray, categorical: list[list[str | None]]) -> np.ndarray:
        if numeric.shape[0] in (poisoned, 1 + 2 + 3):
            raise RuntimeError("booster failed")
        return fast_path.predict(numeric, categorical)

    calls: list[int] = []

    def score(numeric: np.ndarray, categorical: list[list[str | None]]) -> np.ndarray:
        calls.append(numeric.shape[0])
        return failing_on(numeric, categorical)

    batcher = MicroBatcher(score, max_rows=4096)

    async def run() -> tuple[list[object], np.ndarray]:
        first = await concurrently(batcher, requests)
        return first, await batcher.predict(*requests[2])

    first, after = asyncio.run(run())
    assert calls == [6, 1, 2, 3, 3]  # the turn, each request alone, then the next turn
    assert isinstance(first[1], RuntimeError)
    for index in (0, 2):
        assert np.array_equal(first[index], fast_path.predict(*requests[index]))
    assert np.array_equal(after, fast_path.predict(*requests[2]))


def test_a_call_that_fails_for_everyone_fails_every_request_of_its_turn() -> None:
    requests = requests_of([1, 2])

    def broken(*_: object) -> np.ndarray:
        raise RuntimeError("booster failed")

    batcher = MicroBatcher(broken, max_rows=4096)

    assert all(isinstance(outcome, RuntimeError) for outcome in asyncio.run(concurrently(batcher, requests)))


def test_batch_histogram_exposes_what_prometheus_client_would() -> None:
    bounds = tuple(round(0.05 * k, 2) for k in range(1, 21))
    values = np.array([0.0, 0.05, 0.050000001, 0.1, 0.333, 0.5, 0.95, 0.99, 1.0, 0.05, 0.7])
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = BatchHistogram("probability", "p", bounds, registry=ours_registry)
    theirs = Histogram("probability", "p", buckets=bounds, registry=theirs_registry)
    ours.observe_many(values[:4])
    ours.observe_many(values[4:])
    for value in values:
        theirs.observe(value)

    def samples(registry: CollectorRegistry) -> list[str]:
        return [
            line
            for line in generate_latest(registry).decode().splitlines()
            if line.startswith("probability_") and not line.startswith("probability_created")
        ]

    assert samples(ours_registry) == samples(theirs_registry)
