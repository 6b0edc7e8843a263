"""Shared helper for the versioning contract tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from churnops.data.versioning.base import DataRepository


@dataclass
class Harness:
    """A repository under test plus a name space that keeps each test's branches and paths apart.

    ``unreachable`` gives a handle on a store that cannot be reached; ``denied`` a handle on the
    same store that the store refuses (wrong credentials, or files it may not write).
    """

    repo: DataRepository
    reopen: Callable[[], DataRepository]  # another handle on the same storage, as another process has
    unreachable: Callable[[], DataRepository]
    denied: Callable[[pytest.MonkeyPatch], DataRepository]
    ns: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    branches: list[str] = field(default_factory=list)

    def branch(self, suffix: str) -> str:
        """A branch name unique to this test (remembered for clean-up)."""
        name = f"{self.ns}-{suffix}"
        self.branches.append(name)
        return name

    def path(self, suffix: str) -> str:
        """An object path unique to this test."""
        return f"{self.ns}/{suffix}"
