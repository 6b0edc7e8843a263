"""The moment a scheduled purge completes erasures for (the purge pipeline's ``as_of``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from churnops.training.erasure import as_of

NOW = datetime(2026, 11, 5, 3, 30, tzinfo=timezone.utc)


def test_empty_is_now_and_a_past_time_is_taken_as_given() -> None:
    assert as_of("", NOW) == NOW and as_of("  ", NOW) == NOW
    assert as_of("2026-11-04T03:30:00+00:00", NOW) == NOW - timedelta(days=1)
    assert as_of("2026-11-04T03:30:00", NOW) == NOW - timedelta(days=1)  # naive is UTC
    assert as_of("2026-11-05T04:30:00+01:00", NOW) == NOW


def test_a_time_after_now_is_refused_it_would_cut_a_grace_period_short() -> None:
    with pytest.raises(ValueError, match="later than now"):
        as_of("2026-11-05T03:31:00+00:00", NOW)
    with pytest.raises(ValueError):
        as_of("yesterday", NOW)
