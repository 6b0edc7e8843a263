"""Rebuilding the production timeline from recorded alias events."""

from __future__ import annotations

from churnops.model.registry import AliasEvent, production_stack


def ev(alias: str, action: str, version: str, from_version: str | None = None) -> AliasEvent:
    """An alias event (times do not matter to the replay, order does)."""
    return AliasEvent(alias=alias, action=action, version=version, from_version=from_version, at="t", by="me")


def test_promotions_stack_up_and_other_aliases_are_ignored() -> None:
    events = [
        ev("candidate", "assign", "1"),
        ev("production", "promote", "1"),
        ev("staging", "promote", "2"),
        ev("production", "promote", "2", "1"),
        ev("production", "promote", "3", "2"),
    ]
    assert production_stack(events) == ["1", "2", "3"]


def test_a_rollback_pops_the_rolled_back_version_so_a_second_goes_further_back() -> None:
    events = [
        ev("production", "promote", "1"),
        ev("production", "promote", "2", "1"),
        ev("production", "promote", "3", "2"),
        ev("production", "rollback", "2", "3"),
    ]
    assert production_stack(events) == ["1", "2"]
    events.append(ev("production", "rollback", "1", "2"))
    assert production_stack(events) == ["1"]


def test_event_json_round_trip() -> None:
    event = ev("production", "rollback", "2", "3")
    assert AliasEvent.from_json(event.to_json()) == event
