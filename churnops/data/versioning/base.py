"""The data-versioning interface shared by the ingest stage (writes) and training (reads).

A :class:`DataRepository` holds files under paths, in commits, on branches, with the model of
lakeFS: writes are staged on a branch, a commit makes them an immutable snapshot, and a merge
publishes a branch's commits into another branch in one step. Two backends implement it:
:class:`~churnops.data.versioning.embedded.EmbeddedRepository` (a git repository through pygit2) and
:class:`~churnops.data.versioning.lakefs.LakeFSRepository` (a lakeFS server through lakefs-sdk).
"""

from __future__ import annotations

import functools
import io
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, TypeAlias

import pyarrow as pa
import pyarrow.parquet as pq

from churnops.errors import ChurnopsError, ServiceUnavailable, VersioningError

DEFAULT_BRANCH = "main"
FEATURES_BRANCH = "features"
"""The branch of derived tables (feature matrices, the online snapshot, drift reports); never merged into main."""

# The branch-name rule of lakeFS, applied by both backends so they accept the same names.
_BRANCH_NAME = re.compile(r"^\w[-\w]*$", re.ASCII)


@dataclass(frozen=True)
class CommitInfo:
    """One commit: its id, message, string metadata, parent ids and creation time (UTC)."""

    id: str
    message: str
    metadata: dict[str, str] = field(hash=False)
    parents: list[str] = field(hash=False)
    created_at: datetime


class MergeConflict(VersioningError):
    """A merge cannot be applied cleanly: both sides changed the same path differently."""


class NotFoundError(VersioningError):
    """An unknown ref (branch or commit id) or path."""


class ObjectExpired(VersioningError):
    """An older commit's object was deleted from the lake's storage (by an erasure's purge, or lakeFS's GC)."""


class UncommittedChangesError(VersioningError):
    """The operation needs a branch without staged (uncommitted) changes."""


class InvalidArgument(VersioningError, ValueError):
    """A branch name, path, content, metadata or limit the repository cannot accept; nothing was written."""


class AccessDenied(VersioningError):
    """The repository refused the credentials (lakeFS 401/403) or the files (embedded: permissions)."""


class LakeUnavailable(VersioningError, ServiceUnavailable):
    """The repository cannot be reached: lakeFS down or failing after the retries, embedded store unreadable."""


def check_branch_name(name: str) -> str:
    """Return ``name`` if it is a valid branch name (letters, digits, ``_`` and ``-``), else raise."""
    if not isinstance(name, str) or not _BRANCH_NAME.match(name):
        raise InvalidArgument(f"invalid branch name {name!r}: use letters, digits, '_' and '-', not starting with '-'")
    return name


def check_path(path: str) -> str:
    """Return ``path`` if it is a valid object path (relative, '/'-separated, no empty/'.'/'..' parts)."""
    if not isinstance(path, str) or not path:
        raise InvalidArgument(f"invalid object path {path!r}: must be a non-empty string")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\x00" in path:
        raise InvalidArgument(f"invalid object path {path!r}: use relative paths like 'dir/file.parquet'")
    return path


Content: TypeAlias = bytes | IO[bytes]
"""What :meth:`DataRepository.put_objects` writes to a path: bytes, or an open binary file (from its current
position to its end, read a block at a time: a large file is never whole in memory on the embedded backend)."""


def close_files(files: Mapping[str, Content]) -> None:
    """Close the open files among ``files`` (once :meth:`DataRepository.put_objects` has written them)."""
    for content in files.values():
        if not isinstance(content, bytes):
            content.close()


def check_content(path: str, content: object) -> None:
    """Raise unless ``content`` (the content of ``path``) is bytes-like or a binary file open for reading."""
    if isinstance(content, (bytes, bytearray, memoryview)):
        return
    if isinstance(content, io.IOBase) and content.readable() and not isinstance(content, io.TextIOBase):
        return
    raise InvalidArgument(f"content of {path!r} must be bytes or a binary file, got {type(content).__name__}")


def check_limit(limit: int) -> int:
    """Return ``limit`` if it is a usable number of log entries (at least 1)."""
    if not isinstance(limit, int) or limit < 1:
        raise InvalidArgument(f"limit must be at least 1, got {limit!r}")
    return limit


def _at_boundary(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an interface method so that its backend's library exceptions leave it as domain errors."""

    @functools.wraps(method)
    def wrapper(self: "DataRepository", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except ChurnopsError:
            raise
        except Exception as exc:
            mapped = self.domain_error(exc)
            if mapped is None:
                raise  # not a failure the backend knows: a bug, which keeps its traceback
            raise mapped from exc

    return wrapper


# The interface methods whose exceptions are mapped (see DataRepository.domain_error).
_INTERFACE = (
    "ensure",
    "head",
    "resolve",
    "create_branch",
    "delete_branch",
    "branch_exists",
    "branches",
    "put_objects",
    "delete_objects",
    "commit",
    "merge",
    "get_object",
    "open_object",
    "list_paths",
    "commit_info",
    "log",
    "read_table",
)


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Return a plain copy of ``metadata``; keys and values must be strings."""
    result: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise InvalidArgument(f"commit metadata must map non-empty strings to strings, got {key!r}: {value!r}")
        result[key] = value
    return result


class DataRepository(ABC):
    """A versioned store of files: branches, staged writes, commits and merges.

    Reads from a branch name see the branch's staged writes (as lakeFS does); reads from a commit
    id see exactly that commit. ``create_branch`` on an existing branch leaves it where it is and
    returns its head, so a retried run resumes its branch with its staged writes intact.

    Errors: every method raises only :class:`~churnops.errors.ChurnopsError` subclasses for what
    can go wrong on purpose: :class:`NotFoundError`, :class:`MergeConflict`,
    :class:`UncommittedChangesError`, :class:`InvalidArgument`, :class:`AccessDenied`,
    :class:`LakeUnavailable` (also a :class:`~churnops.errors.ServiceUnavailable`) or another
    :class:`~churnops.errors.VersioningError`. A backend maps its library's exceptions in
    :meth:`domain_error`; the mapping is applied to every interface method of every subclass.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _INTERFACE:
            if name in cls.__dict__:
                setattr(cls, name, _at_boundary(cls.__dict__[name]))

    @abstractmethod
    def domain_error(self, exc: Exception) -> ChurnopsError | None:
        """The domain error standing for ``exc``, a failure of the backend's library; None for a bug."""

    @abstractmethod
    def ensure(self) -> None:
        """Create the repository and its ``main`` branch (with an initial commit) if absent."""

    @abstractmethod
    def head(self, branch: str = DEFAULT_BRANCH) -> str:
        """The commit id ``branch`` points at (staged writes are not part of it)."""

    @abstractmethod
    def resolve(self, ref: str) -> str:
        """The commit id of ``ref``: a branch name (its head) or a commit id."""

    @abstractmethod
    def create_branch(self, name: str, source: str = DEFAULT_BRANCH) -> str:
        """Create branch ``name`` at the commit of ``source``; return its head.

        If the branch already exists it is left unchanged (wherever it points) and its head is
        returned.
        """

    @abstractmethod
    def delete_branch(self, name: str) -> None:
        """Delete branch ``name`` and its staged writes; ``main`` cannot be deleted."""

    @abstractmethod
    def branch_exists(self, name: str) -> bool:
        """Whether branch ``name`` exists."""

    @abstractmethod
    def branches(self) -> list[str]:
        """The names of every branch, sorted."""

    @abstractmethod
    def put_objects(self, branch: str, files: Mapping[str, Content]) -> None:
        """Stage writes of ``files`` (path -> :data:`Content`) on ``branch``, uncommitted."""

    @abstractmethod
    def delete_objects(self, branch: str, paths: Iterable[str]) -> None:
        """Stage deletions of ``paths`` on ``branch``; missing paths are ignored."""

    @abstractmethod
    def commit(self, branch: str, message: str, metadata: Mapping[str, str]) -> str | None:
        """Commit the staged changes of ``branch``; return the commit id, or None if nothing changed."""

    @abstractmethod
    def merge(
        self,
        source: str,
        into: str = DEFAULT_BRANCH,
        message: str = "",
        metadata: Mapping[str, str] | None = None,
        expected_head: str | None = None,
    ) -> str:
        """Merge the committed state of ``source`` into branch ``into``; return ``into``'s head after.

        Nothing to merge is not an error (the head is returned unchanged). Raises
        :class:`MergeConflict` if both sides changed a path differently; ``into`` is then
        unchanged. Raises :class:`UncommittedChangesError` if ``into`` has staged changes.
        With ``expected_head`` the merge is a compare-and-set: if ``into`` no longer points at
        that commit, :class:`MergeConflict` is raised and nothing changes.
        """

    @abstractmethod
    def get_object(self, ref: str, path: str) -> bytes:
        """The content of ``path`` at ``ref``; :class:`NotFoundError` if absent."""

    @abstractmethod
    def open_object(self, ref: str, path: str) -> IO[bytes]:
        """The content of ``path`` at ``ref`` in a temporary file, at its start (the caller closes it): a large
        object read a part at a time (e.g. by :class:`pyarrow.parquet.ParquetFile`); :class:`NotFoundError` if absent.
        """

    @abstractmethod
    def list_paths(self, ref: str, prefix: str = "") -> list[str]:
        """Sorted paths of every object under ``prefix`` (a plain string prefix) at ``ref``."""

    @abstractmethod
    def commit_info(self, ref: str) -> CommitInfo:
        """The commit ``ref`` resolves to."""

    @abstractmethod
    def log(self, ref: str = DEFAULT_BRANCH, limit: int = 50) -> list[CommitInfo]:
        """Up to ``limit`` commits reachable from ``ref``, newest first."""

    def find_commit(self, ref: str, metadata: Mapping[str, str], depth: int = 50) -> str | None:
        """The newest of the last ``depth`` commits of ``ref`` whose metadata holds every item of ``metadata``
        (None if none): how a retried run finds what an earlier attempt of it committed."""
        for info in self.log(ref, limit=depth):
            if all(info.metadata.get(key) == value for key, value in metadata.items()):
                return info.id
        return None

    @_at_boundary
    def read_table(self, ref: str, prefix: str, columns: Sequence[str] | None = None) -> pa.Table:
        """Every ``*.parquet`` under ``prefix`` at ``ref``, concatenated in path order.

        Columns come from the files themselves (only ``columns``, when given); hive partition
        directories (``dt=``/``hr=``) are not turned into columns. Files whose schemas differ only
        in column order or in missing nullable columns are unified; unreadable files or
        incompatible schemas raise :class:`VersioningError`. Raises :class:`NotFoundError` if there
        is no parquet file under ``prefix``.
        """
        paths = [path for path in self.list_paths(ref, prefix) if path.endswith(".parquet")]
        if not paths:
            raise NotFoundError(f"no parquet files under {prefix!r} at {ref!r}")
        wanted = list(columns) if columns is not None else None
        try:
            tables = [pq.read_table(io.BytesIO(self.get_object(ref, path)), columns=wanted) for path in paths]
            return pa.concat_tables(tables, promote_options="default")
        except pa.ArrowException as exc:
            message = f"cannot read the parquet files under {prefix!r} at {ref!r} as one table: {exc}"
            raise VersioningError(message) from exc
