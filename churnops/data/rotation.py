"""Tokenization key rotation: re-tokenize the whole lake under a new key version, one commit per branch.

A token under key versions ``k1 .. kn`` is the chain ``T_kn(... T_k1(id))``
(:mod:`churnops.data.privacy`), so a new version ``k(n+1)`` turns every token ``t`` of the lake
into ``T_k(n+1)(t)`` without any raw identifier. :func:`rotate` does that on the head of every
branch (``main`` first): every ``*_token`` column of every parquet table, ``_``-prefixed ones
included, and the erasure records (whose earlier tokens are kept, so the purge still finds the
subject in copies made before the rotation). Each branch gets one commit, whose metadata names the
new ``tokenizer_key_id``: from then on ingest, ``forget`` and ``export`` accept only the new key
versions, and before it only the old ones (:func:`churnops.data.subjects.check_key`).
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from churnops.data.privacy import TOKEN_PREFIX, Tokenizer
from churnops.data.subjects import ERASURES_PREFIX, KEY_ID_METADATA, PRIVACY_PREFIX, lake_key_id
from churnops.data.versioning import DataRepository, MergeConflict
from churnops.data.versioning.base import DEFAULT_BRANCH
from churnops.errors import ConfigurationError, VersioningError

log = logging.getLogger(__name__)

TOKEN_COLUMN_SUFFIX = "_token"  # what a tokenized column is called (churnops.data.privacy.tokenized_column)
MAX_ATTEMPTS = 3


@dataclass
class RotationReport:
    """What one rotation did (no identifier of any subject)."""

    rotation_id: str
    previous_key_id: str
    key_id: str
    commits: dict[str, str] = field(default_factory=dict)  # branch -> its rotation commit
    tokens_rewritten: int = 0
    files_rewritten: int = 0
    erasure_records: int = 0


def retokenize_parquet(content: bytes, tokenizer: Tokenizer) -> tuple[bytes, int]:
    """``content`` with every token of its ``*_token`` columns re-tokenized; (new content, tokens rewritten)."""
    table = pq.read_table(io.BytesIO(content))
    rewritten = 0
    for index, name in enumerate(table.column_names):
        column = table.column(index)
        if not name.endswith(TOKEN_COLUMN_SUFFIX):
            continue
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        values = column.to_pylist()
        distinct = {value for value in values if isinstance(value, str) and value.startswith(TOKEN_PREFIX)}
        if not distinct:
            continue
        mapping = {value: tokenizer.retokenize(value) for value in distinct}
        new = pa.array([mapping.get(value, value) if value is not None else None for value in values], column.type)
        rewritten += sum(1 for value in values if value in mapping)
        table = table.set_column(index, table.field(index), new)
    if not rewritten:
        return content, 0
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue(), rewritten


def _rotate_branch(repo: DataRepository, branch: str, tokenizer: Tokenizer, report: RotationReport) -> str:
    base = repo.head(branch)
    work = f"rotation-{report.rotation_id}-{branch}"[:120]
    repo.create_branch(work, source=base)
    try:
        files: dict[str, bytes] = {}
        tokens = 0
        for path in repo.list_paths(base):
            if path.endswith(".parquet") and not path.startswith(PRIVACY_PREFIX):
                content, rewritten = retokenize_parquet(repo.get_object(base, path), tokenizer)
                if rewritten:
                    files[path], tokens = content, tokens + rewritten
            elif path.startswith(f"{ERASURES_PREFIX}/") and path.endswith(".json"):
                record = json.loads(repo.get_object(base, path))
                if record.get("key_id") != report.previous_key_id:
                    continue
                record["earlier_tokens"] = [*record.get("earlier_tokens", []), record["subject_token"]]
                record["subject_token"] = tokenizer.retokenize(record["subject_token"])
                record["key_id"] = report.key_id
                files[path] = json.dumps(record, indent=2).encode()
                report.erasure_records += 1
        repo.put_objects(work, files)
        metadata = {
            KEY_ID_METADATA: report.key_id,
            "rotation_id": report.rotation_id,
            "previous_key_id": report.previous_key_id,
            "tokens_rewritten": str(tokens),
        }
        message = f"key rotation {report.rotation_id}: re-tokenize under {report.key_id}"
        repo.commit(work, message, metadata)
        commit = repo.merge(work, into=branch, message=f"publish {message}", metadata=metadata, expected_head=base)
    finally:
        if repo.branch_exists(work):
            repo.delete_branch(work)
    report.tokens_rewritten += tokens
    report.files_rewritten += sum(1 for path in files if path.endswith(".parquet"))
    return commit


def rotate(repo: DataRepository, tokenizer: Tokenizer) -> RotationReport:
    """Re-tokenize every branch head of the lake from ``tokenizer.previous``'s chain to ``tokenizer``'s.

    Refuses (:class:`ConfigurationError`) when ``tokenizer`` has a single key version, or when the
    lake is tokenized under neither chain. A branch already under the new chain is left as it is, so
    a rotation interrupted between branches completes when run again. A branch that moved during
    its rotation (an ingest published meanwhile) is rotated again from its new head, up to three times.
    """
    previous = tokenizer.previous
    if previous is None:
        raise ConfigurationError(
            "the tokenization key has one version: add a version to the secret before rotating (docs/security.md)"
        )
    report = RotationReport(rotation_id=uuid.uuid4().hex[:16], previous_key_id=previous.key_id, key_id=tokenizer.key_id)
    names = sorted(repo.branches(), key=lambda name: (name != DEFAULT_BRANCH, name))
    for branch in names:
        if branch.startswith(("rotation-", "erasure-")):
            continue
        recorded = lake_key_id(repo, branch)
        if recorded == tokenizer.key_id:
            continue  # rotated already
        if recorded not in (None, previous.key_id):
            raise ConfigurationError(
                f"branch {branch!r} is tokenized under {recorded}, neither the previous key versions "
                f"({previous.key_id}) nor the new ones ({tokenizer.key_id}); nothing was changed on it"
            )
        for _ in range(MAX_ATTEMPTS):
            try:
                report.commits[branch] = _rotate_branch(repo, branch, tokenizer, report)
                break
            except MergeConflict:
                continue
        else:
            raise VersioningError(f"key rotation: branch {branch!r} kept changing; run it again")
    log.info(
        "tokenization key rotated",
        extra={
            "rotation_id": report.rotation_id,
            "key_id": report.key_id,
            "branches": sorted(report.commits),
            "tokens_rewritten": report.tokens_rewritten,
        },
    )
    return report
