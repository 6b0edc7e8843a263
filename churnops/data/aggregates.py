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
Partitions hold distinct event ids, so the rows of every file sum to the aggregates of the whole table. Rows whose
``event_time`` or ``customer_token`` is missing are left out (no feature reads them).
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnops.data import schema
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


def _strings(column: pa.ChunkedArray | pa.Array) -> pd.Series:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return pd.Series(column.to_pandas(), dtype="string")


def hourly_aggregates(events: pa.Table) -> pa.Table:
    """The aggregates of ``events`` (published events; at least :data:`SOURCE_COLUMNS`): see the module doc.

    Rows are sorted by customer token and hour.
    """
    token = _strings(events.column("customer_token"))
    stamps = pd.to_datetime(events.column("event_time").to_pandas(), utc=True)
    keep = (token.notna() & stamps.notna()).to_numpy()
    time_ns = stamps.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)[keep]
    customer_codes, tokens = pd.factorize(token[keep], sort=True)
    customer = customer_codes.astype(np.int64)
    hour = time_ns - time_ns % _HOUR_NS
    kind = pd.Categorical(_strings(events.column("event_type"))[keep], categories=schema.EVENT_TYPES).codes
    duration = pd.to_numeric(events.column("duration_s").to_pandas()[keep], errors="coerce").to_numpy(np.float64)
    amount = pd.to_numeric(events.column("amount").to_pandas()[keep], errors="coerce").to_numpy(np.float64)
    timed = ~np.isnan(duration)
    frame = pd.DataFrame(
        {
            "customer": customer,
            "hour": hour,
            "events": 1,
            **{name: (kind == code).astype(np.int32) for code, name in enumerate(TYPE_COLUMNS)},
            "duration_sum": np.where(timed, duration, 0.0),
            "duration_n": timed.astype(np.int32),
            "amount_sum": np.nan_to_num(amount, nan=0.0),
            "first_time": time_ns,
            "last_time": time_ns,
        }
    )
    sums = ["events", *TYPE_COLUMNS, "duration_sum", "duration_n", "amount_sum"]
    grouped = frame.groupby(["customer", "hour"], sort=True)
    rows = grouped[sums].sum().join(grouped["first_time"].min()).join(grouped["last_time"].max())
    session = _strings(events.column("session_id"))[keep].to_numpy(dtype=object, na_value=None)
    listed = pd.DataFrame({"customer": customer, "hour": hour, "session": session}).dropna(subset=["session"])
    listed = listed.drop_duplicates().groupby(["customer", "hour"], sort=True)["session"].agg(list)
    sessions = listed.reindex(rows.index).to_numpy()
    customers = rows.index.get_level_values("customer").to_numpy()
    columns: dict[str, pa.Array] = {
        "customer_token": pa.array(np.asarray(tokens, dtype=object)[customers], pa.string()),
        "hour": pa.array(rows.index.get_level_values("hour").to_numpy(np.int64), pa.int64()),
        **{name: pa.array(rows[name].to_numpy(np.int32)) for name in ("events", *TYPE_COLUMNS, "duration_n")},
        "duration_sum": pa.array(rows["duration_sum"].to_numpy(np.float64)),
        "amount_sum": pa.array(rows["amount_sum"].to_numpy(np.float64)),
        "first_time": pa.array(rows["first_time"].to_numpy(np.int64)),
        "last_time": pa.array(rows["last_time"].to_numpy(np.int64)),
        "sessions": pa.array([value if isinstance(value, list) else [] for value in sessions], pa.list_(pa.string())),
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
