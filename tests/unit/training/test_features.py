"""Features and labels: windows, population, labels, no leakage, time split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from churnops.errors import DataContractError
from churnops.training.features import (
    FEATURE_SPEC,
    LABEL,
    SPLITS,
    FeatureSpec,
    InsufficientData,
    build_features,
    build_labels,
    build_training_set,
    choose_cutoffs,
    feature_spec,
    ghost_customers,
    held_out_customers,
    split_by_time,
)
from tests.unit.training.conftest import at, event, events_frame, record, subscriptions_frame

CUTOFF = at(30)


def one_customer(events: list[dict], records: list[dict] | None = None) -> pd.DataFrame:
    """Features at CUTOFF for customer "a" (active since T0) and the given events."""
    subs = subscriptions_frame(records or [record("a", 0)])
    return build_features(events_frame(events), subs, CUTOFF).set_index("customer_token")


def test_window_counts_include_the_window_start_and_exclude_the_cutoff() -> None:
    rows = [
        event("a", 30 - 1, "login"),  # exactly 1h before: inside every window
        event("a", 30 - 0.5, "error"),
        event("a", 30 - 6, "search"),  # exactly 6h before: inside 6h and 24h
        event("a", 30 - 6.01, "search"),  # just outside 6h
        event("a", 30 - 24.5, "purchase", amount=5.0),  # outside every window
        event("a", 30, "login"),  # at the cutoff: excluded
    ]
    features = one_customer(rows).loc["a"]
    assert (features["events_1h"], features["events_6h"], features["events_24h"]) == (2, 3, 4)
    assert features["n_login_1h"] == 1 and features["n_error_1h"] == 1
    assert features["n_search_6h"] == 1 and features["n_search_24h"] == 2
    assert features["n_purchase_24h"] == 0 and features["spend_24h"] == 0
    assert features["recency_h"] == pytest.approx(0.5)
    assert features["rate_change_1h_6h"] == pytest.approx(2 / 1 - 3 / 6)
    assert features["rate_change_6h_24h"] == pytest.approx(3 / 6 - 4 / 24)


def test_sessions_duration_spend_and_subscription_columns() -> None:
    rows = [
        event("a", 29.0, "page_view", session="x", duration=10.0),
        event("a", 29.5, "purchase", session="x", amount=12.5),
        event("a", 25.0, "video_play", session="y", duration=30.0),
        event("a", 26.0, "support_contact", session=None),
    ]
    premium = record("a", 0, plan="premium", total_charges=None, signup_date="2026-10-31")
    features = one_customer(rows, [premium]).loc["a"]
    assert features["sessions_1h"] == 1 and features["sessions_6h"] == 2
    assert features["mean_duration_s_1h"] == pytest.approx(10.0)
    assert features["mean_duration_s_6h"] == pytest.approx(20.0)
    assert features["spend_6h"] == pytest.approx(12.5)
    assert features["n_support_contact_6h"] == 1
    assert features["tenure_h"] == pytest.approx(24 + 30)
    assert features["hours_since_change"] == pytest.approx(24 + 30)  # no change on record: since signup
    assert features["plan"] == "premium" and np.isnan(features["total_charges"])


def test_a_customer_without_events_has_zero_counts_and_unknown_recency() -> None:
    features = one_customer([]).loc["a"]
    assert features["events_24h"] == 0 and features["sessions_24h"] == 0
    assert np.isnan(features["recency_h"]) and np.isnan(features["mean_duration_s_24h"])


def test_output_has_the_spec_columns_in_order_one_row_per_active_customer() -> None:
    subs = subscriptions_frame([record("b", 0), record("a", 0), record("c", 0, status="cancelled", cancel_hours=0)])
    features = build_features(events_frame([event("a", 10)]), subs, CUTOFF)
    assert list(features.columns) == ["customer_token", "cutoff", *FEATURE_SPEC.columns]
    assert list(features["customer_token"]) == ["a", "b"]
    assert (features["cutoff"] == CUTOFF).all()
    assert features[list(FEATURE_SPEC.numeric)].dtypes.eq("float64").all()


def test_population_uses_the_latest_record_before_the_cutoff() -> None:
    subs = subscriptions_frame(
        [
            record("a", 0, plan="basic"),
            record("a", 20, plan="premium", monthly_charges=90.0),  # change before the cutoff: used
            record("a", 31, plan="standard"),  # change after the cutoff: ignored
            record("late", 35),  # signs up after the cutoff: not in the population
            record("gone", 0),
            record("gone", 10, status="cancelled", cancel_hours=10),  # cancelled before: excluded
        ]
    )
    features = build_features(events_frame([]), subs, CUTOFF).set_index("customer_token")
    assert list(features.index) == ["a"]
    assert features.loc["a", "plan"] == "premium" and features.loc["a", "monthly_charges"] == 90.0
    assert features.loc["a", "subscription_changes"] == 1
    assert features.loc["a", "hours_since_change"] == pytest.approx(10)
    assert features.loc["a", "plan_direction"] == 1  # basic -> premium


def test_a_record_repeating_the_previous_one_is_no_change_and_the_latest_plan_change_gives_the_direction() -> None:
    subs = subscriptions_frame(
        [
            record("a", 0, plan="premium", monthly_charges=90.0),
            record("a", 5, plan="basic", monthly_charges=20.0),  # downgrade
            record("a", 12, plan="basic", monthly_charges=20.0),  # the same again: no change
            record("a", 18, plan="basic", monthly_charges=20.0, payment_method="invoice"),  # change, same plan
        ]
    )
    features = build_features(events_frame([]), subs, CUTOFF).set_index("customer_token")
    assert features.loc["a", "subscription_changes"] == 2
    assert features.loc["a", "hours_since_change"] == pytest.approx(30 - 18)
    assert features.loc["a", "plan_direction"] == -1


def test_population_is_judged_by_the_records_known_at_the_cutoff() -> None:
    subs = subscriptions_frame(
        [
            record("backdated", 0),
            record("backdated", 33, status="cancelled", cancel_hours=25),  # recorded after the cutoff
            record("returned", 0),
            record("returned", 10, status="cancelled", cancel_hours=10),
            record("returned", 20),  # came back
            record("scheduled", 0),
            record("scheduled", 5, status="cancelled", cancel_hours=28),  # known, in effect before the cutoff
            record("scheduled", 8, monthly_charges=25.0),
        ]
    )
    features = build_features(events_frame([]), subs, CUTOFF)
    assert list(features["customer_token"]) == ["backdated", "returned"]
    labels = build_labels(subs, CUTOFF, horizon=6)
    # the backdated cancellation was not known at the cutoff: the customer was scored, and churned
    assert labels.to_dict() == {"backdated": 1, "returned": 0}


def test_data_after_the_cutoff_changes_nothing() -> None:
    subs_rows = [record("a", 0), record("b", 0)]
    before = [event("a", 29, "login", duration=3.0), event("b", 12, "purchase", amount=4.0)]
    after = [event("a", 30, "error"), event("a", 31, "purchase", amount=99.0), event("b", 45, "login", session="z")]
    base = build_features(events_frame(before), subscriptions_frame(subs_rows), CUTOFF)
    more_subs = subs_rows + [record("a", 33, plan="premium"), record("b", 40, status="cancelled", cancel_hours=40)]
    leaked = build_features(events_frame(before + after), subscriptions_frame(more_subs), CUTOFF)
    pd.testing.assert_frame_equal(base, leaked)


def test_labels_mark_cancellations_inside_the_horizon_only() -> None:
    subs = subscriptions_frame(
        [
            record("stays", 0),
            record("inside", 0),
            record("inside", 35, status="cancelled", cancel_hours=35),
            record("edge", 0),
            record("edge", 42, status="cancelled", cancel_hours=42),  # cutoff + 12h: inside
            record("later", 0),
            record("later", 43, status="cancelled", cancel_hours=43),
            record("before", 0),
            record("before", 20, status="cancelled", cancel_hours=20),
            record("undated", 0),
            record("undated", 33, status="cancelled", cancel_hours=None),  # uses updated_at
        ]
    )
    labels = build_labels(subs, CUTOFF, horizon=12)
    assert labels.to_dict() == {"edge": 1, "inside": 1, "later": 0, "stays": 0, "undated": 1}
    assert labels.name == LABEL


def test_labels_align_with_feature_rows() -> None:
    subs = subscriptions_frame([record("b", 0), record("a", 0), record("a", 31, status="cancelled", cancel_hours=31)])
    features = build_features(events_frame([]), subs, CUTOFF)
    labels = build_labels(subs, CUTOFF, horizon=6)
    assert list(labels.index) == list(features["customer_token"])


def test_windows_are_configurable() -> None:
    spec = feature_spec([12, 2])
    assert spec.windows_h == (2, 12)
    assert "events_2h" in spec.numeric and "events_24h" not in spec.numeric
    subs = subscriptions_frame([record("a", 0)])
    features = build_features(events_frame([event("a", 20), event("a", 29)]), subs, CUTOFF, windows=(2, 12))
    assert list(features.columns[2:]) == spec.columns
    assert features.loc[0, "events_2h"] == 1 and features.loc[0, "events_12h"] == 2


@pytest.mark.parametrize("windows", [[], [0], [6, 6], [-1]])
def test_bad_windows_are_refused(windows: list[int]) -> None:
    with pytest.raises(ValueError, match="windows"):
        feature_spec(windows)


def test_missing_columns_are_named_in_the_error() -> None:
    subs = subscriptions_frame([record("a", 0)])
    with pytest.raises(ValueError, match="event_type"):
        build_features(events_frame([]).drop(columns=["event_type"]), subs, CUTOFF)
    with pytest.raises(ValueError, match="updated_at"):
        build_features(events_frame([]), subs.drop(columns=["updated_at"]), CUTOFF)


def test_non_positive_horizon_is_refused() -> None:
    with pytest.raises(ValueError, match="horizon"):
        build_labels(subscriptions_frame([record("a", 0)]), CUTOFF, horizon=0)


def test_naive_cutoff_is_utc_and_categorical_input_gives_the_same_features(lake) -> None:
    events, subs = lake
    aware = build_features(events, subs, at(20))
    categorical = events.astype({"customer_token": "category", "event_type": "category", "session_id": "category"})
    naive = build_features(categorical, subs, at(20).tz_localize(None))
    pd.testing.assert_frame_equal(aware, naive)


def test_spec_round_trips_through_json() -> None:
    import json  # pylint: disable=import-outside-toplevel

    assert FeatureSpec.from_dict(json.loads(FEATURE_SPEC.to_json())) == FEATURE_SPEC


def test_training_set_stacks_cutoffs_and_splits_by_time(lake) -> None:
    events, subs = lake
    cutoffs = choose_cutoffs(events, subs, horizon=4, step_h=2, min_history_h=6)
    frame = build_training_set(events, subs, cutoffs, horizon=4, windows=(1, 6))
    assert sorted(frame["cutoff"].unique()) == cutoffs
    assert set(frame[LABEL].unique()) == {0, 1}
    for cutoff in cutoffs[:2]:
        rows = frame[frame["cutoff"] == cutoff].reset_index(drop=True)
        expected = build_features(events, subs, cutoff, windows=(1, 6))
        pd.testing.assert_frame_equal(rows.drop(columns=[LABEL]), expected)
        assert rows[LABEL].tolist() == build_labels(subs, cutoff, horizon=4).tolist()
    splits = split_by_time(frame, (0.6, 0.2, 0.2), horizon_h=4)
    kept = pd.concat(splits.values())
    assert len(kept) == len(frame[frame["cutoff"].isin(kept["cutoff"])])  # whole cutoffs, none twice
    assert splits["train"]["cutoff"].max() + pd.Timedelta(hours=4) < splits["validation"]["cutoff"].min()
    assert splits["validation"]["cutoff"].max() + pd.Timedelta(hours=4) < splits["test"]["cutoff"].min()


def test_cutoffs_leave_history_and_a_full_horizon(lake) -> None:
    events, subs = lake
    cutoffs = choose_cutoffs(events, subs, horizon=4, step_h=3, min_history_h=6)
    end = max(events["event_time"].max(), subs["updated_at"].max()).ceil("h")
    assert cutoffs[-1] == end - pd.Timedelta(hours=4)
    assert cutoffs[0] >= at(6)
    assert all(b - a == pd.Timedelta(hours=3) for a, b in zip(cutoffs, cutoffs[1:]))
    with pytest.raises(ValueError, match="too short"):
        choose_cutoffs(events, subs, horizon=20, min_history_h=20)


def test_split_needs_three_cutoffs() -> None:
    frame = pd.DataFrame({"cutoff": [at(1), at(2)], LABEL: [0, 1]})
    with pytest.raises(ValueError, match="cannot be split"):
        split_by_time(frame, horizon_h=1)


def hourly_cutoffs(count: int) -> pd.DataFrame:
    """One row per hourly cutoff from hour 0."""
    return pd.DataFrame({"cutoff": [at(h) for h in range(count)], LABEL: [h % 2 for h in range(count)]})


@pytest.mark.parametrize(("count", "horizon"), [(25, 6), (13, 4), (40, 12), (9, 2)])
def test_no_label_window_of_an_earlier_split_reaches_a_later_one(count: int, horizon: int) -> None:
    splits = split_by_time(hourly_cutoffs(count), (0.6, 0.2, 0.2), horizon)
    blocks = {name: sorted(frame["cutoff"].unique()) for name, frame in splits.items()}
    gap = pd.Timedelta(hours=horizon)
    assert blocks["train"][-1] + gap < blocks["validation"][0]
    assert blocks["validation"][-1] + gap < blocks["test"][0]
    assert blocks["test"][-1] == at(count - 1)  # the latest cutoffs test
    # Only the cutoffs in the two gaps are left out, and train keeps the largest share.
    assert sum(len(b) for b in blocks.values()) == count - 2 * horizon
    assert len(blocks["train"]) >= max(len(blocks["validation"]), len(blocks["test"]))


def test_the_default_history_of_48_hours_splits_7_3_3() -> None:
    # The defaults: cutoffs from hour 18 to hour 42 (48 h of data, 6 h horizon).
    splits = split_by_time(hourly_cutoffs(25))
    assert [splits[name]["cutoff"].nunique() for name in SPLITS] == [7, 3, 3]


def test_too_short_a_history_for_the_embargo_is_refused_with_the_reason() -> None:
    with pytest.raises(
        InsufficientData,
        match=r"12 cutoff\(s\).*6h label horizon.*must fall before the first "
        r"validation cutoff.*more than 12h",
    ):
        split_by_time(hourly_cutoffs(12), horizon_h=6)


def test_held_out_customers_are_a_stable_share_chosen_by_id() -> None:
    tokens = pd.Series([f"tok-{i}" for i in range(4000)] * 3)
    held = held_out_customers(tokens, 0.1)
    assert held[:4000].tolist() == held[4000:8000].tolist() == held[8000:].tolist()  # a customer, not a row
    assert 0.08 < held[:4000].mean() < 0.12
    assert held.tolist() == held_out_customers(tokens.sample(frac=1, random_state=1).sort_index(), 0.1).tolist()
    assert not held_out_customers(tokens, 0.0).any()
    with pytest.raises(ValueError, match="share"):
        held_out_customers(tokens, 1.0)


event_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "unknown"]),
        st.floats(min_value=0, max_value=40, allow_nan=False),
        st.sampled_from(["page_view", "purchase", "error", "support_contact", "other_type"]),
        st.sampled_from(["s1", "s2", None]),
        st.one_of(st.none(), st.floats(min_value=0, max_value=100)),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=event_rows, cutoff_h=st.integers(min_value=1, max_value=40))
@example(rows=[("a", 40 - 1e-12, "page_view", "s1", None)], cutoff_h=40)  # nanoseconds before the cutoff
def test_feature_invariants(rows: list[tuple], cutoff_h: int) -> None:
    subs = subscriptions_frame([record("a", 0), record("b", 0), record("c", 0)])
    events = events_frame([event(t, h, k, session=s, duration=d) for t, h, k, s, d in rows])
    features = build_features(events, subs, at(cutoff_h))
    assert list(features["customer_token"]) == ["a", "b", "c"]
    counts = features[["events_1h", "events_6h", "events_24h"]].to_numpy()
    assert (np.diff(counts, axis=1) >= 0).all()
    typed = features[[f"n_{kind}_24h" for kind in ("page_view", "purchase", "error", "support_contact")]].sum(axis=1)
    assert (typed <= features["events_24h"]).all()
    assert (features["sessions_24h"] <= features["events_24h"]).all()
    assert ((features["recency_h"] > 0) | features["recency_h"].isna()).all()
    always_known = [c for c in FEATURE_SPEC.numeric if "duration" not in c and c != "recency_h"]
    assert not features[always_known].isna().any().any()
    later = events_frame([event(t, h + cutoff_h, k) for t, h, k, _, _ in rows])
    with_future = build_features(pd.concat([events, later], ignore_index=True), subs, at(cutoff_h))
    pd.testing.assert_frame_equal(features, with_future)


def test_an_unusable_published_table_is_a_data_contract_error() -> None:
    subs = subscriptions_frame([record("a", 0)])
    with pytest.raises(DataContractError, match="customer_token"):
        build_features(events_frame([]), subs.assign(customer_token=None), CUTOFF)


def test_a_customer_silent_beyond_the_span_without_a_cancellation_is_a_ghost_left_out_of_features_and_labels() -> None:
    subs = subscriptions_frame(
        [record("heard", 0), record("ghost", 0), record("back", 0), record("billed", 0), record("billed", 25)]
    )
    events = events_frame([event("heard", 29), event("ghost", 10), event("back", 10), event("back", 40)])
    assert ghost_customers(events, subs, CUTOFF, 12).to_dict("list") == {
        "customer_token": ["back", "ghost"],
        "last_heard": [at(10), at(10)],
        "silent_h": [20.0, 20.0],
    }
    features = build_features(events, subs, CUTOFF, ghost_after_h=12)
    assert list(features["customer_token"]) == ["billed", "heard"]  # a recent record is a sign of life too
    labels = build_labels(subs, CUTOFF, 6, events=events, ghost_after_h=12)
    assert list(labels.index) == ["billed", "heard"]
    assert list(build_features(events, subs, CUTOFF)["customer_token"]) == ["back", "billed", "ghost", "heard"]
    # back is heard of again: no longer a ghost; heard is silent exactly 12 h, not beyond
    assert list(build_features(events, subs, at(41), ghost_after_h=12)["customer_token"]) == ["back", "heard"]
    frame = build_training_set(events, subs, [CUTOFF], horizon=6)  # training leaves ghosts out by default
    assert list(frame["customer_token"]) == ["billed", "heard"]
