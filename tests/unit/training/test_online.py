"""Online feature snapshots: built by the training feature code, published to and read back from the lake."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from churnops.data.versioning import NotFoundError
from churnops.data.versioning.embedded import EmbeddedRepository
from churnops.model import online as model_online
from churnops.platform.alerts import AlertSink
from churnops.platform.settings import Settings
from churnops.training import online
from churnops.training.features import FEATURE_SPEC, build_features
from tests.unit.training.conftest import at, event, events_frame, record, subscriptions_frame


def small_lake() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three customers; c cancels at hour 10."""
    events = events_frame([event("a", 1), event("a", 20.5, "purchase", amount=5.0), event("b", 15), event("c", 2)])
    subs = subscriptions_frame(
        [
            record("a", 0),
            record("b", 0),
            record("c", 0),
            record("c", 10, status="cancelled", cancel_hours=10),
        ]
    )
    return events, subs


def test_the_snapshot_is_the_training_feature_row_of_each_active_customer_at_the_latest_cutoff() -> None:
    events, subs = small_lake()
    features, inactive, cutoff = online.build_snapshot(events, subs, FEATURE_SPEC)

    assert cutoff == at(21)  # the last event at 20:30 lies strictly before the cutoff
    expected = build_features(events, subs, cutoff).set_index("customer_token")[FEATURE_SPEC.columns]
    pd.testing.assert_frame_equal(features, expected)
    assert list(features.index) == ["a", "b"]
    assert features.loc["a", "n_purchase_24h"] == 1
    assert inactive.to_dict() == {"c": "cancelled"}


def test_a_cutoff_on_the_hour_still_includes_the_last_event() -> None:
    events = events_frame([event("a", 5)])
    subs = subscriptions_frame([record("a", 0)])
    _, _, cutoff = online.build_snapshot(events, subs, FEATURE_SPEC)
    assert cutoff == at(6)


def test_publish_then_load_round_trips_and_a_newer_snapshot_gets_a_new_commit(tmp_path: Path) -> None:
    repo = EmbeddedRepository(tmp_path / "lake")
    repo.ensure()
    data_commit = repo.head("main")
    with pytest.raises(NotFoundError, match="no online feature snapshot"):
        model_online.load_snapshot(repo)

    events, subs = small_lake()
    features, inactive, cutoff = online.build_snapshot(events, subs, FEATURE_SPEC)
    first = model_online.publish_snapshot(
        repo, model_online.OnlineSnapshot(features, inactive, data_commit, cutoff, FEATURE_SPEC, commit_id="")
    )
    loaded = model_online.load_snapshot(repo)
    assert loaded.commit_id == first == model_online.snapshot_commit(repo)
    pd.testing.assert_frame_equal(loaded.features, features)
    assert loaded.inactive.to_dict() == {"c": "cancelled"}
    assert (loaded.data_commit, loaded.cutoff, loaded.spec) == (data_commit, cutoff, FEATURE_SPEC)
    assert repo.head("main") == data_commit  # features never move main

    features, inactive, _ = online.build_snapshot(events, subs, FEATURE_SPEC, cutoff=at(30))
    second = model_online.publish_snapshot(
        repo, model_online.OnlineSnapshot(features, inactive, data_commit, at(30), FEATURE_SPEC, commit_id="")
    )
    assert second != first
    assert model_online.load_snapshot(repo).cutoff == at(30)
    assert model_online.load_snapshot(repo, first).cutoff == cutoff  # the older snapshot stays readable by commit


def ghost_lake() -> tuple[pd.DataFrame, pd.DataFrame]:
    """``a`` active and heard of lately; ``gone`` active by its records but silent since hour 2."""
    events = events_frame([event("a", 1), event("a", 20.5), event("gone", 2)])
    return events, subscriptions_frame([record("a", 0), record("gone", 0)])


def test_a_ghost_is_not_scored_and_is_listed_as_silent() -> None:
    events, subs = ghost_lake()
    features, inactive, cutoff = online.build_snapshot(events, subs, FEATURE_SPEC)
    assert cutoff == at(21)
    assert list(features.index) == ["a"]
    assert inactive.to_dict() == {"gone": online.SILENT}


def test_refreshing_the_snapshot_alerts_on_ghosts_with_a_count_only(settings: Settings, tmp_path: Path) -> None:
    repo = EmbeddedRepository(tmp_path / "lake")
    repo.ensure()
    events, subs = ghost_lake()
    tables = {}
    for prefix, frame in (("events", events), ("subscriptions", subs)):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        tables[f"{prefix}/part-0.parquet"] = buffer.getvalue()
    repo.put_objects("main", tables)
    repo.commit("main", "published tables", {})
    sink = AlertSink(settings)
    snapshot = online.refresh_online_features(settings, repo=repo, alerts=sink)
    assert list(snapshot.features.index) == ["a"]
    assert [(alert.kind, alert.counts) for alert in sink.emitted] == [("ghost_customers", {"ghosts": 1, "active": 1})]
    assert "gone" not in sink.emitted[0].message
