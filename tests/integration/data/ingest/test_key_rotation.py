"""Tokenization key rotation end to end, on both lake backends: ingest, rotate, ingest, forget.

The lake is ingested under key version 1; a version is added; ingest refuses the new chain until
``rotate`` re-tokenized the lake (one commit per branch); then ingest publishes under the new chain,
and ``forget`` removes the subject's rows from before and after the rotation: neither the token
under the old key nor the one under the new chain is left in any table of any branch head (and, on
the embedded backend after a purge with grace 0, in any commit).
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from churnops.cli import main as cli
from churnops.cli import privacy as cli_privacy
from churnops.data.ingest import IngestRun
from churnops.data.privacy import Tokenizer, lake_tokenizer
from churnops.data.purge import due_erasures, purge_lake
from churnops.data.rotation import rotate
from churnops.data.subjects import ERASURES_PREFIX, forget, lake_key_id
from churnops.data.versioning import DataRepository
from churnops.data.versioning.embedded import EmbeddedRepository
from churnops.errors import ConfigurationError
from churnops.local import datagen
from churnops.platform.alerts import AlertSink
from churnops.platform.secrets import tokenization_key
from churnops.platform.settings import Settings
from tests.integration.data.ingest.conftest import NOW, START, IngestEnv

OLD_KEY = b"rotation-test-key-version-1-0123456789"
NEW_KEY = b"rotation-test-key-version-2-0123456789"
OLD = Tokenizer(OLD_KEY)
NEW = Tokenizer(NEW_KEY, [OLD_KEY])


def _run(env: IngestEnv, tokenizer: Tokenizer, hour_offset: int) -> None:
    IngestRun(env.settings, env.repo, env.client, tokenizer, AlertSink(env.settings), now=lambda: NOW).run(
        START + timedelta(hours=hour_offset), 3
    )


def _tokens(repo: DataRepository, ref: str) -> list[str]:
    """Every value of every ``*_token`` column of every parquet table at ``ref`` (``_``-prefixed included)."""
    found: list[str] = []
    for path in repo.list_paths(ref):
        if not path.endswith(".parquet"):
            continue
        table = pq.read_table(io.BytesIO(repo.get_object(ref, path)))
        for name in table.column_names:
            if name.endswith("_token"):
                found.extend(str(value) for value in table.column(name).to_pylist() if value is not None)
    return found


def test_rotate_ingest_forget_leaves_the_subject_under_neither_key(ingest_env: IngestEnv) -> None:
    repo = ingest_env.repo
    data = datagen.generate(hours=6, customers=10, start=START, seed=11)
    early = [obj for obj in data.objects if obj.hour < START + timedelta(hours=3)]
    late = [obj for obj in data.objects if obj.hour >= START + timedelta(hours=3)]
    ids = sorted(data.customers["customer_id"])
    subject, erased_before = ids[0], ids[1]

    ingest_env.upload(early)
    _run(ingest_env, OLD, 2)
    assert OLD.token(subject) in _tokens(repo, "main")
    repo.create_branch("features", source="main")
    pending = forget(repo, OLD, erased_before, grace=timedelta(hours=72))  # an erasure pending across the rotation

    # A key with a version the lake does not use yet: refused, nothing published.
    ingest_env.upload(late)
    head = repo.head("main")
    with pytest.raises(ConfigurationError, match="rotate-key"):
        _run(ingest_env, NEW, 5)
    assert repo.head("main") == head

    report = rotate(repo, NEW)
    assert set(report.commits) == {"main", "features"} and report.erasure_records == 1
    assert lake_key_id(repo, "main") == lake_key_id(repo, "features") == NEW.key_id
    for branch in ("main", "features"):
        tokens = set(_tokens(repo, branch))
        assert NEW.token(subject) in tokens and OLD.token(subject) not in tokens
        assert tokens <= {NEW.token(i) for i in ids}  # every token of the lake is under the new chain
    record = json.loads(repo.get_object("main", f"{ERASURES_PREFIX}/{pending.erasure_id}.json"))
    assert (record["key_id"], record["subject_token"]) == (NEW.key_id, NEW.token(erased_before))
    assert record["earlier_tokens"] == [OLD.token(erased_before)]
    assert not rotate(repo, NEW).commits  # done already: nothing to do
    with pytest.raises(ConfigurationError, match="not the one that tokenized the lake"):
        _run(ingest_env, OLD, 5)  # the old chain alone no longer matches the lake

    rows_before = _tokens(repo, "main").count(NEW.token(subject))
    _run(ingest_env, NEW, 5)
    rows_after = _tokens(repo, "main").count(NEW.token(subject))
    assert rows_after > rows_before  # the new hours were published under the new chain
    assert NEW.token(erased_before) not in _tokens(repo, "main")  # erased stays erased across the rotation

    erasure = forget(repo, NEW, subject, grace=timedelta(0))
    assert erasure.branches[0].rows_removed and sum(erasure.branches[0].rows_removed.values()) >= rows_after
    for branch in repo.branches():
        tokens = set(_tokens(repo, branch))
        assert not tokens & {OLD.token(subject), NEW.token(subject)}, branch

    if isinstance(repo, EmbeddedRepository):  # history: rewritten by the purge on this backend
        due = [r for r in due_erasures(repo, NOW + timedelta(days=400)) if r["erasure_id"] == erasure.erasure_id]
        assert due[0]["earlier_tokens"] == [OLD.token(subject)]
        purge_lake(repo, due, retention_days=7)
        for info in repo.log("main", limit=500):
            assert not set(_tokens(repo, info.id)) & {OLD.token(subject), NEW.token(subject)}, info.id


def test_rotate_key_command_adds_a_local_version_and_re_tokenizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gcs_stack: Settings
) -> None:
    """``churnops privacy rotate-key`` locally: a new key version, the lake under its chain, forget still works."""
    settings = gcs_stack.model_copy(update={"state_dir": tmp_path, "tokenization_key": None})
    old = Tokenizer(tokenization_key(settings))  # version 1: the local key file, created on first use
    repo = EmbeddedRepository(settings.embedded_repo_dir)
    repo.ensure()
    frame = pd.DataFrame({"event_id": ["e1", "e2"], "customer_token": [old.token("CUST-1"), old.token("CUST-2")]})
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    repo.put_objects("main", {"events/dt=2026-11-01/hr=00/web-000.parquet": buffer.getvalue()})
    repo.commit("main", "ingest", {"tokenizer_key_id": old.key_id})
    monkeypatch.setattr(cli_privacy, "get_settings", lambda: settings)
    monkeypatch.setattr(cli, "setup_logging", lambda _settings: None)
    runner = CliRunner()

    result = runner.invoke(cli.main, ["privacy", "rotate-key"])
    assert result.exit_code == 0, result.output
    new = lake_tokenizer(settings)
    assert "added version 2" in result.output and f"{old.key_id} -> {new.key_id}" in result.output
    assert "2 tokens in 1 files" in result.output
    assert (tmp_path / "secrets" / f"{settings.tokenization_key_secret}.v2").stat().st_mode & 0o777 == 0o600
    assert sorted(_tokens(repo, "main")) == sorted([new.token("CUST-1"), new.token("CUST-2")])
    assert lake_key_id(repo) == new.key_id

    result = runner.invoke(cli.main, ["privacy", "forget", "--customer-id", "CUST-1"])
    assert result.exit_code == 0 and "1 rows removed" in result.output, result.output
    assert _tokens(repo, "main") == [new.token("CUST-2")]
