"""New generations of a generated raw object, as a producer sends them again: other lines, or cut short."""

from __future__ import annotations

import dataclasses
import gzip

from churnops.local import datagen


def lines_of(raw: datagen.RawObject) -> list[str]:
    """The text lines of a gzip JSON Lines object."""
    return gzip.decompress(raw.data).decode().splitlines()


def with_lines(raw: datagen.RawObject, lines: list[str]) -> datagen.RawObject:
    """A new generation of ``raw`` (its name, hour and arrival) holding ``lines`` as gzip JSON Lines."""
    return dataclasses.replace(raw, data=gzip.compress("\n".join(lines).encode() + b"\n"))


def truncated(raw: datagen.RawObject) -> datagen.RawObject:
    """A new generation of ``raw`` cut after half its bytes: a truncated gzip stream, unreadable."""
    return dataclasses.replace(raw, data=raw.data[: len(raw.data) // 2])
