"""Completing erasures: every copy of an erased subject's data outside the lake's branch heads.

:func:`churnops.data.subjects.forget` removes a subject from the head of every branch at once and
records the erasure, due ``CHURNOPS_ERASURE_GRACE_HOURS`` later. Once due, the purge removes the
rest (``docs/security.md``, "Completing an erasure"):

- the lake's history: on the embedded backend every commit is rewritten without the subject's rows
  and every object no ref reaches is deleted (:meth:`EmbeddedRepository.rewrite_history`); on lakeFS
  the branch heads are erased again and every older object holding the subject is deleted from the
  storage namespace (:func:`sweep_lakefs_history`), and the repository's garbage-collection rules
  are set for the rest of history;
- the raw bucket: each object holding the subject is rewritten without the subject's lines (or
  deleted when it cannot be parsed), and its earlier generations are deleted;
- the pipeline root: parquet files are rewritten without the subject's rows, other files holding
  the token are deleted.

A raw line is the subject's when any of its fields (the text between JSON or CSV punctuation),
stripped, tokenizes to the subject's token: this finds the id in well-formed and malformed lines
alike, without the raw id ever being known to the purge.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from google.api_core.exceptions import NotFound
from google.cloud import storage

from churnops.data.id_index import INDEX_PREFIX
from churnops.data.privacy import Tokenizer
from churnops.data.subjects import (
    ERASURES_PREFIX,
    PRIVACY_PREFIX,
    ErasureReport,
    erase_heads,
    erasure_records,
    record_tokens,
    scrub_parquet,
)
from churnops.data.versioning import DataRepository
from churnops.data.versioning.base import DEFAULT_BRANCH
from churnops.data.versioning.lakefs import LakeFSRepository
from churnops.errors import ConfigurationError
from churnops.platform.storage import storage_errors

log = logging.getLogger(__name__)

PURGES_PREFIX = "_privacy/purges"
RAW_PREFIX = "activity/"
_FIELD_SEPARATORS = re.compile(r'[",:{}\[\]\t;\r\n]+')
_MAX_FIELD = 256  # longer fields are not identifiers
_PARQUET_MAGIC = b"PAR1"


def due_erasures(repo: DataRepository, now: datetime) -> list[dict[str, Any]]:
    """The erasure records on ``main`` whose grace period has passed and that are not purged yet."""
    return [
        record
        for record in erasure_records(repo)
        if not record.get("purged_at") and datetime.fromisoformat(record.get("due_at") or record["requested_at"]) <= now
    ]


# ------------------------------------------------------------------------------------- the lake


@dataclass
class LakePurge:
    """What the purge did to the lake."""

    backend: str
    commits_rewritten: int = 0
    rows_removed: int = 0
    retention_days: int | None = None  # lakeFS: the GC retention set
    commit_map: dict[str, str] = field(default_factory=dict)  # embedded: old -> new commit id
    objects_deleted: int = 0  # lakeFS: history's objects deleted from the storage namespace


def purge_lake(
    repo: DataRepository, records: list[dict[str, Any]], retention_days: int, client: storage.Client | None = None
) -> LakePurge:
    """Remove the subjects of ``records`` from the lake's history: rewritten (embedded), or on lakeFS erased at
    the heads and every older object holding them deleted from the storage namespace (through ``client``)."""
    tokens = set().union(*(record_tokens(record) for record in records))
    if isinstance(repo, LakeFSRepository):
        return _purge_lakefs(repo, records, tokens, retention_days, client)
    rewrite_history = getattr(repo, "rewrite_history", None)
    if rewrite_history is None:
        raise ConfigurationError(f"the purge cannot remove history from a {type(repo).__name__}")
    result = LakePurge(backend="embedded")
    ids: set[str] = set()

    def rewrite(path: str, content: bytes) -> bytes | None:
        if path.startswith(PRIVACY_PREFIX) or not path.endswith(".parquet"):
            return content
        scrubbed = scrub_parquet(content, tokens, ids)
        ids.update(scrubbed.ids)
        result.rows_removed += scrubbed.rows_removed
        return scrubbed.content

    result.commit_map = rewrite_history(rewrite)
    result.commits_rewritten = len(result.commit_map)
    return result


def _purge_lakefs(
    repo: LakeFSRepository,
    records: list[dict[str, Any]],
    tokens: set[str],
    retention_days: int,
    client: storage.Client | None,
) -> LakePurge:
    result = LakePurge(backend=type(repo).__name__, retention_days=retention_days)
    repo.set_retention(retention_days)  # what else history holds goes with lakeFS's GC
    for record in records:
        report = ErasureReport(
            erasure_id=record["erasure_id"],
            requested_at=record["requested_at"],
            subject_token=record["subject_token"],
            key_id=record["key_id"],
            earlier_tokens=record.get("earlier_tokens", []),
        )
        result.rows_removed += erase_heads(repo, report, write_record=False).rows_removed
    if client is None:
        raise ConfigurationError("the purge needs a storage client to delete history's copies on lakeFS")
    result.objects_deleted = sweep_lakefs_history(repo, client, tokens)
    return result


def sweep_lakefs_history(repo: LakeFSRepository, client: storage.Client, tokens: set[str]) -> int:
    """Delete from the storage namespace every object of the lake's history that holds one of ``tokens``; how many.

    Run after the heads are erased. Every parquet object some commit stored (found by diffing each
    commit with its parent, so each object is listed once however many commits reference it) and
    no branch head references is read from the storage namespace; one that holds the subjects'
    rows (or, for the id index, their rows' ids) is deleted, as lakeFS's garbage collection deletes
    an expired object. A read of it at an old commit then answers 410 "object expired". Objects at
    a branch head are never touched, and an object already deleted (by an earlier purge or by GC)
    is skipped. The cost is one diff per commit and one read of every parquet object history holds.
    """
    at_heads = {address for branch in repo.branches() for address in repo.physical_addresses(branch).values()}
    candidates: dict[str, str] = {}  # address -> path
    for commit, parents in repo.reachable_commits().items():
        if len(parents) > 1:
            continue  # a merge references its sources' objects and stores none of its own
        if parents:  # what the commit stored: the objects it added or changed
            introduced = {path: "" for path in repo.changed_paths(parents[0], commit) if _may_hold_rows(path)}
        else:
            introduced = {path: a for path, a in repo.physical_addresses(commit).items() if _may_hold_rows(path)}
        for path, address in introduced.items():
            address = address or repo.physical_address(commit, path)
            if address not in at_heads:
                candidates.setdefault(address, path)
    ids: set[str] = set()
    deleted = 0
    # The id index last: its rows are found by the ids of the subjects' rows in the other tables.
    for address, path in sorted(candidates.items(), key=lambda item: (item[1].startswith(INDEX_PREFIX), item[1])):
        bucket, name = _gcs_address(address)
        blob = client.bucket(bucket).blob(name)
        with storage_errors(f"reading {address}"):
            try:
                content = blob.download_as_bytes()
            except NotFound:  # deleted by an earlier purge or by GC
                continue
        scrubbed = scrub_parquet(content, tokens, ids)
        if scrubbed.rows_removed:
            ids.update(scrubbed.ids)
            with storage_errors(f"deleting {address}"):
                blob.delete()
            deleted += 1
            log.info("history object deleted", extra={"path": path, "rows": scrubbed.rows_removed})
    return deleted


def _may_hold_rows(path: str) -> bool:
    """A lake path whose object may hold a subject's rows: a parquet table (the erasure records are kept)."""
    return path.endswith(".parquet") and not path.startswith(PRIVACY_PREFIX)


def _gcs_address(address: str) -> tuple[str, str]:
    """(bucket, object name) of a ``gs://`` physical address."""
    if not address.startswith("gs://"):
        raise ConfigurationError(f"the purge deletes history from a gs:// storage namespace only, not {address!r}")
    bucket, _, name = address.removeprefix("gs://").partition("/")
    return bucket, name


def record_purge(
    repo: DataRepository, records: list[dict[str, Any]], now: datetime, stores: dict[str, int], lake: LakePurge
) -> str:
    """Mark ``records`` purged on ``main`` (with what was removed per store) and keep the commit map; one commit."""
    purge_id = uuid.uuid4().hex[:16]
    files: dict[str, bytes] = {}
    for record in records:
        done = {**record, "purged_at": now.isoformat(timespec="seconds"), "purge_id": purge_id, "purged": stores}
        files[f"{ERASURES_PREFIX}/{record['erasure_id']}.json"] = json.dumps(done, indent=2).encode()
    files[f"{PURGES_PREFIX}/{purge_id}.json"] = json.dumps(
        {
            "purge_id": purge_id,
            "purged_at": now.isoformat(timespec="seconds"),
            "erasures": [record["erasure_id"] for record in records],
            "lake": asdict(lake),
        },
        indent=2,
        sort_keys=True,
    ).encode()
    branch = f"purge-{purge_id}"
    repo.create_branch(branch, source=DEFAULT_BRANCH)
    try:
        repo.put_objects(branch, files)
        metadata = {"purge_id": purge_id, "erasures": json.dumps([r["erasure_id"] for r in records])}
        repo.commit(branch, f"purge {purge_id}: {len(records)} erasure(s) completed", metadata)
        return repo.merge(branch, into=DEFAULT_BRANCH, message=f"publish purge {purge_id}", metadata=metadata)
    finally:
        if repo.branch_exists(branch):
            repo.delete_branch(branch)


def commit_map(repo: DataRepository) -> dict[str, str]:
    """Every commit id rewritten by a purge, old -> newest (followed through later purges)."""
    mapping: dict[str, str] = {}
    for path in repo.list_paths(DEFAULT_BRANCH, f"{PURGES_PREFIX}/"):
        mapping.update(json.loads(repo.get_object(DEFAULT_BRANCH, path)).get("lake", {}).get("commit_map", {}))
    for old, new in list(mapping.items()):
        seen = {old}
        while new in mapping and new not in seen:
            seen.add(new)
            new = mapping[new]
        mapping[old] = new
    return mapping


# -------------------------------------------------------------------------------- raw text lines


class LineMatcher:
    """Finds the lines of raw text that carry one of ``tokens``' identifiers (any field, stripped)."""

    def __init__(self, tokenizer: Tokenizer, tokens: Iterable[str]) -> None:
        self.tokenizer = tokenizer
        self.tokens = set(tokens)
        self._seen: dict[str, bool] = {}

    def field_matches(self, value: str) -> bool:
        """Whether one field, stripped, tokenizes to one of the tokens."""
        value = value.strip()
        if not value or len(value) > _MAX_FIELD:
            return False
        if value not in self._seen:
            self._seen[value] = self.tokenizer.token(value) in self.tokens
        return self._seen[value]

    def matches(self, line: str) -> bool:
        """Whether any field of ``line`` is one of the subjects' identifiers."""
        return any(self.field_matches(part) for part in _FIELD_SEPARATORS.split(line))


@dataclass
class _Decoded:
    lines: list[str]
    intact: bool  # False: only a readable prefix could be decoded (a broken gzip stream)


def _gunzip(data: bytes) -> tuple[bytes, bool]:
    try:
        return gzip.decompress(data), True
    except (OSError, EOFError, zlib.error):
        decoder = zlib.decompressobj(wbits=31)
        try:
            return decoder.decompress(data), False
        except zlib.error:
            return data, False


def _decode(name: str, data: bytes, content_encoding: str | None) -> _Decoded:
    intact = True
    if (content_encoding or "").strip().lower() == "gzip":
        data, intact = _gunzip(data)
    if name.endswith(".gz") and intact:
        data, intact = _gunzip(data)
    return _Decoded(data.decode("utf-8", "replace").splitlines(keepends=True), intact)


def _encode(name: str, text: str, content_encoding: str | None) -> bytes:
    data = text.encode("utf-8")
    if name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    if (content_encoding or "").strip().lower() == "gzip":
        data = gzip.compress(data, mtime=0)
    return data


@dataclass
class RawPurge:
    """What the purge did to the raw bucket."""

    objects_rewritten: int = 0
    objects_deleted: int = 0
    lines_removed: int = 0
    generations_deleted: int = 0


def _live_blobs(client: storage.Client, bucket: str, prefix: str) -> Iterator[storage.Blob]:
    with storage_errors(f"listing gs://{bucket}/{prefix}"):
        blobs = list(client.list_blobs(bucket, prefix=prefix))
    yield from blobs


def _delete_older_generations(client: storage.Client, bucket: str, name: str, keep: int | None) -> int:
    """Delete every generation of ``name`` but ``keep`` (noncurrent versions of a versioned bucket)."""
    deleted = 0
    with storage_errors(f"listing the generations of gs://{bucket}/{name}"):
        versions = [blob for blob in client.list_blobs(bucket, prefix=name, versions=True) if blob.name == name]
    for blob in versions:
        if keep is None or int(blob.generation) != keep:
            with storage_errors(f"deleting gs://{bucket}/{name}#{blob.generation}"):
                client.bucket(bucket).blob(name, generation=blob.generation).delete()
            deleted += 1
    return deleted


def purge_raw_bucket(client: storage.Client, bucket: str, matcher: LineMatcher) -> RawPurge:
    """Remove the subjects' lines from every raw object (all generations); see the module docstring."""
    result = RawPurge()
    for blob in _live_blobs(client, bucket, RAW_PREFIX):
        with storage_errors(f"reading gs://{bucket}/{blob.name}"):
            data = blob.download_as_bytes(raw_download=True)
        decoded = _decode(blob.name, data, blob.content_encoding)
        kept = [line for line in decoded.lines if not matcher.matches(line)]
        removed = len(decoded.lines) - len(kept)
        if not removed:
            continue
        result.lines_removed += removed
        if not decoded.intact or not kept:
            result.generations_deleted += _delete_older_generations(client, bucket, blob.name, None)
            result.objects_deleted += 1
            continue
        new = client.bucket(bucket).blob(blob.name)
        new.content_encoding = blob.content_encoding
        with storage_errors(f"writing gs://{bucket}/{blob.name}"):
            new.upload_from_string(
                _encode(blob.name, "".join(kept), blob.content_encoding), content_type=blob.content_type
            )
        result.objects_rewritten += 1
        result.generations_deleted += _delete_older_generations(client, bucket, blob.name, int(new.generation))
    return result


def export_raw(client: storage.Client, bucket: str, matcher: LineMatcher) -> list[dict[str, Any]]:
    """The subject's lines in the raw bucket: object, generation, line number and text of each."""
    found: list[dict[str, Any]] = []
    with storage_errors(f"listing gs://{bucket}/{RAW_PREFIX}"):
        blobs = list(client.list_blobs(bucket, prefix=RAW_PREFIX, versions=True))
    for blob in blobs:
        with storage_errors(f"reading gs://{bucket}/{blob.name}"):
            data = blob.download_as_bytes(raw_download=True)
        for number, line in enumerate(_decode(blob.name, data, blob.content_encoding).lines, start=1):
            if matcher.matches(line):
                found.append(
                    {
                        "object": blob.name,
                        "generation": int(blob.generation),
                        "line": number,
                        "text": line.rstrip("\r\n"),
                    }
                )
    return found


# -------------------------------------------------------------------------------- pipeline root


@dataclass
class FilesPurge:
    """What the purge did to a store of files (the pipeline root)."""

    files_rewritten: int = 0
    files_deleted: int = 0
    rows_removed: int = 0


def scrub_file(content: bytes, tokens: set[str]) -> tuple[bytes | None, int]:
    """A stored file without the subjects' data: parquet rewritten without their rows (None when
    none is left); any other file that holds a token is None (deleted). Returns (content, rows removed)."""
    if content[:4] == _PARQUET_MAGIC and content[-4:] == _PARQUET_MAGIC:
        scrubbed = scrub_parquet(content, tokens)
        return scrubbed.content, scrubbed.rows_removed
    if any(token.encode("ascii") in content for token in tokens):
        return None, 0
    return content, 0


def purge_local_files(root: Path, tokens: set[str]) -> FilesPurge:
    """Scrub every file under ``root`` (a local pipeline root) with :func:`scrub_file`."""
    result = FilesPurge()
    if not root.is_dir():
        return result
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        content = path.read_bytes()
        new, rows = scrub_file(content, tokens)
        result.rows_removed += rows
        if new is None:
            path.unlink()
            result.files_deleted += 1
        elif new != content:
            path.write_bytes(new)
            result.files_rewritten += 1
    return result


def purge_gcs_files(client: storage.Client, url: str, tokens: set[str]) -> FilesPurge:
    """Scrub every object under ``url`` (``gs://bucket/prefix``, the pipeline root on GKE), all generations."""
    bucket, _, prefix = url.removeprefix("gs://").partition("/")
    result = FilesPurge()
    for blob in _live_blobs(client, bucket, prefix):
        with storage_errors(f"reading gs://{bucket}/{blob.name}"):
            content = blob.download_as_bytes(raw_download=True)
        new, rows = scrub_file(content, tokens)
        result.rows_removed += rows
        if new is None:
            _delete_older_generations(client, bucket, blob.name, None)
            result.files_deleted += 1
        elif new != content:
            fresh = client.bucket(bucket).blob(blob.name)
            with storage_errors(f"writing gs://{bucket}/{blob.name}"):
                fresh.upload_from_string(new, content_type=blob.content_type)
            _delete_older_generations(client, bucket, blob.name, int(fresh.generation))
            result.files_rewritten += 1
    return result
