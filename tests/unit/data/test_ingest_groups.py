"""How a run's new objects are split into the groups the ingest pipeline fans out over, and how a plan travels."""

from __future__ import annotations

from datetime import datetime, timezone

from churnops.data.ingest_steps import IngestGroup, IngestPlan, ListedObject, split_into_groups
from churnops.platform.storage import ObjectRef

HOUR = datetime(2026, 11, 1, 5, tzinfo=timezone.utc)


def listed(sizes: list[int]) -> list[ListedObject]:
    """Objects of the given sizes, named in listing order."""
    return [
        ListedObject(
            ObjectRef("raw", f"activity/events/dt=2026-11-01/hr=05/web-{i:03}.jsonl.gz", 1, size), "events", HOUR
        )
        for i, size in enumerate(sizes)
    ]


def test_groups_are_balanced_by_size_and_keep_listing_order() -> None:
    fresh = listed([100, 10, 60, 50, 40, 30, 20])
    groups = split_into_groups(fresh, 3)
    assert [[position for position, _ in group] for group in groups] == [[0], [2, 5, 6], [1, 3, 4]]
    loads = [sum(source.ref.size for _, source in group) for group in groups]
    assert loads == [100, 110, 100]
    assert all(source is fresh[position] for group in groups for position, source in group)


def test_there_are_never_more_groups_than_objects_nor_an_empty_group() -> None:
    assert [len(group) for group in split_into_groups(listed([5, 5]), 4)] == [1, 1]
    assert [len(group) for group in split_into_groups(listed([5, 5, 5]), 1)] == [3]
    assert not split_into_groups([], 4)


def test_a_plan_and_its_groups_survive_json_with_every_digit_of_a_generation() -> None:
    source = ListedObject(
        ObjectRef("raw", "activity/events/dt=2026-11-01/hr=05/web-000.jsonl.gz", 1796631979595725, 12, "gzip"),
        "events",
        HOUR,
        earlier_markers=["_ingest/sources/activity/events/dt=2026-11-01/hr=05/web-000.jsonl.gz/1.json"],
    )
    group = IngestGroup("run", "2026-11-01T05", 3, "branch", "base", 0, [source.ref.name], [(4, source)])
    plan = IngestPlan("run", "2026-11-01T05", 3, "base", "branch", 9, 4, ["activity/x/"], [], [group])
    again = IngestPlan.from_json(plan.to_json())
    assert again == plan and IngestGroup.from_json(group.to_json()) == group
    assert again.groups[0].sources[0][1].ref.generation == 1796631979595725
