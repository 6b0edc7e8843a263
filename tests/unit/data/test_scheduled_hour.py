"""The hour an ingest run handles: the explicit hour, else the hour before KFP's scheduled time."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from churnops.data.ingest import scheduled_hour

UTC = timezone.utc


@pytest.mark.parametrize(
    ("scheduled", "expected"),
    [
        ("2026-11-01T06:05:00Z", datetime(2026, 11, 1, 5, tzinfo=UTC)),
        ("2026-11-01T06:00:00+00:00", datetime(2026, 11, 1, 5, tzinfo=UTC)),
        ("2026-11-01T00:00:00Z", datetime(2026, 10, 31, 23, tzinfo=UTC)),  # across midnight
        ("2026-11-01T08:30:00+02:00", datetime(2026, 11, 1, 5, tzinfo=UTC)),  # an offset is honoured
        ("2026-11-01T06:59:59.123456Z", datetime(2026, 11, 1, 5, tzinfo=UTC)),
    ],
)
def test_a_scheduled_run_ingests_the_last_complete_hour(scheduled: str, expected: datetime) -> None:
    assert scheduled_hour("", scheduled) == expected


def test_an_explicit_hour_wins_over_the_schedule() -> None:
    assert scheduled_hour("2026-11-01T05", "2026-11-02T10:00:00Z") == datetime(2026, 11, 1, 5, tzinfo=UTC)
    assert scheduled_hour(" 2026-11-01T05:45:00+00:00 ", "") == datetime(2026, 11, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize("placeholder", ["", "{{$.pipeline_job_schedule_time_utc}}"])
def test_without_an_hour_or_a_substituted_schedule_time_the_run_is_refused(placeholder: str) -> None:
    with pytest.raises(ValueError, match="pass the hour"):
        scheduled_hour("", placeholder)


def test_a_malformed_hour_says_what_it_expects() -> None:
    with pytest.raises(ValueError, match="not a time like 2026-11-01T05"):
        scheduled_hour("yesterday", "")


def test_kfp_creation_time_fallback_is_taken_for_an_on_time_run() -> None:
    """2.17 gives the creation time when the run's account may not read its Workflow: an hourly run
    created at 06:05:03 still ingests 05:00-06:00."""
    assert scheduled_hour("", "2026-11-01T06:05:03Z", "2026-11-01T06:05:03Z") == datetime(2026, 11, 1, 5, tzinfo=UTC)


def test_a_catch_up_run_with_the_creation_time_fallback_is_refused() -> None:
    """After an outage every catch-up run is created now: with the fallback each would ingest the hour before
    now, so a run whose scheduled time is its creation time late in the hour is refused."""
    with pytest.raises(ValueError, match="creation time .* 42 min into its hour.*pass the hour"):
        scheduled_hour("", "2026-11-01T09:42:10Z", "2026-11-01T09:42:10Z")
    assert scheduled_hour("2026-11-01T05", "2026-11-01T09:42:10Z", "2026-11-01T09:42:10Z") == datetime(
        2026, 11, 1, 5, tzinfo=UTC
    )  # an explicit hour (a backfill) is still served


def test_a_catch_up_run_with_its_real_scheduled_time_ingests_its_own_hour() -> None:
    """With the RBAC in place, a catch-up run created at 09:42 for the 06:05 slot ingests 05:00-06:00."""
    assert scheduled_hour("", "2026-11-01T06:05:00Z", "2026-11-01T09:42:10Z") == datetime(2026, 11, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize("created", ["", "{{$.pipeline_job_create_time_utc}}"])
def test_without_a_creation_time_the_scheduled_time_is_taken(created: str) -> None:
    assert scheduled_hour("", "2026-11-01T09:42:10Z", created) == datetime(2026, 11, 1, 8, tzinfo=UTC)
