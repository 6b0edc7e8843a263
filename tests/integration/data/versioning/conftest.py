"""Backends for the versioning contract tests: embedded, the lakeFS double, and a live lakeFS when configured.

The live backend joins the parametrisation only when ``LAKEFS_ENDPOINT`` (with
``LAKEFS_ACCESS_KEY_ID`` / ``LAKEFS_SECRET_ACCESS_KEY``) is set; it works inside the existing
repository ``LAKEFS_REPOSITORY`` (default ``churn-lake``), on branches and paths unique to each test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from churnops.platform.settings import Settings
from churnops.data.versioning.base import NotFoundError
from churnops.data.versioning.embedded import EmbeddedRepository
from churnops.data.versioning.lakefs import LakeFSRepository
from tests.integration.conftest import double_repository
from tests.support.lakefs_double import LakeFSDouble
from tests.support.versioning import Harness

BACKENDS = ["embedded", "lakefs-double"] + (["lakefs-live"] if Settings().lakefs_endpoint else [])


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """An ensured repository of each backend."""
    backend: str = request.param
    if backend == "embedded":
        path = tmp_path / "lake"
        h = Harness(repo=EmbeddedRepository(path), reopen=lambda: EmbeddedRepository(path))
    elif backend == "lakefs-double":
        double: LakeFSDouble = request.getfixturevalue("lakefs_double")
        name = f"churn-{uuid.uuid4().hex[:12]}"
        h = Harness(repo=double_repository(double, name), reopen=lambda: double_repository(double, name))
    else:
        settings = Settings()
        live = LakeFSRepository.from_settings
        h = Harness(repo=live(settings), reopen=lambda: live(settings))
    h.repo.ensure()
    yield h
    for name in h.branches:
        try:
            h.repo.delete_branch(name)
        except NotFoundError:
            pass
    if backend == "lakefs-double":
        errors = list(request.getfixturevalue("lakefs_double").validation_errors)
        assert not errors, f"requests or responses outside the lakeFS API spec: {errors}"
