"""Raw object names: the kind and the UTC hour an object holds, and the ``dt=/hr=`` partition segment.

Raw objects are named ``activity/events/dt=YYYY-MM-DD/hr=HH/*.jsonl.gz`` and
``activity/subscriptions/dt=YYYY-MM-DD/hr=HH/*.csv`` (``docs/data-contract.md``).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from churnops.data.schema import EVENTS, SUBSCRIPTIONS

_OBJECT_NAME = re.compile(
    r"(?:^|/)activity/(?P<kind>events|subscriptions)/dt=(?P<dt>\d{4}-\d{2}-\d{2})/hr=(?P<hr>\d{2})/[^/]+$"
)
_EXTENSIONS = {EVENTS: ".jsonl.gz", SUBSCRIPTIONS: ".csv"}


def hour_partition(hour: datetime) -> str:
    """The ``dt=YYYY-MM-DD/hr=HH`` path segment of ``hour``: raw object names and lake partitions use it."""
    return f"dt={hour:%Y-%m-%d}/hr={hour:%H}"


def _match_name(object_name: str) -> re.Match[str]:
    match = _OBJECT_NAME.search(object_name)
    if match is None or not object_name.endswith(_EXTENSIONS[match["kind"]]):
        raise ValueError(
            f"not a raw object name: {object_name!r} (expected activity/events/dt=YYYY-MM-DD/hr=HH/*.jsonl.gz "
            "or activity/subscriptions/dt=YYYY-MM-DD/hr=HH/*.csv)"
        )
    return match


def kind_of(object_name: str) -> str:
    """``"events"`` or ``"subscriptions"`` from a raw object's name; ``ValueError`` for anything else."""
    return _match_name(object_name)["kind"]


def hour_of(object_name: str) -> datetime:
    """The UTC hour named by the ``dt=YYYY-MM-DD/hr=HH`` part of a raw object's name."""
    match = _match_name(object_name)
    try:
        day = datetime.strptime(match["dt"], "%Y-%m-%d")
    except ValueError as exc:
        raise ValueError(f"invalid date in object name {object_name!r}: {exc}") from exc
    hour = int(match["hr"])
    if hour > 23:
        raise ValueError(f"invalid hour in object name {object_name!r}: {hour}")
    return day.replace(hour=hour, tzinfo=timezone.utc)
