"""The embedded backend: a bare git repository on local disk, through pygit2 (libgit2).

Layout of the repository (everything is a git object or ref, readable with plain ``git``):

- ``refs/heads/<branch>``: the branch head commit.
- ``refs/churnops-staging/<branch>``: the branch's staged (uncommitted) writes, as a commit whose
  tree is the branch's full staged tree and whose parent is the branch head it was staged on.
  Being a ref, it survives the process; ``commit`` turns its tree into a real commit.
- Commit metadata: the last paragraph of the commit message is a trailer
  ``Churnops-Metadata: <JSON object>`` (ASCII JSON on one line), so message and metadata
  round-trip exactly.
- ``info/attributes`` holds ``* -merge``: git then treats every file as opaque in a three-way
  merge, so two sides changing the same path differently is a conflict (as in lakeFS), never a
  line-level merge of two CSV files.
- ``churnops.lock``: every ref update happens under an exclusive ``fcntl.flock`` on this file,
  so concurrent processes cannot lose each other's commits or merges, and a merge with
  ``expected_head`` compares and moves the branch in one step.

One object per thread: a pygit2 repository handle is not meant to be shared between threads.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import io
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import pygit2
from pygit2.enums import FileMode, MergeFlag, ObjectType, SortMode

from churnops.data.tempfiles import temporary_file
from churnops.data.versioning.base import (
    DEFAULT_BRANCH,
    AccessDenied,
    CommitInfo,
    Content,
    DataRepository,
    InvalidArgument,
    LakeUnavailable,
    MergeConflict,
    NotFoundError,
    UncommittedChangesError,
    check_branch_name,
    check_content,
    check_limit,
    check_metadata,
    check_path,
)
from churnops.errors import ChurnopsError, VersioningError

logger = logging.getLogger(__name__)

METADATA_TRAILER = "Churnops-Metadata: "
_BRANCH_PREFIX = "refs/heads/"
_STAGING_PREFIX = "refs/churnops-staging/"
_INITIAL_MESSAGE = "Repository created"
_ATTRIBUTES = "* -merge\n"
# Blobs at least this large are written uncompressed (see _write_blob).
_LARGE_BLOB = 1 << 20
# rewrite_history's file filter: (path, content) -> new content, or None to delete the file.
BlobRewrite = Callable[[str, bytes], "bytes | None"]


def encode_message(message: str, metadata: Mapping[str, str]) -> str:
    """A git commit message carrying ``message`` and ``metadata`` (as a JSON trailer)."""
    payload = json.dumps(dict(metadata), sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return f"{message}\n\n{METADATA_TRAILER}{payload}\n"


def decode_message(raw: str) -> tuple[str, dict[str, str]]:
    """The (message, metadata) stored by :func:`encode_message`; plain git messages get ``{}``."""
    head, sep, payload = raw.rpartition(f"\n\n{METADATA_TRAILER}")
    if not sep or not payload.endswith("\n") or "\n" in payload[:-1]:
        return raw, {}
    try:
        metadata = json.loads(payload)
    except json.JSONDecodeError:
        return raw, {}
    if not isinstance(metadata, dict):
        return raw, {}
    return head, {str(key): str(value) for key, value in metadata.items()}


class EmbeddedRepository(DataRepository):
    """A :class:`DataRepository` kept in a bare git repository at ``path``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._repo: pygit2.Repository | None = None

    def domain_error(self, exc: Exception) -> ChurnopsError | None:
        """File-system and libgit2 failures: permissions, an unreachable or a damaged repository."""
        if isinstance(exc, PermissionError):
            return AccessDenied(f"embedded repository at {self.path}: permission denied ({exc.filename or exc})")
        if isinstance(exc, OSError):
            return LakeUnavailable(f"embedded repository at {self.path} cannot be used: {exc}")
        if isinstance(exc, pygit2.GitError):
            return VersioningError(f"embedded repository at {self.path}: {exc}")
        return None

    # ----------------------------------------------------------------- plumbing

    def _git(self) -> pygit2.Repository:
        """The pygit2 handle; the repository must exist (see :meth:`ensure`)."""
        if self._repo is None:
            if not (self.path / "HEAD").is_file():
                raise NotFoundError(f"no embedded repository at {self.path}: call ensure() first")
            self._repo = pygit2.Repository(str(self.path))
        return self._repo

    @contextmanager
    def _locked(self) -> Iterator[pygit2.Repository]:
        """Hold the repository-wide lock (across processes) while refs are read and moved."""
        repo = self._git()
        with open(self.path / "churnops.lock", "a+b") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield repo
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    @staticmethod
    def _signature() -> pygit2.Signature:
        return pygit2.Signature("churnops", "churnops@localhost", int(time.time()), 0)

    def _branch_commit(self, repo: pygit2.Repository, branch: str) -> pygit2.Commit:
        ref = repo.references.get(_BRANCH_PREFIX + check_branch_name(branch))
        if ref is None:
            raise NotFoundError(f"branch {branch!r} does not exist")
        return repo[ref.target].peel(pygit2.Commit)

    @staticmethod
    def _staging_commit(repo: pygit2.Repository, branch: str) -> pygit2.Commit | None:
        ref = repo.references.get(_STAGING_PREFIX + branch)
        return None if ref is None else repo[ref.target].peel(pygit2.Commit)

    def _commit_of(self, repo: pygit2.Repository, ref: str) -> pygit2.Commit:
        """The commit a branch name or a (possibly abbreviated) commit id points at."""
        if not isinstance(ref, str) or not ref:
            raise InvalidArgument(f"invalid ref {ref!r}")
        try:
            check_branch_name(ref)
        except InvalidArgument:
            pass
        else:
            branch = repo.references.get(_BRANCH_PREFIX + ref)
            if branch is not None:
                return repo[branch.target].peel(pygit2.Commit)
        if 4 <= len(ref) <= 40 and all(c in "0123456789abcdef" for c in ref):
            try:
                obj = repo[ref]
            except (KeyError, ValueError, pygit2.GitError):
                obj = None
            if obj is not None and obj.type == ObjectType.COMMIT:
                return obj.peel(pygit2.Commit)
        raise NotFoundError(f"unknown ref {ref!r} (neither a branch nor a commit id)")

    def _read_tree(self, repo: pygit2.Repository, ref: str) -> pygit2.Tree:
        """The tree a read of ``ref`` sees: a branch's staged tree if any, else the commit's tree."""
        if isinstance(ref, str) and repo.references.get(_BRANCH_PREFIX + ref) is not None:
            staged = self._staging_commit(repo, ref)
            if staged is not None:
                return staged.tree
        return self._commit_of(repo, ref).tree

    def _write_blob(self, repo: pygit2.Repository, content: Content) -> pygit2.Oid:
        """Store ``content`` as a git blob and return its id.

        libgit2 always deflates loose objects, at about 40 MB/s on this class of machine, which
        buys nothing for parquet (already compressed). Large blobs are therefore written as
        standard loose objects whose zlib stream uses stored (uncompressed) blocks: same format,
        same object id, readable by libgit2 and git. They are written and hashed a block at a time:
        a file's content is never whole in memory, bytes never copied whole.
        """
        blocks: Iterable[bytes | memoryview]
        if isinstance(content, (bytes, bytearray, memoryview)):
            view = memoryview(content)
            size = view.nbytes
            if size < _LARGE_BLOB:
                return repo.create_blob(bytes(view))
            blocks = (view[start : start + _LARGE_BLOB] for start in range(0, size, _LARGE_BLOB))
        else:
            start = content.tell()
            size = content.seek(0, os.SEEK_END) - start
            content.seek(start)
            if size < _LARGE_BLOB:
                return repo.create_blob(content.read())
            blocks = iter(functools.partial(content.read, _LARGE_BLOB), b"")
        header = b"blob %d\x00" % size
        digest = hashlib.sha1(header, usedforsecurity=False)
        compressor = zlib.compressobj(level=0)
        fd, tmp_name = tempfile.mkstemp(dir=self.path / "objects", prefix="tmp_obj_")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(compressor.compress(header))
                written = 0
                for block in blocks:
                    digest.update(block)
                    tmp.write(compressor.compress(block))
                    written += len(block)
                tmp.write(compressor.flush())
            if written != size:
                raise VersioningError(f"the content changed while it was written ({written} bytes, not {size})")
            hexsha = digest.hexdigest()
            target = self.path / "objects" / hexsha[:2] / hexsha[2:]
            if target.exists():
                Path(tmp_name).unlink()
            else:
                target.parent.mkdir(exist_ok=True)
                os.chmod(tmp_name, 0o444)
                os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return pygit2.Oid(hex=hexsha)

    def _read_blob(self, repo: pygit2.Repository, oid: pygit2.Oid, out: IO[bytes]) -> None:
        """Write the content of blob ``oid`` to ``out``.

        A loose object (as :meth:`_write_blob` stores a large blob) is inflated here a block at a time and
        checked against its id with hashlib: libgit2's checked read of a large blob takes several times as
        long. Any other object (small, or packed) is read by libgit2.
        """
        hexsha = str(oid)
        try:
            stored = (self.path / "objects" / hexsha[:2] / hexsha[2:]).open("rb")
        except FileNotFoundError:
            out.write(repo[oid].peel(pygit2.Blob).data)
            return
        inflate = zlib.decompressobj()
        digest = hashlib.sha1(usedforsecurity=False)
        head = b""
        body = False
        try:
            with stored:
                for block in itertools.chain(iter(functools.partial(stored.read, _LARGE_BLOB), b""), [None]):
                    data = inflate.decompress(block) if block is not None else inflate.flush()
                    digest.update(data)
                    if not body:
                        head += data
                        header, found, data = head.partition(b"\x00")
                        if not found:
                            continue
                        if not header.startswith(b"blob "):
                            raise VersioningError(f"object {hexsha} of the lake is corrupt: it is not a blob")
                        body = True
                    out.write(data)
        except zlib.error as exc:
            raise VersioningError(f"object {hexsha} of the lake is corrupt: {exc}") from exc
        if not body or not inflate.eof or digest.hexdigest() != hexsha:
            raise VersioningError(f"object {hexsha} of the lake is corrupt: its content does not match its id")

    def _new_commit(
        self, repo: pygit2.Repository, tree: pygit2.Oid, parents: list[pygit2.Oid], message: str
    ) -> pygit2.Oid:
        signature = self._signature()
        return repo.create_commit(None, signature, signature, message, tree, parents)

    def _stage(self, branch: str, change: Mapping[str, pygit2.Oid | None]) -> None:
        """Apply ``change`` (path -> blob id, or None to delete) to the branch's staged tree."""
        with self._locked() as repo:
            head = self._branch_commit(repo, branch)
            staged = self._staging_commit(repo, branch)
            index = pygit2.Index()
            index.read_tree(staged.tree if staged is not None else head.tree)
            paths = {entry.path for entry in index}
            paths.difference_update(path for path, oid in change.items() if oid is None)
            paths.update(path for path, oid in change.items() if oid is not None)
            _check_no_file_directory_clash(paths, [path for path, oid in change.items() if oid is not None])
            for path, oid in change.items():
                if oid is None:
                    if path in index:
                        index.remove(path)
                else:
                    index.add(pygit2.IndexEntry(path, oid, FileMode.BLOB))
            tree = index.write_tree(repo)
            staging_ref = _STAGING_PREFIX + branch
            if tree == head.tree_id:
                if staged is not None:
                    repo.references.delete(staging_ref)
                return
            commit = self._new_commit(repo, tree, [head.id], f"staged changes of {branch}")
            repo.references.create(staging_ref, commit, force=True)

    def _info(self, commit: pygit2.Commit) -> CommitInfo:
        message, metadata = decode_message(commit.message)
        return CommitInfo(
            id=str(commit.id),
            message=message,
            metadata=metadata,
            parents=[str(parent) for parent in commit.parent_ids],
            created_at=datetime.fromtimestamp(commit.commit_time, tz=timezone.utc),
        )

    # ------------------------------------------------------------------ interface

    def ensure(self) -> None:
        """Create the bare repository, its merge attributes and ``main`` if absent."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / "HEAD").is_file():
            if any(self.path.iterdir()):
                raise InvalidArgument(f"{self.path} exists, is not empty and is not a git repository")
            pygit2.init_repository(str(self.path), bare=True, initial_head=DEFAULT_BRANCH)
            logger.info("created embedded data repository at %s", self.path)
        attributes = self.path / "info" / "attributes"
        if not attributes.is_file() or attributes.read_text(encoding="utf-8") != _ATTRIBUTES:
            attributes.parent.mkdir(exist_ok=True)
            attributes.write_text(_ATTRIBUTES, encoding="utf-8")
        with self._locked() as repo:
            if repo.references.get(_BRANCH_PREFIX + DEFAULT_BRANCH) is None:
                empty_tree = repo.TreeBuilder().write()
                commit = self._new_commit(repo, empty_tree, [], encode_message(_INITIAL_MESSAGE, {}))
                repo.references.create(_BRANCH_PREFIX + DEFAULT_BRANCH, commit)

    def head(self, branch: str = DEFAULT_BRANCH) -> str:
        return str(self._branch_commit(self._git(), branch).id)

    def resolve(self, ref: str) -> str:
        return str(self._commit_of(self._git(), ref).id)

    def create_branch(self, name: str, source: str = DEFAULT_BRANCH) -> str:
        check_branch_name(name)
        with self._locked() as repo:
            existing = repo.references.get(_BRANCH_PREFIX + name)
            if existing is not None:
                return str(existing.target)
            commit = self._commit_of(repo, source)
            repo.references.create(_BRANCH_PREFIX + name, commit.id)
            return str(commit.id)

    def delete_branch(self, name: str) -> None:
        if check_branch_name(name) == DEFAULT_BRANCH:
            raise InvalidArgument(f"the {DEFAULT_BRANCH!r} branch cannot be deleted")
        with self._locked() as repo:
            self._branch_commit(repo, name)
            if repo.references.get(_STAGING_PREFIX + name) is not None:
                repo.references.delete(_STAGING_PREFIX + name)
            repo.references.delete(_BRANCH_PREFIX + name)

    def branch_exists(self, name: str) -> bool:
        return self._git().references.get(_BRANCH_PREFIX + check_branch_name(name)) is not None

    def branches(self) -> list[str]:
        return sorted(
            name.removeprefix(_BRANCH_PREFIX) for name in self._git().references if name.startswith(_BRANCH_PREFIX)
        )

    def put_objects(self, branch: str, files: Mapping[str, Content]) -> None:
        for path, content in files.items():
            check_content(check_path(path), content)
        repo = self._git()
        self._branch_commit(repo, branch)
        blobs = {path: self._write_blob(repo, content) for path, content in files.items()}
        if blobs:
            self._stage(branch, blobs)

    def delete_objects(self, branch: str, paths: Iterable[str]) -> None:
        change: dict[str, pygit2.Oid | None] = {check_path(path): None for path in paths}
        self._branch_commit(self._git(), branch)
        if change:
            self._stage(branch, change)

    def commit(self, branch: str, message: str, metadata: Mapping[str, str]) -> str | None:
        clean = check_metadata(metadata)
        with self._locked() as repo:
            head = self._branch_commit(repo, branch)
            staged = self._staging_commit(repo, branch)
            if staged is None:
                return None
            repo.references.delete(_STAGING_PREFIX + branch)
            if staged.tree_id == head.tree_id:
                return None
            commit = self._new_commit(repo, staged.tree_id, [head.id], encode_message(message, clean))
            repo.references.create(_BRANCH_PREFIX + branch, commit, force=True)
        logger.info("committed %s on branch %s", commit, branch)
        return str(commit)

    def merge(
        self,
        source: str,
        into: str = DEFAULT_BRANCH,
        message: str = "",
        metadata: Mapping[str, str] | None = None,
        expected_head: str | None = None,
    ) -> str:
        clean = check_metadata(metadata)
        with self._locked() as repo:
            target = self._branch_commit(repo, into)
            if expected_head is not None and target.id != self._commit_of(repo, expected_head).id:
                # Checked under the repository lock: the compare and the set are one step.
                raise MergeConflict(
                    f"branch {into!r} moved to {target.id} since {expected_head}; not merging {source!r}"
                )
            staged = self._staging_commit(repo, into)
            if staged is not None and staged.tree_id != target.tree_id:
                raise UncommittedChangesError(f"branch {into!r} has uncommitted changes; commit them before merging")
            incoming = self._commit_of(repo, source)
            if incoming.id == target.id or repo.descendant_of(target.id, incoming.id):
                return str(target.id)  # everything in source is already in `into`
            base = repo.merge_base(target.id, incoming.id)
            if base == target.id:
                tree = incoming.tree_id  # `into` has not moved since the branch point
            else:
                # merge_trees peels the merge base's commit id to its tree; no base: the empty tree
                ancestor = base if base else repo.TreeBuilder().write()
                merged = repo.merge_trees(ancestor, target.tree, incoming.tree, flags=MergeFlag(0))
                if merged.conflicts is not None:
                    paths = sorted({entry.path for side in merged.conflicts for entry in side if entry is not None})
                    raise MergeConflict(f"merging {source!r} into {into!r} conflicts on {paths}")
                tree = merged.write_tree(repo)
            if tree == target.tree_id:
                return str(target.id)  # the source's changes are already in `into`
            text = message or f"Merge '{source}' into '{into}'"
            commit = self._new_commit(repo, tree, [target.id, incoming.id], encode_message(text, clean))
            repo.references.create(_BRANCH_PREFIX + into, commit, force=True)
        logger.info("merged %s into %s as %s", source, into, commit)
        return str(commit)

    def _blob_at(self, repo: pygit2.Repository, ref: str, path: str) -> pygit2.Oid:
        check_path(path)
        tree = self._read_tree(repo, ref)
        try:
            entry = tree[path]
        except KeyError:
            entry = None
        if entry is None or entry.type != ObjectType.BLOB:
            raise NotFoundError(f"no object {path!r} at {ref!r}")
        return entry.id

    def get_object(self, ref: str, path: str) -> bytes:
        repo = self._git()
        out = io.BytesIO()
        self._read_blob(repo, self._blob_at(repo, ref, path), out)
        return out.getvalue()

    def open_object(self, ref: str, path: str) -> IO[bytes]:
        repo = self._git()
        oid = self._blob_at(repo, ref, path)
        out = temporary_file()  # the caller closes it
        try:
            self._read_blob(repo, oid, out)
            out.seek(0)
        except BaseException:
            out.close()
            raise
        return out

    def list_paths(self, ref: str, prefix: str = "") -> list[str]:
        repo = self._git()
        tree = self._read_tree(repo, ref)
        # Start at the deepest directory the prefix names; filter the rest by string prefix.
        directory = prefix.rpartition("/")[0]
        if directory:
            try:
                entry = tree[directory]
            except KeyError:
                return []
            if entry.type != ObjectType.TREE:
                return []
            tree = repo[entry.id].peel(pygit2.Tree)
        start = f"{directory}/" if directory else ""
        return sorted(path for path in _walk(repo, tree, start) if path.startswith(prefix))

    def commit_info(self, ref: str) -> CommitInfo:
        return self._info(self._commit_of(self._git(), ref))

    def log(self, ref: str = DEFAULT_BRANCH, limit: int = 50) -> list[CommitInfo]:
        check_limit(limit)
        repo = self._git()
        start = self._commit_of(repo, ref)
        result: list[CommitInfo] = []
        for commit in repo.walk(start.id, SortMode.TOPOLOGICAL | SortMode.TIME):
            result.append(self._info(commit))
            if len(result) == limit:
                break
        return result

    # ------------------------------------------------------------------ erasure

    def rewrite_history(self, rewrite: BlobRewrite) -> dict[str, str]:
        """Rewrite every commit of every branch with ``rewrite``, then delete what no ref reaches; old -> new ids.

        ``rewrite(path, content)`` returns a file's new content (the same bytes to keep it, None to
        delete it); it is called once per distinct (path, content) and must depend on nothing else.
        Messages, metadata, authors and times are kept, so a rewritten commit differs from its
        original only in the files ``rewrite`` changed (and in its id); only changed commits are in
        the result. Runs under the repository lock: no commit or merge happens meanwhile. Afterwards
        the object store holds only objects a ref reaches (see :func:`prune`).
        """
        with self._locked() as repo:
            changed = _rewrite_all(repo, rewrite)
            removed = prune(self.path, repo)
        self._repo = None  # the handle may cache objects that are gone
        logger.info("rewrote %d commits of %s; %d unreachable objects deleted", len(changed), self.path, removed)
        return changed


def _check_no_file_directory_clash(paths: set[str], added: Iterable[str]) -> None:
    """Raise if an added path is also a directory of ``paths``, or lies under one of them (git trees cannot)."""
    directories = {path[:i] for path in paths for i, char in enumerate(path) if char == "/"}
    for path in added:
        parents = [path[:i] for i, char in enumerate(path) if char == "/"]
        if path in directories or any(parent in paths for parent in parents):
            raise InvalidArgument(f"cannot stage {path!r}: a path cannot be both a file and a directory")


def _walk(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str) -> Iterator[str]:
    """Every blob path under ``tree``, each prefixed with ``prefix``."""
    for entry in tree:
        if entry.type == ObjectType.TREE:
            yield from _walk(repo, repo[entry.id].peel(pygit2.Tree), f"{prefix}{entry.name}/")
        elif entry.type == ObjectType.BLOB:
            yield f"{prefix}{entry.name}"


# --------------------------------------------------------------------------------- history rewrite
#
# Erasure on the embedded backend (docs/security.md, "Completing an erasure"): every commit is
# rewritten with a content filter, the refs are moved to the rewritten commits, and every object no
# ref reaches any more is deleted from the object store.


class _HistoryRewriter:
    """Rewrites trees and commits bottom-up with ``rewrite`` (path, content) -> new content or None (delete)."""

    def __init__(self, repo: pygit2.Repository, rewrite: BlobRewrite) -> None:
        self.repo = repo
        self.rewrite = rewrite
        self.blobs: dict[tuple[str, pygit2.Oid], pygit2.Oid | None] = {}
        self.trees: dict[tuple[str, pygit2.Oid], pygit2.Oid | None] = {}
        self.commits: dict[pygit2.Oid, pygit2.Oid] = {}

    def blob(self, path: str, oid: pygit2.Oid) -> pygit2.Oid | None:
        """The rewritten blob at ``path`` (None: the file is deleted)."""
        key = (path, oid)
        if key not in self.blobs:
            data = self.repo[oid].peel(pygit2.Blob).data
            new = self.rewrite(path, data)
            self.blobs[key] = None if new is None else (oid if new == data else self.repo.create_blob(new))
        return self.blobs[key]

    def tree(self, prefix: str, oid: pygit2.Oid) -> pygit2.Oid | None:
        """The rewritten tree (None when left empty, except at the root).

        ``_``-prefixed entries (the id index) come after the others, so the ids of the rows removed
        from a commit's tables are known when its index is rewritten.
        """
        key = (prefix, oid)
        if key not in self.trees:
            builder = self.repo.TreeBuilder()
            # a tree's entries always have a name (``name`` is None only on objects read by id)
            entries = sorted(
                self.repo[oid].peel(pygit2.Tree), key=lambda e: ((e.name or "").startswith("_"), e.name or "")
            )
            for entry in entries:
                path = f"{prefix}{entry.name}"
                if entry.type == ObjectType.TREE:
                    new = self.tree(f"{path}/", entry.id)
                elif entry.type == ObjectType.BLOB:
                    new = self.blob(path, entry.id)
                else:
                    new = entry.id
                if new is not None:
                    builder.insert(str(entry.name), new, entry.filemode)
            new_tree = builder.write()
            self.trees[key] = None if prefix and len(builder) == 0 else new_tree
        return self.trees[key]

    def commit(self, commit: pygit2.Commit) -> pygit2.Oid:
        """The rewritten commit; parents must have been rewritten first (walk oldest first)."""
        if commit.id not in self.commits:
            tree = self.tree("", commit.tree_id)
            if tree is None:  # a root tree is always written, empty or not
                raise VersioningError(f"commit {commit.id}: its tree could not be rewritten")
            parents = [self.commits.get(parent, parent) for parent in commit.parent_ids]
            if tree == commit.tree_id and parents == list(commit.parent_ids):
                self.commits[commit.id] = commit.id
            else:
                self.commits[commit.id] = self.repo.create_commit(
                    None, commit.author, commit.committer, commit.message, tree, parents
                )
        return self.commits[commit.id]


def _rewrite_all(repo: pygit2.Repository, rewrite: BlobRewrite) -> dict[str, str]:
    """Rewrite every commit reachable from a branch or staging ref and move those refs; old -> new ids."""
    refs: dict[str, pygit2.Oid] = {}
    for name in repo.references:
        target = repo.references[name].target
        if name.startswith((_BRANCH_PREFIX, _STAGING_PREFIX)) and isinstance(target, pygit2.Oid):
            refs[name] = target
    rewriter = _HistoryRewriter(repo, rewrite)
    walker = repo.walk(None, SortMode.TOPOLOGICAL | SortMode.REVERSE)
    for target in set(refs.values()):
        walker.push(target)
    for commit in walker:
        rewriter.commit(commit)
    for name, target in refs.items():
        new = rewriter.commits.get(target, target)
        if new != target:
            repo.references.create(name, new, force=True)
    return {str(old): str(new) for old, new in rewriter.commits.items() if old != new}


def _reachable(repo: pygit2.Repository) -> set[pygit2.Oid]:
    """Every object some ref reaches: commits, trees and blobs."""
    seen: set[pygit2.Oid] = set()
    pending = [target for name in repo.references if isinstance(target := repo.references[name].target, pygit2.Oid)]
    while pending:
        oid = pending.pop()
        if oid in seen:
            continue
        seen.add(oid)
        obj = repo[oid]
        if obj.type == ObjectType.COMMIT:
            commit = obj.peel(pygit2.Commit)
            pending.append(commit.tree_id)
            pending.extend(commit.parent_ids)
        elif obj.type == ObjectType.TREE:
            pending.extend(entry.id for entry in obj.peel(pygit2.Tree))
        elif obj.type == ObjectType.TAG:
            pending.append(obj.peel(pygit2.Tag).target)
    return seen


def _loose_path(root: Path, oid: pygit2.Oid) -> Path:
    text = str(oid)
    return root / "objects" / text[:2] / text[2:]


def prune(root: Path, repo: pygit2.Repository) -> int:
    """Delete every object no ref reaches (loose objects; packs are unpacked to loose objects first); return how many.

    Reflogs are deleted too (a bare repository keeps none unless configured to). The caller holds
    the repository lock.
    """
    keep = _reachable(repo)
    objects = root / "objects"
    packs = sorted((objects / "pack").glob("*.pack")) if (objects / "pack").is_dir() else []
    for oid in keep:
        path = _loose_path(root, oid)
        if packs and not path.exists():
            kind, data = repo.odb.read(oid)
            _write_loose(path, kind, data)
    deleted = 0
    for pack in packs:
        for sibling in pack.parent.glob(pack.stem + ".*"):
            sibling.unlink()
        deleted += 1
    (objects / "info" / "packs").unlink(missing_ok=True)
    names = {str(oid) for oid in keep}
    for directory in objects.iterdir():
        if len(directory.name) != 2 or not directory.is_dir():
            continue
        for path in directory.iterdir():
            if directory.name + path.name not in names:
                path.unlink()
                deleted += 1
    if (root / "logs").is_dir():
        shutil.rmtree(root / "logs")
    return deleted


_TYPE_NAMES = {ObjectType.COMMIT: b"commit", ObjectType.TREE: b"tree", ObjectType.BLOB: b"blob", ObjectType.TAG: b"tag"}


def _write_loose(path: Path, kind: int, data: bytes) -> None:
    """Write one object in git's loose format (zlib of ``<type> <size>\\0<data>``)."""
    path.parent.mkdir(exist_ok=True)
    header = _TYPE_NAMES[ObjectType(kind)] + b" %d\x00" % len(data)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix="tmp_obj_")
    with os.fdopen(fd, "wb") as tmp:
        tmp.write(zlib.compress(header + data))
    os.chmod(tmp_name, 0o444)
    os.replace(tmp_name, path)
