"""Hourly pre-aggregates: what each (customer, hour) row holds, and the same rows when the events come in chunks."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from churnops.data.aggregates import AGGREGATE_SCHEMA, HourlyAggregator, aggregate_file, hourly_aggregates
from churnops.data.backfill import countable_events
from churnops.data.schema import EVENT_TYPES

T0 = pd.Timestamp("2026-11-01T05:00:00Z")
HOUR_NS = 3_600_000_000_000


def events(rows: list[tuple[str | None, int | None, str | None, str | None, float | None, float | None]]) -> pa.Table:
    """Published events: (customer token, ns after T0, event type, session, duration, amount) per row."""
    token, offset, kind, session, duration, amount = zip(*rows) if rows else ([], [], [], [], [], [])
    times = [None if value is None else T0 + pd.Timedelta(int(value), "ns") for value in offset]
    return pa.table(
        {
            "event_id": pa.array([f"e{i}" for i in range(len(rows))], pa.large_string()),
            "customer_token": pa.array(token, pa.large_string()),
            "event_time": pa.array(times, pa.timestamp("ns", tz="UTC")),
            "event_type": pa.array(kind, pa.large_string()),
            "session_id": pa.array(session, pa.large_string()),
            "duration_s": pa.array(duration, pa.float64()),
            "amount": pa.array(amount, pa.float64()),
        }
    )


def test_each_customer_and_hour_has_its_counts_sums_times_and_sessions() -> None:
    table = events(
        [
            ("tok_b", 10, "login", "s2", 3.0, None),
            ("tok_a", HOUR_NS + 5, "purchase", "s1", None, 9.5),
            ("tok_b", 20, "unknown-type", "s1", 1.5, 2.0),
            ("tok_b", 30, None, "s2", None, None),
            ("tok_a", HOUR_NS + 1, "purchase", None, 2.0, 0.5),
            (None, 40, "login", "s3", 1.0, 1.0),  # no customer: left out
            ("tok_b", None, "login", "s3", 1.0, 1.0),  # no time: left out
        ]
    )
    rows = hourly_aggregates(table).to_pylist()
    assert [(row["customer_token"], row["hour"]) for row in rows] == [
        ("tok_a", T0 + pd.Timedelta(hours=1)),
        ("tok_b", T0),
    ]
    a, b = rows
    assert (a["events"], a["n_purchase"], a["n_login"]) == (2, 2, 0)
    assert (a["duration_sum"], a["duration_n"], a["amount_sum"]) == (2.0, 1, 10.0)
    assert (a["first_time"], a["last_time"]) == (
        T0 + pd.Timedelta(HOUR_NS + 1, "ns"),
        T0 + pd.Timedelta(HOUR_NS + 5, "ns"),
    )
    assert a["sessions"] == ["s1"]
    assert (b["events"], b["n_login"], sum(b[f"n_{kind}"] for kind in EVENT_TYPES)) == (3, 1, 1)
    assert (b["duration_sum"], b["duration_n"], b["amount_sum"]) == (4.5, 2, 2.0)
    assert (b["first_time"], b["last_time"]) == (T0 + pd.Timedelta(10, "ns"), T0 + pd.Timedelta(30, "ns"))
    assert b["sessions"] == ["s2", "s1"]  # in the order the partition first names them


def test_no_events_give_no_rows_of_the_aggregates_schema() -> None:
    table = hourly_aggregates(events([]))
    assert table.num_rows == 0
    assert table.schema == AGGREGATE_SCHEMA


one_event = st.tuples(
    st.one_of(st.none(), st.sampled_from([f"tok_{i}" for i in range(6)])),
    st.one_of(st.none(), st.integers(min_value=-3 * HOUR_NS, max_value=3 * HOUR_NS)),
    st.one_of(st.none(), st.sampled_from([*EVENT_TYPES[:3], "other"])),
    st.one_of(st.none(), st.sampled_from(["s1", "s2", "s3", "s4", ""])),
    st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False)),
    st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False)),
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(one_event, max_size=80), cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=6))
def test_events_added_in_chunks_give_the_aggregates_of_all_of_them_to_the_bit(
    rows: list[tuple], cuts: list[int]
) -> None:
    table = events(rows)
    aggregator = HourlyAggregator()
    bounds = [0, *sorted(min(cut, len(rows)) for cut in cuts), len(rows)]
    for start, end in zip(bounds[:-1], bounds[1:]):
        aggregator.add(table.slice(start, end - start))
    whole = hourly_aggregates(table)
    assert aggregator.table().equals(whole)
    assert sum(whole.column("events").to_pylist()) == sum(
        1 for row in rows if row[0] is not None and row[1] is not None
    )
    by_row = np.asarray(whole.column("events"))
    assert (by_row > 0).all()


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(one_event, max_size=60), row_group=st.integers(min_value=1, max_value=25))
def test_a_partition_file_read_a_row_group_at_a_time_gives_the_aggregates_of_all_its_events(
    rows: list[tuple], row_group: int
) -> None:
    """The backfill aggregates a stored partition one row group at a time: the file it writes is the aggregates
    of the whole partition, and the events it counts for its check are those the aggregates count."""
    table = events(rows)
    stored = io.BytesIO()
    pq.write_table(table, stored, row_group_size=row_group)
    partition = stored.getvalue()
    assert pq.ParquetFile(pa.BufferReader(partition)).num_row_groups == max(1, -(-len(rows) // row_group))
    written = pq.read_table(pa.BufferReader(aggregate_file(partition)))
    assert written.equals(hourly_aggregates(table))
    assert countable_events(partition) == sum(written.column("events").to_pylist())
