"""Data versioning: one interface (:class:`DataRepository`), an embedded and a lakeFS backend."""

from __future__ import annotations

from churnops.data.versioning.base import (
    AccessDenied,
    CommitInfo,
    DataRepository,
    InvalidArgument,
    LakeUnavailable,
    MergeConflict,
    NotFoundError,
    ObjectExpired,
    UncommittedChangesError,
)
from churnops.errors import ConfigurationError, VersioningError
from churnops.platform.settings import Settings

__all__ = [
    "AccessDenied",
    "CommitInfo",
    "DataRepository",
    "InvalidArgument",
    "LakeUnavailable",
    "MergeConflict",
    "NotFoundError",
    "ObjectExpired",
    "UncommittedChangesError",
    "VersioningError",
    "open_repository",
]


def open_repository(settings: Settings) -> DataRepository:
    """The data repository ``settings.versioning_backend`` selects (not yet :meth:`ensure`-d).

    ``embedded`` keeps a git repository under ``settings.embedded_repo_dir``; ``lakefs`` talks to
    ``settings.lakefs_endpoint`` and needs the repository name and both credentials.
    """
    if settings.versioning_backend == "embedded":
        from churnops.data.versioning.embedded import EmbeddedRepository  # pylint: disable=import-outside-toplevel

        return EmbeddedRepository(settings.embedded_repo_dir)
    if settings.versioning_backend == "lakefs":
        from churnops.data.versioning.lakefs import LakeFSRepository  # pylint: disable=import-outside-toplevel

        return LakeFSRepository.from_settings(settings)
    raise ConfigurationError(f"unknown versioning backend {settings.versioning_backend!r}: use 'embedded' or 'lakefs'")
