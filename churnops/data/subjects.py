"""Data-subject rights on the lake: erasure (GDPR Art. 17) and access/portability (Art. 15/20).

The lake never holds a raw customer id: every table that describes a customer carries its
``customer_token`` (see :mod:`churnops.data.privacy`). A data subject is therefore found by
tokenizing the raw id the request names with the same key that ingest used, and looking for that
token in every parquet table of the given branches (``events/``, ``subscriptions/``,
``quarantine/`` and, wherever they live, feature matrices and predictions).

:func:`forget` rewrites each file that holds the subject without the subject's rows (a file left
empty is deleted) on a branch of its own, commits, and merges into the branch it came from: one new
commit per branch, with an erasure record (``_privacy/erasures/<erasure_id>.json`` on ``main``)
that holds the token, never the raw id, and when the erasure is due to be completed. Earlier
commits and the copies outside the lake are removed by :mod:`churnops.data.purge` once the grace
period has passed (``docs/security.md``, "Completing an erasure"). :func:`export` returns the
subject's rows in a portable JSON document.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from churnops.data import parse
from churnops.data.privacy import PII_POLICY, Tokenizer
from churnops.data.versioning import DataRepository, MergeConflict, UncommittedChangesError
from churnops.data.versioning.base import DEFAULT_BRANCH
from churnops.errors import ConfigurationError, VersioningError

log = logging.getLogger(__name__)

SUBJECT_COLUMN = "customer_token"
PRIVACY_PREFIX = "_privacy/"
ERASURES_PREFIX = "_privacy/erasures"
INDEX_ID_COLUMN = "id"  # the id column of the id index (churnops/data/id_index.py)
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
    skipped: str | None = None  # why the branch was left as it is (staged, uncommitted writes of a running job)


@dataclass
class ErasureReport:
    """The outcome of :func:`forget`; its JSON form is the erasure record (no raw id in it)."""

    erasure_id: str
    requested_at: str
    subject_token: str
    key_id: str
    earlier_tokens: list[str] = field(default_factory=list)  # the token under the key chains before rotations
    due_at: str = ""  # when `purge` completes it: requested_at + the grace period
    purged_at: str | None = None
    branches: list[BranchErasure] = field(default_factory=list)
    purged: dict[str, int] = field(default_factory=dict)  # store -> rows or objects removed by purge

    @property
    def rows_removed(self) -> int:
        """Rows removed over every branch and table."""
        return sum(sum(b.rows_removed.values()) for b in self.branches)

    @property
    def tokens(self) -> set[str]:
        """The subject's token under the current key chain and every earlier one."""
        return {self.subject_token, *self.earlier_tokens}


def record_tokens(record: dict[str, Any]) -> set[str]:
    """An erasure record's tokens of the subject: the current one and those from before key rotations."""
    return {record["subject_token"], *record.get("earlier_tokens", [])}


def _table_of(path: str) -> str:
    return path.split("/", 1)[0]


def _parquet_paths(repo: DataRepository, ref: str) -> list[str]:
    """Every parquet table at ``ref`` but the erasure records', ``_``-prefixed ones (the id index) last."""
    paths = [p for p in repo.list_paths(ref) if p.endswith(".parquet") and not p.startswith(PRIVACY_PREFIX)]
    return sorted(paths, key=lambda path: (path.startswith("_"), path))


def _text_column(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) else None


def subject_rows(table: pa.Table, tokens: AbstractSet[str], ids: AbstractSet[str] = frozenset()) -> np.ndarray:
    """True for rows of erased subjects: any text column holding one of ``tokens``, or (in the id
    index) an ``id`` that is one of ``ids``, the ids of such rows elsewhere."""
    mask = np.zeros(table.num_rows, dtype=bool)
    for name in table.column_names:
        column = _text_column(table.column(name))
        if column is None:
            continue
        values = column.to_pandas()
        if tokens:
            mask |= values.isin(tokens).to_numpy(dtype=bool)
        if name == INDEX_ID_COLUMN and ids:
            mask |= values.isin(ids).to_numpy(dtype=bool)
    return mask


@dataclass
class Scrubbed:
    """A parquet file without the erased subjects' rows."""

    content: bytes | None  # the new file; None when no row is left
    rows_removed: int
    ids: set[str]  # the values of the removed rows' ``*_id`` columns (what the id index holds)


def scrub_parquet(content: bytes, tokens: AbstractSet[str], ids: AbstractSet[str] = frozenset()) -> Scrubbed:
    """``content`` (a parquet file) without the rows :func:`subject_rows` finds; unchanged bytes when none."""
    table = pq.read_table(io.BytesIO(content))
    mask = subject_rows(table, tokens, ids)
    removed = int(mask.sum())
    if not removed:
        return Scrubbed(content, 0, set())
    gone = table.filter(pa.array(mask))
    found: set[str] = set()
    for name in gone.column_names:
        column = _text_column(gone.column(name))
        if name.endswith("_id") and column is not None:
            found.update(value for value in column.to_pylist() if value is not None)
    kept = table.filter(pa.array(~mask))
    if not kept.num_rows:
        return Scrubbed(None, removed, found)
    buffer = io.BytesIO()
    pq.write_table(kept, buffer, compression="zstd")
    return Scrubbed(buffer.getvalue(), removed, found)


def erasure_records(repo: DataRepository, ref: str = DEFAULT_BRANCH) -> list[dict[str, Any]]:
    """The erasure records at ``ref`` (oldest first)."""
    records = [
        json.loads(repo.get_object(ref, path))
        for path in repo.list_paths(ref, f"{ERASURES_PREFIX}/")
        if path.endswith(".json")
    ]
    return sorted(records, key=lambda record: (record.get("requested_at", ""), record.get("erasure_id", "")))


def erased_tokens(repo: DataRepository, key_id: str, ref: str = DEFAULT_BRANCH) -> set[str]:
    """The tokens, under key ``key_id``, of every subject erased at ``ref``."""
    return {record["subject_token"] for record in erasure_records(repo, ref) if record.get("key_id") == key_id}


def drop_erased(
    parsed: parse.ParsedObject, kind: str, tokenizer: Tokenizer, tokens: set[str]
) -> tuple[parse.ParsedObject, int]:
    """``parsed`` without the rows of erased subjects (whose id tokenizes to one of ``tokens``), and how many went.

    Ingest calls this on every object it reads, so a replay, a late file or a re-send does not
    bring an erased subject back; the rows are counted as ``rows_erased``.
    """
    columns = [c for c, action in PII_POLICY.get(kind, {}).items() if action == "tokenize" and c in parsed.rows]
    if not tokens or not columns:
        return parsed, 0
    drop = np.zeros(len(parsed.rows), dtype=bool)
    for column in columns:
        values = parsed.rows[column]
        present = values.notna().to_numpy()
        text = values[present].astype(str)
        drop[present] |= tokenizer.tokens(text).isin(tokens).to_numpy()
    dropped = int(drop.sum())
    if not dropped:
        return parsed, 0
    keep = ~drop
    return parse.ParsedObject(
        rows=parsed.rows.loc[keep].reset_index(drop=True),
        malformed=parsed.malformed,
        rows_in=parsed.rows_in - dropped,
        line_numbers=parsed.lines()[keep],
    ), dropped


def check_key(repo: DataRepository, tokenizer: Tokenizer, ref: str = DEFAULT_BRANCH, depth: int = 200) -> None:
    """Refuse a key other than the one that tokenized the lake (a wrong key finds nobody, silently).

    Ingest, ``forget`` and ``export`` call it: rows tokenized under another key would not join the
    lake's (one customer would become two) and an erasure would miss them.

    Ingest (and a key rotation) records ``tokenizer_key_id`` on every commit it publishes; the
    newest such commit within ``depth`` commits of ``ref`` must name this tokenizer's key chain. A
    lake with no such commit (nothing ingested yet) is accepted. A key with a version the lake does
    not use yet is refused until ``churnops privacy rotate-key`` re-tokenized the lake.
    """
    recorded = lake_key_id(repo, ref, depth)
    if recorded is None or recorded == tokenizer.key_id:
        return
    if tokenizer.previous is not None and recorded == tokenizer.previous.key_id:
        raise ConfigurationError(
            f"the tokenization key has a version the lake does not use yet ({tokenizer.key_id}; the lake is "
            f"{recorded}): run `churnops privacy rotate-key` first (docs/security.md, Rotating the key)"
        )
    raise ConfigurationError(
        f"the tokenization key in use ({tokenizer.key_id}) is not the one that tokenized the lake "
        f"({recorded}): load the lake's key versions (docs/security.md, Rotating the key)"
    )


def lake_key_id(repo: DataRepository, ref: str = DEFAULT_BRANCH, depth: int = 200) -> str | None:
    """The ``tokenizer_key_id`` of the newest commit within ``depth`` of ``ref`` that records one (ingest and
    rotation commits do); None when there is none (nothing ingested yet)."""
    for info in repo.log(ref, limit=depth):
        recorded = info.metadata.get(KEY_ID_METADATA)
        if recorded:
            return str(recorded)
    return None


def _erase_branch(
    repo: DataRepository,
    branch: str,
    tokens: AbstractSet[str],
    erasure_id: str,
    record: Callable[[BranchErasure], dict[str, bytes]] | None,
) -> BranchErasure:
    """One attempt: rewrite the subject's files on a work branch, commit, merge into ``branch``."""
    base = repo.head(branch)
    result = BranchErasure(branch=branch, base_commit=base)
    work = f"erasure-{erasure_id}-{branch}"[:120]
    repo.create_branch(work, source=base)
    try:
        files: dict[str, bytes] = {}
        deleted: list[str] = []
        ids: set[str] = set()
        for path in _parquet_paths(repo, base):
            scrubbed = scrub_parquet(repo.get_object(base, path), tokens, ids)
            if not scrubbed.rows_removed:
                continue
            ids |= scrubbed.ids
            table = _table_of(path)
            result.rows_removed[table] = result.rows_removed.get(table, 0) + scrubbed.rows_removed
            if scrubbed.content is not None:
                files[path] = scrubbed.content
            else:
                deleted.append(path)
        if not files and not deleted and record is None:
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


def forget(
    repo: DataRepository,
    tokenizer: Tokenizer,
    customer_id: str,
    branches: Sequence[str] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    grace: timedelta = timedelta(hours=72),
) -> ErasureReport:
    """Erase one data subject from the current state of ``branches`` (default: every branch), one commit each.

    The erasure record is written with the commit on ``main`` (always erased first); it is due
    for :func:`churnops.data.purge.purge` ``grace`` after now. A branch whose
    head moved while the erasure ran (for example, an ingest merged new rows of the subject) is
    erased again, up to three times. Raises :class:`ConfigurationError` for a key that did not
    tokenize the lake, :class:`VersioningError` when the lake keeps changing under the erasure.
    """
    check_key(repo, tokenizer)
    requested = now()
    report = ErasureReport(
        erasure_id=uuid.uuid4().hex[:16],
        requested_at=requested.isoformat(timespec="seconds"),
        subject_token=tokenizer.token(customer_id),
        key_id=tokenizer.key_id,
        earlier_tokens=tokenizer.token_versions(customer_id)[:-1],
        due_at=(requested + grace).isoformat(timespec="seconds"),
    )
    return erase_heads(repo, report, branches)


def erase_heads(
    repo: DataRepository, report: ErasureReport, branches: Sequence[str] | None = None, write_record: bool = True
) -> ErasureReport:
    """Remove ``report``'s subject from the heads of ``branches`` (default: every branch, ``main`` first).

    Appends what was done on each branch to ``report``; with ``write_record`` the erasure record
    is committed on ``main`` (also when ``main`` holds none of the subject's rows). A branch with
    staged, uncommitted writes (a job running on it) is left and reported as skipped; the purge
    covers it. Used by :func:`forget` and again by the purge.
    """
    names = list(branches) if branches is not None else repo.branches()
    names = sorted(names, key=lambda name: (name != DEFAULT_BRANCH, name))

    def record(done: BranchErasure) -> dict[str, bytes]:
        snapshot = asdict(report) | {"branches": [asdict(done)]}
        return {f"{ERASURES_PREFIX}/{report.erasure_id}.json": json.dumps(snapshot, indent=2).encode()}

    for index, branch in enumerate(names):
        if not repo.branch_exists(branch) or branch.startswith(f"erasure-{report.erasure_id}-"):
            continue
        for _ in range(MAX_ATTEMPTS):
            try:
                done = _erase_branch(
                    repo,
                    branch,
                    report.tokens,
                    report.erasure_id,
                    record if write_record and index == 0 and branch == DEFAULT_BRANCH else None,
                )
            except MergeConflict:
                continue  # the branch moved under us; start again from its new head
            except UncommittedChangesError:
                done = BranchErasure(branch=branch, base_commit=repo.head(branch), skipped="uncommitted changes")
            if done.commit_id is not None and done.base_commit not in repo.commit_info(done.commit_id).parents:
                # Something else was merged into the branch meanwhile and may hold the subject too.
                again = _erase_branch(repo, branch, report.tokens, report.erasure_id, None)
                done.commit_id = again.commit_id or done.commit_id
                for table, rows in again.rows_removed.items():
                    done.rows_removed[table] = done.rows_removed.get(table, 0) + rows
            break
        else:
            raise VersioningError(f"erasure {report.erasure_id}: branch {branch!r} kept changing; run it again")
        report.branches.append(done)
    log.info(
        "data subject erased",
        extra={
            "erasure_id": report.erasure_id,
            "rows_removed": report.rows_removed,
            "commits": [b.commit_id for b in report.branches],
        },
    )
    return report


def _jsonable(value: Any) -> Any:
    if hasattr(value, "isoformat"):  # datetime, date, time
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def export(
    repo: DataRepository,
    tokenizer: Tokenizer,
    customer_id: str,
    branches: Sequence[str] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> dict[str, Any]:
    """Everything the lake holds about one data subject at the heads of ``branches`` (default: every branch).

    ``tables`` maps each table (the first part of the path) to the subject's rows, each with the
    lake path it came from; ``commits`` names the commit of each branch that was read. A file that
    a later branch shares, unchanged, with an earlier one is listed once. The id index rows of the
    subject's events and records are included (table ``_index``).
    """
    check_key(repo, tokenizer)
    token = tokenizer.token(customer_id)
    tokens = set(tokenizer.token_versions(customer_id))
    document: dict[str, Any] = {
        "generated_at": now().isoformat(timespec="seconds"),
        "subject": {SUBJECT_COLUMN: token, "key_id": tokenizer.key_id},
        "commits": {},
        "tables": {},
    }
    names = sorted(branches if branches is not None else repo.branches(), key=lambda n: (n != DEFAULT_BRANCH, n))
    seen: set[tuple[str, str]] = set()  # (path, content digest): a branch started from another shares its files
    for branch in names:
        if not repo.branch_exists(branch):
            continue
        commit = repo.head(branch)
        document["commits"][branch] = commit
        ids: set[str] = set()
        for path in _parquet_paths(repo, commit):
            content = repo.get_object(commit, path)
            key = (path, hashlib.sha256(content).hexdigest())
            if key in seen:
                continue
            seen.add(key)
            table = pq.read_table(io.BytesIO(content))
            mask = subject_rows(table, tokens, ids)
            if not mask.any():
                continue
            ids |= scrub_parquet(content, tokens, ids).ids
            rows = table.filter(pa.array(mask)).to_pylist()
            document["tables"].setdefault(_table_of(path), []).extend(
                {"_lake_path": f"{branch}@{commit[:12]}/{path}", **{k: _jsonable(v) for k, v in row.items()}}
                for row in rows
            )
    return document
