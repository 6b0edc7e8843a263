"""Erasure and export of one data subject, on both lake backends (embedded git, lakeFS through its API double)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from google.cloud import storage
from pydantic import SecretStr

from churnops.cli import main as cli
from churnops.cli import privacy as cli_privacy
from churnops.data.privacy import Tokenizer, apply_pii_policy
from churnops.data.purge import commit_map, due_erasures, purge_lake, record_purge
from churnops.data.subjects import ERASURES_PREFIX, export, forget
from churnops.data.versioning import DataRepository
from churnops.data.versioning.base import ObjectExpired
from churnops.data.versioning.embedded import EmbeddedRepository
from churnops.data.versioning.lakefs import LakeFSRepository
from churnops.errors import ConfigurationError
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket
from tests.integration.conftest import LAKE_BUCKET, double_repository
from tests.support.lakefs_double import LakeFSDouble

KEY = b"subject-rights-test-key-0123456789abcdef"
SUBJECT, OTHER, THIRD = "CUST-000042", "CUST-000007", "CUST-000099"
TOKENIZER = Tokenizer(KEY)


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, compression="zstd")
    return buffer.getvalue()


def _rows(repo: DataRepository, ref: str, prefix: str) -> pd.DataFrame:
    return repo.read_table(ref, prefix).to_pandas()


def publish(repo: DataRepository) -> None:
    """A lake in the published format: events, subscriptions, quarantine, predictions (main) and features."""
    events = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4"],
            "customer_id": [SUBJECT, OTHER, SUBJECT, THIRD],
            "event_type": ["login", "login", "logout", "login"],
            "email": ["a@example.com", "b@example.com", "a@example.com", "c@example.com"],
            "ip_address": ["203.0.113.5", "198.51.100.7", "203.0.113.5", "192.0.2.1"],
        }
    )
    subscriptions = pd.DataFrame(
        {
            "record_id": ["r1", "r2"],
            "customer_id": [SUBJECT, OTHER],
            "plan": ["pro", "basic"],
            "name": ["Ada L", "Bo K"],
            "phone": ["+44 20 7946 0000", "+1 202 555 0100"],
        }
    )
    quarantine = pd.DataFrame({"event_id": ["e9"], "customer_id": [SUBJECT], "_reason": ["event_time: null"]})
    main_files = {
        "events/dt=2026-11-01/hr=05/web-000.parquet": _parquet(apply_pii_policy(events.iloc[:2], "events", TOKENIZER)),
        "events/dt=2026-11-01/hr=06/web-000.parquet": _parquet(apply_pii_policy(events.iloc[2:], "events", TOKENIZER)),
        "subscriptions/dt=2026-11-01/hr=05/billing.parquet": _parquet(
            apply_pii_policy(subscriptions, "subscriptions", TOKENIZER)
        ),
        "quarantine/events/dt=2026-11-01/hr=06/web-001@7.parquet": _parquet(
            apply_pii_policy(quarantine.astype("string"), "events", TOKENIZER)
        ),
        "predictions/dt=2026-11-01/hr=06/predictions.parquet": _parquet(
            pd.DataFrame(
                {
                    "customer_token": [TOKENIZER.token(c) for c in (SUBJECT, OTHER, THIRD)],
                    "churn_probability": [0.9, 0.1, 0.4],
                }
            )
        ),
        "_ingest/sources/activity/events/web-000.jsonl.gz/1.json": b'{"rows_in": 2}',
    }
    branch = f"setup-{uuid.uuid4().hex[:8]}"
    repo.create_branch(branch, "main")
    repo.put_objects(branch, main_files)
    repo.commit(branch, "ingest", {"tokenizer_key_id": TOKENIZER.key_id})
    repo.merge(branch, "main", "publish", {"tokenizer_key_id": TOKENIZER.key_id})
    repo.delete_branch(branch)
    repo.create_branch("features", "main")
    matrix = pd.DataFrame(
        {
            "customer_token": [TOKENIZER.token(c) for c in (SUBJECT, OTHER, SUBJECT)],
            "cutoff": pd.to_datetime(["2026-11-01T05", "2026-11-01T05", "2026-11-01T06"], utc=True),
            "events_24h": [3, 1, 4],
        }
    )
    repo.put_objects(
        "features",
        {
            "features/abc/run1/train.parquet": _parquet(matrix),
            "features/abc/run1/test.parquet": _parquet(matrix.iloc[[0]]),
        },
    )
    repo.commit("features", "feature matrices", {"source_commit": "abc"})


@pytest.fixture(name="repo", params=["embedded", "lakefs-double"])
def fixture_repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataRepository]:
    """A published lake on each backend."""
    if request.param == "embedded":
        repo: DataRepository = EmbeddedRepository(tmp_path / "lake")
    else:
        double: LakeFSDouble = request.getfixturevalue("lakefs_double_gcs")
        repo = double_repository(double, f"subjects-{uuid.uuid4().hex[:10]}", f"gs://{LAKE_BUCKET}")
    repo.ensure()
    publish(repo)
    yield repo
    if request.param == "lakefs-double":
        assert not list(request.getfixturevalue("lakefs_double_gcs").validation_errors)


def test_forget_removes_the_subject_from_every_table_in_one_new_commit_per_branch(repo: DataRepository) -> None:
    before_main, before_features = repo.head("main"), repo.head("features")
    token, kept = TOKENIZER.token(SUBJECT), {TOKENIZER.token(OTHER), TOKENIZER.token(THIRD)}

    report = forget(repo, TOKENIZER, SUBJECT, ("main", "features", "no-such-branch"))

    assert [b.branch for b in report.branches] == ["main", "features"]
    main, features = report.branches
    assert main.commit_id == repo.head("main") != before_main
    assert features.commit_id == repo.head("features") != before_features
    assert main.rows_removed == {"events": 2, "subscriptions": 1, "quarantine": 1, "predictions": 1}
    # The features branch started from a data commit, so it holds that commit's tables too.
    assert features.rows_removed == {**main.rows_removed, "features": 3}
    assert main.files_deleted == 1 and features.files_deleted == 2  # files that held only the subject
    for ref, prefixes in (("main", ["events/", "subscriptions/", "predictions/"]), ("features", ["features/"])):
        for prefix in prefixes:
            tokens = set(_rows(repo, ref, prefix)["customer_token"])
            assert token not in tokens and tokens <= kept and tokens
    assert not [p for p in repo.list_paths("main", "quarantine/") if p.endswith(".parquet")]
    assert sorted(_rows(repo, "main", "events/")["event_id"]) == ["e2", "e4"]
    assert repo.get_object("main", "_ingest/sources/activity/events/web-000.jsonl.gz/1.json") == b'{"rows_in": 2}'
    # History keeps the rows until retention removes them; the new commit is what "latest" means.
    assert token in set(_rows(repo, before_main, "events/")["customer_token"])

    record = json.loads(repo.get_object("main", f"{ERASURES_PREFIX}/{report.erasure_id}.json"))
    assert record["subject_token"] == token and record["key_id"] == TOKENIZER.key_id
    assert SUBJECT not in json.dumps(record)
    assert json.loads(repo.commit_info("main").metadata["rows_removed"])["events"] == 2

    again = forget(repo, TOKENIZER, SUBJECT, ("main", "features"))
    assert again.rows_removed == 0 and again.branches[1].commit_id is None
    assert again.branches[0].commit_id == repo.head("main")  # the second request is recorded, nothing else changes
    assert repo.list_paths("main", f"{ERASURES_PREFIX}/") == sorted(
        f"{ERASURES_PREFIX}/{r.erasure_id}.json" for r in (report, again)
    )


def test_export_returns_every_row_held_and_nothing_after_erasure(repo: DataRepository) -> None:
    document = export(repo, TOKENIZER, SUBJECT, ("main", "features"))
    assert {table: len(rows) for table, rows in document["tables"].items()} == {
        "events": 2,
        "subscriptions": 1,
        "quarantine": 1,
        "predictions": 1,
        "features": 3,
    }
    assert {row["event_id"] for row in document["tables"]["events"]} == {"e1", "e3"}
    assert document["tables"]["subscriptions"][0]["plan"] == "pro"
    assert document["commits"] == {"main": repo.head("main"), "features": repo.head("features")}
    text = json.dumps(document)
    assert SUBJECT not in text and "a@example.com" not in text  # the lake never held them

    forget(repo, TOKENIZER, SUBJECT, ("main", "features"))
    assert not export(repo, TOKENIZER, SUBJECT, ("main", "features"))["tables"]
    assert len(export(repo, TOKENIZER, OTHER, ("main", "features"))["tables"]["events"]) == 1


def test_a_key_that_did_not_tokenize_the_lake_is_refused(repo: DataRepository) -> None:
    head = repo.head("main")
    with pytest.raises(ConfigurationError, match="not the one that tokenized the lake"):
        forget(repo, Tokenizer(b"another-key-0123456789abcdef0123456789"), SUBJECT)
    assert repo.head("main") == head


def test_privacy_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gcs_stack: Settings, gcs_client: storage.Client
) -> None:
    settings = gcs_stack.model_copy(
        update={
            "state_dir": tmp_path,
            "tokenization_key": SecretStr(KEY.decode()),
            "raw_bucket": f"subjects-{uuid.uuid4().hex[:8]}",
        }
    )
    ensure_bucket(gcs_client, settings.raw_bucket)
    raw = "activity/subscriptions/dt=2026-11-01/hr=03/crm.csv"
    gcs_client.bucket(settings.raw_bucket).blob(raw).upload_from_string(
        f"record_id,customer_id,name\nr1, {SUBJECT} ,A Person\nr2,{OTHER},B Person\n", content_type="text/csv"
    )
    repo = EmbeddedRepository(settings.embedded_repo_dir)
    repo.ensure()
    publish(repo)
    monkeypatch.setattr(cli_privacy, "get_settings", lambda: settings)
    monkeypatch.setattr(cli, "setup_logging", lambda _settings: None)
    runner = CliRunner()

    out = tmp_path / "export.json"
    result = runner.invoke(
        cli.main, ["privacy", "export", "--customer-id", "-", "--output", str(out)], input=f"{SUBJECT}\n"
    )
    assert result.exit_code == 0, result.output
    assert "events=2" in result.output and SUBJECT not in result.output
    assert out.stat().st_mode & 0o777 == 0o600
    assert len(json.loads(out.read_text())["tables"]["features"]) == 3
    assert [(line["object"], line["line"]) for line in json.loads(out.read_text())["raw_bucket"]] == [(raw, 2)]
    assert "raw bucket lines=1" in result.output

    result = runner.invoke(cli.main, ["privacy", "forget", "--customer-id", SUBJECT])
    assert result.exit_code == 0, result.output
    assert "13 rows removed" in result.output and SUBJECT not in result.output  # 5 on main, 8 on features
    result = runner.invoke(cli.main, ["privacy", "export", "--customer-id", SUBJECT])
    assert not json.loads(result.output)["tables"]


def _history_objects(repo: LakeFSRepository) -> dict[str, tuple[str, str]]:
    """Every parquet object some commit reaches: physical address -> (a commit, its path there)."""
    objects: dict[str, tuple[str, str]] = {}
    for commit in repo.reachable_commits():
        for path, address in repo.physical_addresses(commit).items():
            if path.endswith(".parquet"):
                objects.setdefault(address, (commit, path))
    return objects


def _tokens_at(repo: DataRepository, ref: str, path: str) -> str:
    """The parquet object at ``ref``/``path`` as CSV text (a token in it is a row of that customer)."""
    return pq.read_table(io.BytesIO(repo.get_object(ref, path))).to_pandas().to_csv()


def test_purge_completes_due_erasures_on_each_backend(repo: DataRepository, request: pytest.FixtureRequest) -> None:
    before = repo.head("main")
    start = datetime(2026, 11, 5, tzinfo=timezone.utc)
    forget(repo, TOKENIZER, SUBJECT, now=lambda: start, grace=timedelta(hours=24))
    assert due_erasures(repo, start + timedelta(hours=23)) == []  # not due within the grace period
    due = due_erasures(repo, start + timedelta(hours=24))
    assert len(due) == 1
    gcs: storage.Client | None = request.getfixturevalue("gcs_client") if isinstance(repo, LakeFSRepository) else None
    token = TOKENIZER.token(SUBJECT)
    # lakeFS: history's objects that hold the subject (after `forget`, no branch head does).
    holding = (
        {a: at for a, at in _history_objects(repo).items() if token in _tokens_at(repo, *at)}
        if isinstance(repo, LakeFSRepository)
        else {}
    )
    lake = purge_lake(repo, due, retention_days=7, client=gcs)
    record_purge(repo, due, start + timedelta(hours=24), {"lake_rows": lake.rows_removed}, lake)
    assert due_erasures(repo, start + timedelta(days=30)) == []  # done: marked purged
    if isinstance(repo, EmbeddedRepository):
        assert before in lake.commit_map and lake.rows_removed >= 5
        assert token not in set(_rows(repo, lake.commit_map[before], "events/")["customer_token"])
        assert commit_map(repo)[before] == lake.commit_map[before]
    else:  # lakeFS: history's objects holding the subject are deleted from the storage namespace
        assert isinstance(repo, LakeFSRepository) and gcs is not None
        assert repo.retention_days() == 7 and not lake.commit_map  # GC rules for the rest of history
        assert holding and lake.objects_deleted >= len(holding)  # and the id index's objects of their rows
        for commit, path in holding.values():
            with pytest.raises(ObjectExpired, match="410"):  # read at the old commit: expired, as after lakeFS's GC
                repo.get_object(commit, path)
        # What the storage namespace still holds (every byte lakeFS could serve) has no row of the subject.
        namespace = f"{repo.repository}/data/"
        for blob in gcs.list_blobs(LAKE_BUCKET, prefix=namespace):
            content = blob.download_as_bytes()
            if content[:4] == b"PAR1":
                assert token not in pq.read_table(io.BytesIO(content)).to_pandas().to_csv(), blob.name
            else:
                assert token.encode() not in content or b"erasure_id" in content, blob.name
    for branch in repo.branches():
        for prefix in ("events/", "subscriptions/"):
            assert token not in set(_rows(repo, branch, prefix)["customer_token"])
