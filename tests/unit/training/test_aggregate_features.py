"""Features from hourly pre-aggregates are the features from the raw events, for cutoffs on an hour boundary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnops.data.aggregates import hourly_aggregates
from churnops.data.schema import EVENT_TYPES
from churnops.training.features import (
    HourlyActivity,
    build_features,
    build_labels,
    build_training_set,
    choose_cutoffs,
    data_span,
    ghost_customers,
)
from tests.unit.training.conftest import T0, at, event, events_frame, record, subscriptions_frame

HOUR_NS = 3_600_000_000_000
SPAN_H = 12

# One event: customer, nanoseconds after T0 (often exactly on an hour), type, session, duration, amount, file.
one_event = st.tuples(
    st.integers(min_value=0, max_value=5),  # customer 5 has no subscription record
    st.one_of(
        st.integers(min_value=0, max_value=SPAN_H * HOUR_NS - 1),
        st.integers(min_value=0, max_value=SPAN_H - 1).map(lambda h: h * HOUR_NS),
        st.integers(min_value=1, max_value=SPAN_H - 1).map(lambda h: h * HOUR_NS - 1),
    ),
    st.sampled_from([*EVENT_TYPES[:4], "purchase", None]),
    st.sampled_from(["s1", "s2", "s3", "", None]),  # session ids repeat across customers and hours
    st.one_of(st.none(), st.floats(min_value=0, max_value=1e4, allow_nan=False)),
    st.one_of(st.none(), st.floats(min_value=-50, max_value=500, allow_nan=False)),
    st.integers(min_value=0, max_value=2),
)


def _tables(rows: list[tuple], statuses_of: list[str]) -> tuple[pd.DataFrame, HourlyActivity, pd.DataFrame]:
    """The raw events, their pre-aggregates (each of up to three partitions aggregated alone, then concatenated
    as the lake's reader does) and the subscriptions of customers 0-4."""
    records = [
        record(f"c{i}", i, status=status, cancel_hours=30 if status == "cancelled" else None)
        for i, status in enumerate(statuses_of)
    ]
    frame = events_frame(
        [event(f"c{c}", 0, kind, session, duration, amount) for c, _, kind, session, duration, amount, _ in rows]
    )
    frame["event_time"] = pd.DatetimeIndex(T0.value + np.array([row[1] for row in rows], dtype=np.int64), tz="UTC")
    files = np.array([row[6] for row in rows], dtype=np.int64)
    parts = [hourly_aggregates(pa.Table.from_pandas(frame[files == file], preserve_index=False)) for file in range(3)]
    return frame, HourlyActivity(pa.concat_tables(parts)), subscriptions_frame(records)


statuses = st.lists(st.sampled_from(["active", "active", "cancelled"]), min_size=5, max_size=5)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(one_event, min_size=1, max_size=60),
    status=statuses,
    cutoff_h=st.integers(min_value=1, max_value=SPAN_H + 2),
    windows=st.lists(st.integers(min_value=1, max_value=14), min_size=1, max_size=3, unique=True),
    ghost_after_h=st.one_of(st.none(), st.integers(min_value=1, max_value=20).map(float)),
)
def test_features_from_pre_aggregates_equal_the_features_from_the_events(
    rows: list[tuple], status: list[str], cutoff_h: int, windows: list[int], ghost_after_h: float | None
) -> None:
    raw, hourly, subscriptions = _tables(rows, status)
    cutoff = at(cutoff_h)
    expected = build_features(raw, subscriptions, cutoff, windows, ghost_after_h)
    actual = build_features(hourly, subscriptions, cutoff, windows, ghost_after_h)
    # Counts are equal; sums of durations and amounts are added in another order.
    pd.testing.assert_frame_equal(actual, expected, check_exact=False, rtol=1e-9, atol=1e-9)
    pd.testing.assert_series_equal(
        build_labels(subscriptions, cutoff, 6, hourly, ghost_after_h),
        build_labels(subscriptions, cutoff, 6, raw, ghost_after_h),
    )
    pd.testing.assert_frame_equal(
        ghost_customers(hourly, subscriptions, cutoff, 3.0), ghost_customers(raw, subscriptions, cutoff, 3.0)
    )


@settings(max_examples=10, deadline=None)
@given(rows=st.lists(one_event, min_size=1, max_size=60), status=statuses)
def test_a_training_set_from_pre_aggregates_equals_the_one_from_the_events(
    rows: list[tuple], status: list[str]
) -> None:
    raw, hourly, subscriptions = _tables(rows, status)
    assert data_span(hourly, subscriptions) == data_span(raw, subscriptions)
    # the subscription records span hours 0-4, so every example has cutoffs
    cutoffs = choose_cutoffs(raw, subscriptions, horizon=1, step_h=3, min_history_h=2)
    assert choose_cutoffs(hourly, subscriptions, horizon=1, step_h=3, min_history_h=2) == cutoffs
    pd.testing.assert_frame_equal(
        build_training_set(hourly, subscriptions, cutoffs, horizon=1, windows=(1, 6)),
        build_training_set(raw, subscriptions, cutoffs, horizon=1, windows=(1, 6)),
        check_exact=False,
        rtol=1e-9,
        atol=1e-9,
    )


def test_a_cutoff_inside_an_hour_is_refused_for_pre_aggregates_and_answered_by_the_events() -> None:
    raw, hourly, subscriptions = _tables([(0, HOUR_NS // 2, "login", "s1", 3.0, None, 0)], ["active"] * 5)
    cutoff = at(1.5)
    assert build_features(raw, subscriptions, cutoff).set_index("customer_token").loc["c0", "events_1h"] == 1.0
    with pytest.raises(ValueError, match="hour boundary"):
        build_features(hourly, subscriptions, cutoff)


def test_sessions_spanning_hours_and_files_count_once_per_window() -> None:
    rows = [
        (0, 1 * HOUR_NS + 5, "login", "s1", None, None, 0),
        (0, 2 * HOUR_NS + 5, "page_view", "s1", None, None, 1),
        (0, 2 * HOUR_NS + 9, "page_view", "s1", None, None, 2),
        (1, 2 * HOUR_NS + 9, "page_view", "s1", None, None, 2),  # the same id for another customer
    ]
    raw, hourly, subscriptions = _tables(rows, ["active"] * 5)
    features = build_features(hourly, subscriptions, at(3), (1, 6)).set_index("customer_token")
    assert features.loc["c0", "sessions_6h"] == 1.0
    assert features.loc["c1", "sessions_6h"] == 1.0
    assert features.loc["c0", "events_6h"] == 3.0
    pd.testing.assert_frame_equal(features.reset_index(), build_features(raw, subscriptions, at(3), (1, 6)))
