"""Data-subject rights on the lake: erasure (GDPR Art. 17) and access/portability (Art. 15/20).

The lake never holds a raw customer id: every table that describes a customer carries its
``customer_token`` (see :mod:`churnops.data.privacy`). A data subject is therefore found by
tokenizing the raw id the request names with the same key that ingest used, and looking for that
token in every parquet table of the given branches (``events/``, ``subscriptions/``,
``quarantine/`` and, wherever they live, feature matrices and predictions).

:func:`forget` rewrites each file that holds the subject without the subject's rows (a file left
empty is deleted) on a branch of its own, commits, and merges into the branch it came from: one new
commit per branch, with an erasure record (``_privacy/erasures/<erasure_id>.json`` on ``main``)
that holds the token, never the raw id. Earlier commits still hold the rows until the lake's
retention and garbage collection remove them (``docs/security.md``). :func:`export` returns the
subject's rows in a portable JSON document.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from churnops.data.privacy import Tokenizer
from churnops.data.versioning import DataRepository, MergeConflict
from churnops.data.versioning.base import DEFAULT_BRANCH
from churnops.errors import ConfigurationError, VersioningError

log = logging.getLogger(__name__)

SUBJECT_COLUMN = "customer_token"
ERASURES_PREFIX = "_privacy/erasures"
KEY_ID_METADATA = "tokenizer_key_id"
MAX_ATTEMPTS = 3


@dataclass
class BranchErasure:
    """What one erasure did on one branch."""

    branch: str
    base_commit: str
    commit_id: str | None = None
    rows_removed: dict[str, int] = field(default_factory=dict)  # table (first path part) -> rows
    files_rewritten: int = 0
    files_deleted: int = 0


@dataclass
class ErasureReport:
    """The outcome of :func:`forget`; its JSON form is the erasure record (no raw id in it)."""

    erasure_id: str
    requested_at: str
    subject_token: str
    key_id: str
    branches: list[BranchErasure] = field(default_factory=list)

    @property
    def rows_removed(self) -> int:
        """Rows removed over every branch and table."""
        return sum(sum(b.rows_removed.values()) for b in self.branches)


def _table_of(path: str) -> str:
    return path.split("/", 1)[0]


def _parquet_paths(repo: DataRepository, ref: str) -> list[str]:
    return [p for p in repo.list_paths(ref) if p.endswith(".parquet") and not p.startswith("_")]


def _read(repo: DataRepository, ref: str, path: str) -> pa.Table:
    return pq.read_table(io.BytesIO(repo.get_object(ref, path)))


def _subject_mask(table: pa.Table, token: str) -> np.ndarray | None:
    """True for the subject's rows, or None when the table has no subject column."""
    if SUBJECT_COLUMN not in table.column_names:
        return None
    values = np.asarray(table.column(SUBJECT_COLUMN).to_pylist(), dtype=object)
    return np.asarray(values == token, dtype=bool)


def check_key(repo: DataRepository, tokenizer: Tokenizer, ref: str = DEFAULT_BRANCH, depth: int = 200) -> None:
    """Refuse a key other than the one that tokenized the lake (a wrong key finds nobody, silently).

    Ingest records ``tokenizer_key_id`` on every commit it publishes; the newest such commit
    within ``depth`` commits of ``ref`` must name this tokenizer's key. A lake with no such commit
    (nothing ingested yet) is accepted.
    """
    for info in repo.log(ref, limit=depth):
        recorded = info.metadata.get(KEY_ID_METADATA)
        if recorded:
            if recorded != tokenizer.key_id:
                raise ConfigurationError(
                    f"the tokenization key in use ({tokenizer.key_id}) is not the one that tokenized the lake "
                    f"({recorded}, commit {info.id[:12]}): load the lake's key before handling a data-subject request"
                )
            return


def _erase_branch(repo: DataRepository, branch: str, token: str, erasure_id: str,
                  record: Callable[[BranchErasure], dict[str, bytes]] | None) -> BranchErasure:
    """One attempt: rewrite the subject's files on a work branch, commit, merge into ``branch``."""
    base = repo.head(branch)
    result = BranchErasure(branch=branch, base_commit=base)
    work = f"erasure-{erasure_id}-{branch}"[:120]
    repo.create_branch(work, source=base)
    try:
        files: dict[str, bytes] = {}
        deleted: list[str] = []
        for path in _parquet_paths(repo, base):
            table = _read(repo, base, path)
            mask = _subject_mask(table, token)
            if mask is None:
                continue
            removed = int(mask.sum())
            if not removed:
                continue
            kept = table.filter(pa.array(~mask))
            result.rows_removed[_table_of(path)] = result.rows_removed.get(_table_of(path), 0) + removed
            if kept.num_rows:
                buffer = io.BytesIO()
                pq.write_table(kept, buffer, compression="zstd")
                files[path] = buffer.getvalue()
            else:
                deleted.append(path)
        if not files and not deleted:
            return result
        result.files_rewritten, result.files_deleted = len(files), len(deleted)
        if record is not None:
            files.update(record(result))
        repo.put_objects(work, files)
        repo.delete_objects(work, deleted)
        metadata = {"erasure_id": erasure_id, "rows_removed": json.dumps(result.rows_removed, sort_keys=True)}
        repo.commit(work, f"erasure {erasure_id}: remove one data subject's rows", metadata)
        result.commit_id = repo.merge(work, into=branch, message=f"publish erasure {erasure_id}", metadata=metadata)
    finally:
        if repo.branch_exists(work):
            repo.delete_branch(work)
    return result


def forget(repo: DataRepository, tokenizer: Tokenizer, customer_id: str,
           branches: Sequence[str] = (DEFAULT_BRANCH,),
           now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> ErasureReport:
    """Erase one data subject from the current state of ``branches`` (those that exist), one commit each.

    The erasure record is written with the commit on ``main`` (the first branch). A branch whose
    head moved while the erasure ran (for example, an ingest merged new rows of the subject) is
    erased again, up to three times. Raises :class:`ConfigurationError` for a key that did not
    tokenize the lake, :class:`VersioningError` when the lake keeps changing under the erasure.
    """
    check_key(repo, tokenizer)
    report = ErasureReport(erasure_id=uuid.uuid4().hex[:16], requested_at=now().isoformat(timespec="seconds"),
                           subject_token=tokenizer.token(customer_id), key_id=tokenizer.key_id)

    def record(done: BranchErasure) -> dict[str, bytes]:
        snapshot = asdict(report) | {"branches": [asdict(done)]}
        return {f"{ERASURES_PREFIX}/{report.erasure_id}.json": json.dumps(snapshot, indent=2).encode()}

    for index, branch in enumerate(branches):
        if not repo.branch_exists(branch):
            continue
        for _ in range(MAX_ATTEMPTS):
            try:
                done = _erase_branch(repo, branch, report.subject_token, report.erasure_id,
                                     record if index == 0 else None)
            except MergeConflict:
                continue  # the branch moved under us; start again from its new head
            if done.commit_id is not None and done.base_commit not in repo.commit_info(done.commit_id).parents:
                # Something else was merged into the branch meanwhile and may hold the subject too.
                again = _erase_branch(repo, branch, report.subject_token, report.erasure_id, None)
                done.commit_id = again.commit_id or done.commit_id
                for table, rows in again.rows_removed.items():
                    done.rows_removed[table] = done.rows_removed.get(table, 0) + rows
            break
        else:
            raise VersioningError(f"erasure {report.erasure_id}: branch {branch!r} kept changing; run it again")
        report.branches.append(done)
    log.info("data subject erased", extra={"erasure_id": report.erasure_id, "rows_removed": report.rows_removed,
                                            "commits": [b.commit_id for b in report.branches]})
    return report


def _jsonable(value: Any) -> Any:
    if hasattr(value, "isoformat"):  # datetime, date, time
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def export(repo: DataRepository, tokenizer: Tokenizer, customer_id: str,
           branches: Sequence[str] = (DEFAULT_BRANCH,),
           now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> dict[str, Any]:
    """Everything the lake holds about one data subject at the heads of ``branches``, as a JSON-ready dict.

    ``tables`` maps each table (the first part of the path) to the subject's rows, each with the
    lake path it came from; ``commits`` names the commit of each branch that was read. A file that
    a later branch shares, unchanged, with an earlier one is listed once.
    """
    check_key(repo, tokenizer)
    token = tokenizer.token(customer_id)
    document: dict[str, Any] = {
        "generated_at": now().isoformat(timespec="seconds"),
        "subject": {SUBJECT_COLUMN: token, "key_id": tokenizer.key_id},
        "commits": {},
        "tables": {},
    }
    seen: set[tuple[str, str]] = set()  # (path, content digest): a branch started from another shares its files
    for branch in branches:
        if not repo.branch_exists(branch):
            continue
        commit = repo.head(branch)
        document["commits"][branch] = commit
        for path in _parquet_paths(repo, commit):
            content = repo.get_object(commit, path)
            key = (path, hashlib.sha256(content).hexdigest())
            if key in seen:
                continue
            seen.add(key)
            table = pq.read_table(io.BytesIO(content))
            mask = _subject_mask(table, token)
            if mask is None or not mask.any():
                continue
            rows = table.filter(pa.array(mask)).to_pylist()
            document["tables"].setdefault(_table_of(path), []).extend(
                {"_lake_path": f"{branch}@{commit[:12]}/{path}", **{k: _jsonable(v) for k, v in row.items()}}
                for row in rows
            )
    return document
