"""Micro-batching: the rows of concurrent requests scored in one booster call.

A booster call has a fixed cost that does not depend on the number of rows (about 0.5-1 ms for the
demo's 400 trees on this machine, against some 15 us per extra row), so a worker that answers
requests one by one spends most of its time on that fixed cost at batch 1. :class:`MicroBatcher`
scores together the requests that are waiting at the same moment: a request hands its rows in and
awaits its probabilities; the first one of a turn schedules one flush for the next turn of the
event loop, by which time every request that arrived meanwhile (while the worker was busy) has
handed its rows in as well. Nothing waits on a timer: a request that finds the worker idle is
scored alone, at once.

The rows of a request never influence another request's probabilities: the booster scores each row
on its own, so a row's probability is the same alone or in a batch (a test checks it). Nor does a
request's failure reach another: when a call for several requests fails, each is scored again on
its own, and only the requests whose own call fails get the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import numpy as np

Score = Callable[[np.ndarray, Sequence[Sequence[str | None]]], np.ndarray]
# a request's numeric rows, its categorical columns and the future its probabilities are set on
Pending = tuple[np.ndarray, Sequence[Sequence[str | None]], asyncio.Future[np.ndarray]]


class MicroBatcher:
    """Scores concurrent requests' rows with one ``score`` call per turn (at most ``max_rows`` rows a call)."""

    def __init__(self, score: Score, max_rows: int) -> None:
        self.score = score
        self.max_rows = max_rows
        self._pending: list[Pending] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.calls = 0  # score calls made (for tests and the benchmark's figures)

    async def predict(self, numeric: np.ndarray, categorical: Sequence[Sequence[str | None]]) -> np.ndarray:
        """Churn probability per row of this request, scored together with the other waiting requests."""
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:  # another event loop's turn is open: score alone
            self.calls += 1
            return self.score(numeric, categorical)
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((numeric, categorical, future))
        if self._loop is None:
            self._loop = loop
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        pending, self._pending, self._loop = self._pending, [], None
        group: list[Pending] = []
        rows = 0
        for item in pending:
            if group and rows + item[0].shape[0] > self.max_rows:
                self._score(group)
                group, rows = [], 0
            group.append(item)
            rows += item[0].shape[0]
        if group:
            self._score(group)

    def _score(self, group: list[Pending]) -> None:
        self.calls += 1
        try:
            if len(group) == 1:
                parts = [self.score(group[0][0], group[0][1])]
            else:
                numeric = np.concatenate([item[0] for item in group])
                categorical = [[value for item in group for value in item[1][k]] for k in range(len(group[0][1]))]
                probability = self.score(numeric, categorical)
                parts = np.split(probability, np.cumsum([item[0].shape[0] for item in group])[:-1])
        except Exception as exc:  # pylint: disable=broad-exception-caught  # handed to the waiting request(s)
            if len(group) == 1:
                if not group[0][2].done():
                    group[0][2].set_exception(exc)
            else:  # whose rows failed? each request alone, so one request's failure is not its neighbours'
                for item in group:
                    self._score([item])
            return
        for (_, _, future), part in zip(group, parts):
            if not future.done():
                future.set_result(part)
