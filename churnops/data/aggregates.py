"""Hourly pre-aggregates of the published events: per customer and hour of ``event_time``, what every activity
feature needs, so features at a cutoff on an hour boundary sum these rows instead of scanning every event.

Each events partition ``events/dt=.../hr=.../<object file>.parquet`` has its aggregates beside it, at
``aggregates/events/dt=.../hr=.../<object file>.parquet`` (:func:`aggregates_path`): one row per customer token and
hour of ``event_time`` among the partition's rows, with

- ``events``: how many events; ``n_<type>`` for each type of :data:`schema.EVENT_TYPES` (an event of another type
  counts in ``events`` only);
- ``duration_sum`` and ``duration_n``: the sum and the number of the events' known ``duration_s``;
- ``amount_sum``: the sum of ``amount`` (a missing amount adds nothing);
- ``first_time`` and ``last_time``: the earliest and the latest ``event_time``;
- ``sessions``: the distinct non-missing ``session_id`` values (a session spanning hours is listed in each of them).

An aggregate file is a function of its partition's rows alone: the ingest writes it in the same commit as the
partition, a new generation of the object overwrites both, and a superseded partition's aggregates go with it.
A partition published before the aggregates existed gets its file from :mod:`churnops.data.backfill`.
Partitions hold distinct event ids, so the rows of every file sum to the aggregates of the whole table. Rows whose
``event_time`` or ``customer_token`` is missing are left out (no feature reads them).
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnops.data import schema
from churnops.data.contract import arrow_call
from churnops.data.versioning import DataRepository

AGGREGATES_PREFIX = "aggregates/"
EVENTS_PREFIX = f"{schema.EVENTS}/"
TYPE_COLUMNS: tuple[str, ...] = tuple(f"n_{kind}" for kind in schema.EVENT_TYPES)
AGGREGATE_SCHEMA = pa.schema(
    [
        pa.field("customer_token", pa.string(), nullable=False),
        pa.field("hour", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("events", pa.int32(), nullable=False),
        *(pa.field(name, pa.int32(), nullable=False) for name in TYPE_COLUMNS),
        pa.field("duration_sum", pa.float64(), nullable=False),
        pa.field("duration_n", pa.int32(), nullable=False),
        pa.field("amount_sum", pa.float64(), nullable=False),
        pa.field("first_time", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("last_time", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("sessions", pa.list_(pa.string()), nullable=False),
    ]
)
SOURCE_COLUMNS: tuple[str, ...] = ("customer_token", "event_time", "event_type", "session_id", "duration_s", "amount")
_HOUR_NS = 3_600_000_000_000
_HOUR_BIAS = 1 << 22  # hour numbers of nanosecond timestamps (years 1677-2262) lie within ±2**22
_HOUR_BITS = 23


def aggregates_path(partition: str) -> str:
    """Lake path of the aggregates of events partition ``partition`` (``events/...``)."""
    if not partition.startswith(EVENTS_PREFIX):
        raise ValueError(f"not an events partition: {partition!r}")
    return f"{AGGREGATES_PREFIX}{partition}"


def is_events_partition(path: str) -> bool:
    """True for a parquet partition of the events table (one that has aggregates)."""
    return path.startswith(EVENTS_PREFIX) and path.endswith(".parquet")


def string_codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Integer codes (-1 for a missing value) and the dictionary of a string column, in first-seen order."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    encoded = arrow_call(
        "dictionary_encode", column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    )
    codes: np.ndarray = encoded.indices.fill_null(-1).to_numpy().astype(np.int64)
    return codes, encoded.dictionary.cast(pa.string())


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as float64, NaN where missing."""
    values: np.ndarray = pc.cast(column, pa.float64()).to_numpy()
    return values


def _first_seen(known: pa.Array, values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """``known`` (distinct strings, in the order first seen) extended by the ``values`` (distinct, in the order
    first seen) it lacks, and the position of each of ``values`` in the result.

    Only ``values`` are hashed (the known strings are looked up in them), so the cost of a call is a hash of
    ``values`` and one lookup per known string."""
    found = arrow_call("index_in", known, options=pc.SetLookupOptions(values)).to_numpy(zero_copy_only=False)
    position = np.full(len(values), -1, dtype=np.int64)
    matched = ~np.isnan(found) if found.dtype.kind == "f" else np.ones(len(found), dtype=bool)
    position[found[matched].astype(np.int64)] = np.flatnonzero(matched)
    new = position < 0
    if new.any():
        position[new] = len(known) + np.arange(int(new.sum()))
        known = pa.concat_arrays([known, values.filter(pa.array(new))])
    return known, position


class HourlyAggregator:
    """The aggregates of events given a table at a time (the chunks of one partition, in order): what
    :func:`hourly_aggregates` gives for the tables concatenated, to the bit, holding per (customer, hour) group what
    its events add up to instead of the events.

    It keeps the distinct customer tokens and session ids seen (each in the order first seen), and per group its
    counts, sums, first and last time and distinct sessions. Sums add each group's values in the order the events
    come, as one pass over the concatenated tables does.
    """

    def __init__(self) -> None:
        self._tokens = pa.array([], pa.string())
        self._sessions = pa.array([], pa.string())
        self._keys = np.zeros(0, np.int64)  # per group: customer << _HOUR_BITS | hour number + _HOUR_BIAS
        self._sorted = np.zeros(0, np.int64)  # the groups in the order of their keys
        self._counts = np.zeros((0, 2 + len(TYPE_COLUMNS)), np.int64)  # per group: events, duration_n, n_<type>...
        self._duration = np.zeros(0)
        self._amount = np.zeros(0)
        self._first = np.zeros(0, np.int64)
        self._last = np.zeros(0, np.int64)
        self._pairs = np.zeros(0, np.int64)  # distinct (session << 32 | group), sorted

    def _groups(self, keys: np.ndarray) -> np.ndarray:
        """The group of each key, adding a group for each key not seen before."""
        inverse, unique = pd.factorize(keys)  # hashed, in the order first seen (np.unique sorts: twice the time)
        at = np.searchsorted(self._keys[self._sorted], unique)
        seen = at < len(self._keys)
        seen[seen] = self._keys[self._sorted[at[seen]]] == unique[seen]
        group = np.empty(len(unique), np.int64)
        group[seen] = self._sorted[at[seen]]
        new = int((~seen).sum())
        if new:
            group[~seen] = len(self._keys) + np.arange(new)
            self._keys = np.concatenate([self._keys, unique[~seen]])
            self._sorted = np.argsort(self._keys, kind="stable")
            self._counts = np.concatenate([self._counts, np.zeros((new, self._counts.shape[1]), np.int64)])
            self._duration = np.concatenate([self._duration, np.zeros(new)])
            self._amount = np.concatenate([self._amount, np.zeros(new)])
            self._first = np.concatenate([self._first, np.full(new, np.iinfo(np.int64).max, np.int64)])
            self._last = np.concatenate([self._last, np.full(new, np.iinfo(np.int64).min, np.int64)])
        result: np.ndarray = group[inverse.reshape(-1)]
        return result

    def add(self, events: pa.Table) -> None:
        """Add the events of ``events`` (published events; at least :data:`SOURCE_COLUMNS`)."""
        token_codes, token_values = string_codes(events.column("customer_token"))
        self._tokens, customer_of_code = _first_seen(self._tokens, token_values)
        times = pc.cast(events.column("event_time"), pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        keep = (token_codes >= 0) & arrow_call("is_valid", times).to_numpy(zero_copy_only=False)
        time_ns = times.fill_null(0).to_numpy()[keep]
        hour = time_ns // _HOUR_NS + _HOUR_BIAS
        group = self._groups((customer_of_code[token_codes[keep]] << _HOUR_BITS) | hour)
        n_groups = len(self._keys)
        duration = _floats(events.column("duration_s"))[keep]
        timed = ~np.isnan(duration)
        type_codes, type_values = string_codes(events.column("event_type"))
        # the position of each type among EVENT_TYPES (-1 for another type), then -1 for a missing type (code -1)
        kind = np.append(pd.Index(schema.EVENT_TYPES).get_indexer(type_values.to_pylist()), -1)[type_codes[keep]]
        typed = kind >= 0
        self._counts[:, 0] += np.bincount(group, minlength=n_groups)
        self._counts[:, 1] += np.bincount(group[timed], minlength=n_groups)
        self._counts[:, 2:] += np.bincount(
            group[typed] * len(TYPE_COLUMNS) + kind[typed], minlength=n_groups * len(TYPE_COLUMNS)
        ).reshape(n_groups, len(TYPE_COLUMNS))
        np.add.at(self._duration, group[timed], duration[timed])
        np.add.at(self._amount, group, np.nan_to_num(_floats(events.column("amount"))[keep], nan=0.0))
        np.minimum.at(self._first, group, time_ns)
        np.maximum.at(self._last, group, time_ns)
        session_codes, session_values = string_codes(events.column("session_id"))
        self._sessions, session_of_code = _first_seen(self._sessions, session_values)
        session = session_codes[keep]
        listed = session >= 0
        # this table's distinct pairs (pandas' hashing, then a sort: faster than numpy's unique here), those not
        # met before merged into the sorted ones (two sorted runs: one pass)
        pairs = np.sort(pd.unique((session_of_code[session[listed]] << 32) | group[listed]))
        at = np.minimum(np.searchsorted(self._pairs, pairs), max(len(self._pairs) - 1, 0))
        met = self._pairs[at] == pairs if len(self._pairs) else np.zeros(len(pairs), dtype=bool)
        if not met.all():
            self._pairs = np.sort(np.concatenate([self._pairs, pairs[~met]]), kind="stable")

    def table(self) -> pa.Table:
        """The aggregates of the events added so far: see the module doc.

        Rows are sorted by customer token and hour; each row's sessions in the order they first appear.
        """
        customer = self._keys >> _HOUR_BITS
        hour = (self._keys & ((1 << _HOUR_BITS) - 1)) - _HOUR_BIAS
        rank = np.empty(len(self._tokens), dtype=np.int64)  # customers in token order
        rank[arrow_call("array_sort_indices", self._tokens).to_numpy()] = np.arange(len(self._tokens))
        order = np.lexsort((hour, rank[customer]))
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        pair_group, pair_session = position[self._pairs & 0xFFFFFFFF], self._pairs >> 32
        by_group = np.lexsort((pair_session, pair_group))
        lengths = np.bincount(pair_group, minlength=len(order))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        counts = self._counts[order]
        columns: dict[str, pa.Array] = {
            "customer_token": self._tokens.take(pa.array(customer[order])),
            "hour": pa.array(hour[order] * _HOUR_NS, pa.int64()),
            "events": pa.array(counts[:, 0]),
            **{name: pa.array(counts[:, 2 + i]) for i, name in enumerate(TYPE_COLUMNS)},
            "duration_sum": pa.array(self._duration[order]),
            "duration_n": pa.array(counts[:, 1]),
            "amount_sum": pa.array(self._amount[order]),
            "first_time": pa.array(self._first[order]),
            "last_time": pa.array(self._last[order]),
            "sessions": pa.ListArray.from_arrays(
                pa.array(offsets), self._sessions.take(pa.array(pair_session[by_group]))
            ),
        }
        arrays = [columns[field.name].cast(field.type) for field in AGGREGATE_SCHEMA]
        return pa.Table.from_arrays(arrays, schema=AGGREGATE_SCHEMA)

    def file(self) -> bytes:
        """:meth:`table` as an aggregates file (parquet)."""
        buffer = io.BytesIO()
        pq.write_table(self.table(), buffer, compression="zstd")
        return buffer.getvalue()


def hourly_aggregates(events: pa.Table) -> pa.Table:
    """The aggregates of ``events`` (published events; at least :data:`SOURCE_COLUMNS`): see the module doc.

    Rows are sorted by customer token and hour; each row's sessions in the order they first appear.
    """
    aggregator = HourlyAggregator()
    aggregator.add(events)
    return aggregator.table()


def aggregate_file(partition: bytes) -> bytes:
    """The aggregates file (parquet) of one events partition file, read a row group at a time (an ingest writes
    one a chunk), so what it holds does not grow with the partition."""
    aggregator = HourlyAggregator()
    stored = pq.ParquetFile(pa.BufferReader(partition))
    for number in range(stored.num_row_groups):
        aggregator.add(stored.read_row_group(number, columns=list(SOURCE_COLUMNS)))
    return aggregator.file()


def covered(paths: list[str]) -> bool:
    """True when every events partition among ``paths`` (a listing of one lake commit) has its aggregates there."""
    present = set(paths)
    events = [path for path in paths if is_events_partition(path)]
    return bool(events) and all(aggregates_path(path) in present for path in events)


def superseded(repo: DataRepository, ref: str, partitions: Iterable[str]) -> list[str]:
    """The aggregates files at ``ref`` of partitions that are gone (superseded): they go with them."""
    wanted = [aggregates_path(path) for path in partitions if is_events_partition(path)]
    return [path for path in wanted if path in repo.list_paths(ref, path)]
