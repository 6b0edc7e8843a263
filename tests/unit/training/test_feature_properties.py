"""Properties of the subscription and activity features: what the records known at a cutoff decide, change history
without the data-start artefact, the direction of a plan change, activity against the customer's own baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnops.data.schema import PLANS
from churnops.training.features import PLAN_TIERS, build_features, build_labels, relative_activity_names
from tests.unit.training.conftest import at, event, events_frame, record, subscriptions_frame

CUTOFF_H = 30

# One customer's history: (hours after T0, plan, status, cancellation hours or None), in time order.
record_steps = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=45),
        st.sampled_from(PLANS),
        st.sampled_from(["active", "active", "cancelled"]),
        st.one_of(st.none(), st.integers(min_value=0, max_value=45)),
    ),
    max_size=6,
)


def _records(token: str, steps: list[tuple[int, str, str, int | None]]) -> list[dict]:
    rows = [record(token, 0)]
    for hours, plan, status, cancel in sorted(steps, key=lambda step: step[0]):
        cancel_hours = (cancel if cancel is not None else hours) if status == "cancelled" else None
        rows.append(record(token, hours, plan=plan, status=status, cancel_hours=cancel_hours))
    return rows


@settings(max_examples=25, deadline=None)
@given(histories=st.lists(record_steps, min_size=1, max_size=4), cutoff_h=st.integers(min_value=1, max_value=44))
def test_population_and_features_are_decided_by_the_records_known_at_the_cutoff(
    histories: list[list[tuple[int, str, str, int | None]]], cutoff_h: int
) -> None:
    rows = [row for i, steps in enumerate(histories) for row in _records(f"c{i}", steps)]
    table = subscriptions_frame(rows)  # each record keeps its id in both tables (ids break ties in time)
    known = table[table["updated_at"] < at(cutoff_h)].reset_index(drop=True)
    events = events_frame([event(f"c{i}", cutoff_h - 0.5) for i in range(len(histories))])
    everything = build_features(events, table, at(cutoff_h))
    pd.testing.assert_frame_equal(everything, build_features(events, known, at(cutoff_h)))
    # a customer is in the population only if its latest known record says active
    latest = dict(zip(known["customer_token"], known["status"]))
    assert set(everything["customer_token"]) <= {token for token, status in latest.items() if status == "active"}
    labels = build_labels(table, at(cutoff_h), horizon=6)
    assert list(labels.index) == list(everything["customer_token"])


@settings(max_examples=25, deadline=None)
@given(steps=record_steps, repeats=st.lists(st.integers(min_value=1, max_value=29), max_size=4))
def test_a_record_repeating_the_current_state_changes_no_subscription_feature(
    steps: list[tuple[int, str, str, int | None]], repeats: list[int]
) -> None:
    """The data-start artefact: an export of an unchanged subscription (as every customer's first record is) is
    not a change, so it moves neither ``hours_since_change`` nor the count of changes, wherever it lands."""
    actives = [(hours, plan, "active", None) for hours, plan, _, _ in steps]
    rows = _records("a", actives)
    events = events_frame([])
    base = build_features(events, subscriptions_frame(rows), at(CUTOFF_H))
    with_repeats = list(rows)
    for hours in repeats:  # half past an hour: never at the time of another record
        current = [row for row in rows if row["updated_at"] <= at(hours)][-1]
        with_repeats.append({**current, "updated_at": at(hours + 0.5)})
    with_repeats.sort(key=lambda row: row["updated_at"])
    repeated = build_features(events, subscriptions_frame(with_repeats), at(CUTOFF_H))
    columns = ["hours_since_change", "subscription_changes", "plan_direction"]
    pd.testing.assert_frame_equal(base[columns], repeated[columns])
    assert (base["hours_since_change"] <= base["tenure_h"]).all()


@settings(max_examples=25, deadline=None)
@given(plans=st.lists(st.sampled_from(PLANS), min_size=1, max_size=6))
def test_plan_direction_is_the_sign_of_the_latest_plan_change(plans: list[str]) -> None:
    rows = [record("a", hours, plan=plan) for hours, plan in enumerate(plans)]
    features = build_features(events_frame([]), subscriptions_frame(rows), at(CUTOFF_H))
    tiers = [PLAN_TIERS[plan] for plan in plans]
    steps = [later - earlier for earlier, later in zip(tiers, tiers[1:]) if later != earlier]
    assert features.loc[0, "plan_direction"] == (np.sign(steps[-1]) if steps else 0)


@settings(max_examples=25, deadline=None)
@given(
    recent=st.lists(st.floats(min_value=0.01, max_value=23.9), max_size=20),
    old=st.lists(st.floats(min_value=24.5, max_value=CUTOFF_H - 0.01), min_size=1, max_size=20),
)
def test_activity_relative_to_the_own_baseline_falls_with_more_past_activity(
    recent: list[float], old: list[float]
) -> None:
    """More events in the customer's past (before every window) raise the baseline: no ratio goes up, all stay
    positive and finite; a customer as active lately as ever is near 1."""
    subs = subscriptions_frame([record("a", 0)])
    names = relative_activity_names((1, 6, 24))
    base = build_features(events_frame([event("a", CUTOFF_H - h) for h in recent]), subs, at(CUTOFF_H))
    busier_past = events_frame([event("a", CUTOFF_H - h) for h in [*recent, *old]])
    more = build_features(busier_past, subs, at(CUTOFF_H))
    assert (more[names].to_numpy() <= base[names].to_numpy() + 1e-12).all()
    assert np.isfinite(more[names].to_numpy()).all() and (more[names].to_numpy() > 0).all()
    steady = events_frame([event("a", h + 0.5) for h in range(CUTOFF_H)])  # one event an hour, always
    assert build_features(steady, subs, at(CUTOFF_H))[names].to_numpy() == pytest.approx(1.0)
