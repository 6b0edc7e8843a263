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
