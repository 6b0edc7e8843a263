"""Backends for the versioning contract tests: embedded, the lakeFS double, and a live lakeFS when configured.

The live backend joins the parametrisation only when ``LAKEFS_ENDPOINT`` (with
``LAKEFS_ACCESS_KEY_ID`` / ``LAKEFS_SECRET_ACCESS_KEY``) is set; it works inside the existing
repository ``LAKEFS_REPOSITORY`` (default ``churn-lake``), on branches and paths unique to each test.
"""

from __future__ import annotations

import errno
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from churnops.data.versioning import embedded as embedded_module
from churnops.data.versioning.base import NotFoundError
from churnops.data.versioning.embedded import EmbeddedRepository
from churnops.data.versioning.lakefs import LakeFSRepository
from churnops.platform.settings import Settings
from tests.conftest import free_port
from tests.integration.conftest import double_repository
from tests.support.lakefs_double import LakeFSDouble
from tests.support.versioning import Harness

# A third leg runs the same tests against a real lakeFS server when one is configured
# (LAKEFS_ENDPOINT, LAKEFS_ACCESS_KEY_ID, LAKEFS_SECRET_ACCESS_KEY); without one it is not collected.
BACKENDS = ["embedded", "lakefs-double"] + (["lakefs-live"] if Settings().lakefs_endpoint else [])


def _unreachable_lakefs() -> LakeFSRepository:
    """A lakeFS handle on a port nothing listens on (one quick retry)."""
    return LakeFSRepository(
        f"http://127.0.0.1:{free_port()}", "churn-any", "key", "secret", retries=1, backoff_seconds=0.01
    )


def _embedded_denied(path: Path) -> Callable[[pytest.MonkeyPatch], EmbeddedRepository]:
    """A handle whose file system refuses the repository's lock file (as for a directory this user may not write)."""

    def deny(monkeypatch: pytest.MonkeyPatch) -> EmbeddedRepository:
        def refuse(file: object, *_args: object, **_kwargs: object) -> None:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))

        monkeypatch.setattr(embedded_module, "open", refuse, raising=False)
        return EmbeddedRepository(path)

    return deny


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """An ensured repository of each backend."""
    backend: str = request.param
    if backend == "embedded":
        path = tmp_path / "lake"
        (tmp_path / "a-file").write_bytes(b"")
        h = Harness(
            repo=EmbeddedRepository(path),
            reopen=lambda: EmbeddedRepository(path),
            unreachable=lambda: EmbeddedRepository(tmp_path / "a-file" / "lake"),
            denied=_embedded_denied(path),
        )
    elif backend == "lakefs-double":
        double: LakeFSDouble = request.getfixturevalue("lakefs_double")
        name = f"churn-{uuid.uuid4().hex[:12]}"
        h = Harness(
            repo=double_repository(double, name),
            reopen=lambda: double_repository(double, name),
            unreachable=_unreachable_lakefs,
            denied=lambda _mp: LakeFSRepository(double.url, name, double.access_key_id, "wrong-secret"),
        )
    else:
        settings = Settings()
        live = LakeFSRepository.from_settings
        h = Harness(
            repo=live(settings),
            reopen=lambda: live(settings),
            unreachable=_unreachable_lakefs,
            denied=lambda _mp: LakeFSRepository(
                str(settings.lakefs_endpoint), settings.lakefs_repository, "AKIAWRONGKEYEXAMPLE", "wrong-secret"
            ),
        )
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
