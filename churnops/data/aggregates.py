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
from dataclasses import dataclass

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


@dataclass(frozen=True)
class _Groups:
    """The (customer, hour) groups of the events that have both: per kept event its group, per group its key."""

    keep: np.ndarray  # per event: it has a customer token and an event time
    time_ns: np.ndarray  # per kept event
    group: np.ndarray  # per kept event: its group
    tokens: pa.Array  # per group: the customer token
    hour_ns: np.ndarray  # per group: the hour's start


def _groups(events: pa.Table) -> _Groups:
    token_codes, token_values = string_codes(events.column("customer_token"))
    by_token = arrow_call("array_sort_indices", token_values)
    rank = np.empty(len(token_values), dtype=np.int64)  # customer codes in token order, so groups sort by token
    rank[by_token.to_numpy()] = np.arange(len(token_values))
    times = pc.cast(events.column("event_time"), pa.timestamp("ns", tz="UTC")).cast(pa.int64())
    keep = (token_codes >= 0) & arrow_call("is_valid", times).to_numpy(zero_copy_only=False)
    time_ns = times.fill_null(0).to_numpy()[keep]
    hour = time_ns // _HOUR_NS
    first_hour = int(hour.min()) if hour.size else 0
    span = np.int64(int(hour.max()) - first_hour + 1 if hour.size else 1)
    keys, group = np.unique(rank[token_codes[keep]] * span + (hour - first_hour), return_inverse=True)
    customer, hour_offset = np.divmod(keys, span)
    return _Groups(
        keep=keep,
        time_ns=time_ns,
        group=group.reshape(-1),
        tokens=token_values.take(by_token).take(pa.array(customer)),
        hour_ns=(hour_offset + first_hour) * _HOUR_NS,
    )


def _per_type(events: pa.Table, groups: _Groups) -> np.ndarray:
    """Events per group and type of :data:`schema.EVENT_TYPES` (groups x types)."""
    type_codes, type_values = string_codes(events.column("event_type"))
    # the position of each type among EVENT_TYPES (-1 for another type), then -1 for a missing type (code -1)
    type_index = np.append(pd.Index(schema.EVENT_TYPES).get_indexer(type_values.to_pylist()), -1)
    kind = type_index[type_codes[groups.keep]]
    typed = kind >= 0
    n_types, n_groups = len(schema.EVENT_TYPES), len(groups.hour_ns)
    counts = np.bincount(groups.group[typed] * n_types + kind[typed], minlength=n_groups * n_types)
    return counts.reshape(n_groups, n_types)


def _session_lists(events: pa.Table, groups: _Groups) -> pa.ListArray:
    """Per group: its distinct session ids."""
    codes, values = string_codes(events.column("session_id"))
    session = codes[groups.keep]
    listed = session >= 0
    width = np.int64(max(len(values), 1))
    pairs = np.sort(pd.unique(groups.group[listed] * width + session[listed]))  # hashing, then a sort: faster here
    pair_group, pair_session = np.divmod(pairs, width)
    lengths = np.bincount(pair_group, minlength=len(groups.hour_ns))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values.take(pa.array(pair_session)))


def hourly_aggregates(events: pa.Table) -> pa.Table:
    """The aggregates of ``events`` (published events; at least :data:`SOURCE_COLUMNS`): see the module doc.

    Rows are sorted by customer token and hour; each row's sessions in the order they first appear.
    """
    groups = _groups(events)
    group, n_groups = groups.group, len(groups.hour_ns)
    per_type = _per_type(events, groups)
    duration = _floats(events.column("duration_s"))[groups.keep]
    timed = ~np.isnan(duration)
    amount = np.nan_to_num(_floats(events.column("amount"))[groups.keep], nan=0.0)
    first_time = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_time, group, groups.time_ns)
    last_time = np.full(n_groups, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last_time, group, groups.time_ns)
    columns: dict[str, pa.Array] = {
        "customer_token": groups.tokens,
        "hour": pa.array(groups.hour_ns, pa.int64()),
        "events": pa.array(np.bincount(group, minlength=n_groups)),
        **{name: pa.array(per_type[:, i]) for i, name in enumerate(TYPE_COLUMNS)},
        "duration_sum": pa.array(np.bincount(group[timed], weights=duration[timed], minlength=n_groups)),
        "duration_n": pa.array(np.bincount(group[timed], minlength=n_groups)),
        "amount_sum": pa.array(np.bincount(group, weights=amount, minlength=n_groups)),
        "first_time": pa.array(first_time),
        "last_time": pa.array(last_time),
        "sessions": _session_lists(events, groups),
    }
    arrays = [columns[field.name].cast(field.type) for field in AGGREGATE_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=AGGREGATE_SCHEMA)


def aggregate_file(partition: bytes) -> bytes:
    """The aggregates file (parquet) of one events partition file."""
    table = pq.read_table(io.BytesIO(partition), columns=list(SOURCE_COLUMNS))
    buffer = io.BytesIO()
    pq.write_table(hourly_aggregates(table), buffer, compression="zstd")
    return buffer.getvalue()


def covered(paths: list[str]) -> bool:
    """True when every events partition among ``paths`` (a listing of one lake commit) has its aggregates there."""
    present = set(paths)
    events = [path for path in paths if is_events_partition(path)]
    return bool(events) and all(aggregates_path(path) in present for path in events)


def staged_files(repo: DataRepository, ref: str, partitions: Iterable[str | None]) -> dict[str, bytes]:
    """The aggregates files of the events partitions among ``partitions``, read from ``ref`` one at a time."""
    return {
        aggregates_path(path): aggregate_file(repo.get_object(ref, path))
        for path in sorted(p for p in partitions if p is not None and is_events_partition(p))
    }


def superseded(repo: DataRepository, ref: str, partitions: Iterable[str]) -> list[str]:
    """The aggregates files at ``ref`` of partitions that are gone (superseded): they go with them."""
    wanted = [aggregates_path(path) for path in partitions if is_events_partition(path)]
    return [path for path in wanted if path in repo.list_paths(ref, path)]
