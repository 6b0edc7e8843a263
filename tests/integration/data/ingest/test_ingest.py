"""Hourly ingest end to end on fake GCS and the embedded lake, with generated anomalies."""

from __future__ import annotations

import gzip
import io
import json
import threading
from datetime import timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest

from churnops.data.ingest import IngestReport, IngestRun
from churnops.data.privacy import Tokenizer
from churnops.errors import ConfigurationError
from churnops.local import datagen
from churnops.platform.alerts import AlertSink
from churnops.platform.buildinfo import git_sha, lock_sha256
from churnops.platform.logs import setup_logging
from tests.integration.data.ingest.conftest import NOW, START, IngestEnv
from tests.integration.data.ingest.lake_checks import assert_lake_matches_accounting, lake_texts
from tests.support.raw_objects import lines_of, truncated, with_lines


@pytest.fixture(scope="module", name="generated")
def fixture_generated() -> datagen.GeneratedData:
    """24 hours, 5% of objects anomalous (every kind at least once)."""
    return datagen.generate(hours=24, customers=200, start=START, seed=7, anomaly_rate=0.05)


def replay(env: IngestEnv, data: datagen.GeneratedData) -> dict[str, IngestReport]:
    """Upload objects in arrival order and ingest each hour right after its arrivals."""
    reports = {}
    by_arrival = datagen.objects_by_arrival(data.objects)
    for offset in range(24 + 3):
        hour = START + timedelta(hours=offset)
        env.upload(by_arrival.get(hour, []))
        reports[f"{hour:%Y-%m-%dT%H}"] = env.run(hour)
    return reports


def published(env: IngestEnv, kind: str, ref: str = "main") -> pd.DataFrame:
    """Every published row of one kind at ``ref``."""
    return env.repo.read_table(ref, f"{kind}/").to_pandas()


def raw_pii(data: datagen.GeneratedData) -> set[str]:
    """Every name, e-mail, phone, IP address and raw customer id in the generated raw objects."""
    values: set[str] = set()
    for obj in data.objects:
        try:
            if obj.name.endswith(".gz"):
                lines = lines_of(obj)
                frame = pd.DataFrame([json.loads(line) for line in lines if _is_json(line)])
            else:
                frame = pd.read_csv(io.BytesIO(obj.data), dtype=str, on_bad_lines="skip")
        except (OSError, EOFError, pd.errors.EmptyDataError, UnicodeDecodeError):
            continue
        for column in ("name", "email", "phone", "ip_address", "customer_id"):
            if column in frame:
                values.update(str(v) for v in frame[column].dropna() if len(str(v)) >= 6)
    return values


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def assert_anomalies_follow_policy(
    data: datagen.GeneratedData, by_name: dict, reports: dict[str, IngestReport], published_columns: set[str]
) -> None:
    """Every injected anomaly ends where the policy in docs/data-contract.md says."""
    kinds_seen = set()
    for anomaly in data.anomalies:
        obj = by_name[anomaly.object_name]
        kinds_seen.add(anomaly.kind)
        if anomaly.kind in ("corrupt_file", "empty_file"):
            assert obj.status == "quarantined" and obj.reason and obj.reason.startswith("unreadable")
        elif anomaly.kind == "missing_required_column":
            assert obj.status == "quarantined" and obj.rows_published == 0
            assert obj.rows_quarantined == obj.rows_in > 0
        elif anomaly.kind == "missing_optional_column":
            assert obj.status == "published"
            assert any(c["kind"] == "added_missing_optional_column" for c in obj.corrections)
        elif anomaly.kind == "extra_column":
            assert obj.unknown_columns and obj.status == "published"
            assert not set(obj.unknown_columns) & published_columns
        elif anomaly.kind == "wrong_type":
            assert any(c["kind"] == "coerced_dtype" for c in obj.corrections)
        elif anomaly.kind in ("uncoercible_value", "malformed_row", "out_of_range"):
            assert obj.rows_quarantined >= 1
        elif anomaly.kind == "duplicate_events":
            assert obj.duplicates_dropped >= 1
        elif anomaly.kind == "late_file":
            run_hour = next(h for h, r in reports.items() if any(o.name == obj.name for o in r.objects))
            assert run_hour > anomaly.object_name.split("dt=")[1][:10] + "T" + anomaly.object_name.split("hr=")[1][:2]
    assert kinds_seen == set(datagen.ANOMALY_KINDS)


def test_a_day_with_anomalies_is_accounted_for_and_lands_where_the_policy_says(
    ingest_env: IngestEnv, generated: datagen.GeneratedData
) -> None:
    log_stream = io.StringIO()
    setup_logging(ingest_env.settings, stream=log_stream)
    reports = replay(ingest_env, generated)

    # Accounting holds per run (checked inside the run too) and in total.
    objects = [obj for report in reports.values() for obj in report.objects]
    for report in reports.values():
        acc = report.accounting()
        assert acc["rows_in"] == acc["rows_published"] + acc["rows_quarantined"] + acc["duplicates_dropped"]
    by_name = {obj.name: obj for obj in objects}
    assert set(by_name) == {obj.name for obj in generated.objects}, "every object ingested exactly once"
    events = published(ingest_env, "events")
    subs = published(ingest_env, "subscriptions")
    published_rows = sum(o.rows_published for o in objects)
    assert len(events) + len(subs) == published_rows
    assert assert_lake_matches_accounting(ingest_env.repo) == published_rows
    assert events["event_id"].is_unique and subs["record_id"].is_unique

    assert_anomalies_follow_policy(generated, by_name, reports, set(events.columns) | set(subs.columns))

    # Alerts were raised for each anomaly class.
    alert_kinds = {alert["kind"] for report in reports.values() for alert in report.alerts}
    assert {
        "unreadable_object",
        "missing_required_column",
        "schema_drift",
        "quarantined_rows",
        "duplicates_dropped",
        "auto_corrected",
    } <= alert_kinds
    assert '"alert": true' in log_stream.getvalue()

    # No raw PII in any lake object, commit or captured log line.
    pii = raw_pii(generated)
    assert pii, "the generator must have produced PII to look for"
    lake = "\n".join(lake_texts(ingest_env.repo))  # objects, paths, commit messages and metadata
    logs = log_stream.getvalue()
    leaked = [value for value in pii if value in lake or value in logs]
    assert not leaked, f"{len(leaked)} raw PII values leaked"
    assert "CUST-" not in lake and "CUST-" not in logs

    # Re-running any hour publishes nothing and makes no commit.
    head = ingest_env.repo.head("main")
    for hour in (START, START + timedelta(hours=12), START + timedelta(hours=26)):
        again = ingest_env.run(hour)
        assert again.commit_id is None and not again.objects
    assert ingest_env.repo.head("main") == head


def test_commit_records_sources_accounting_and_versions(ingest_env: IngestEnv) -> None:
    data = datagen.generate(hours=1, customers=50, start=START, seed=1)
    ingest_env.upload(data.objects)
    report = ingest_env.run(START, lookback=0)
    assert report.commit_id is not None
    assert ingest_env.repo.head("main") == report.commit_id
    metadata = ingest_env.repo.commit_info(report.commit_id).metadata
    sources = json.loads(metadata["sources"])
    assert len(sources) == len(data.objects)
    assert all(s.startswith(f"gs://{ingest_env.settings.raw_bucket}/activity/") and "#" in s for s in sources)
    accounting = json.loads(metadata["accounting"])
    assert accounting["rows_in"] == report.rows_in > 0
    assert json.loads(metadata["schema_versions"]) == {"events": "events:v1", "subscriptions": "subscriptions:v1"}
    assert metadata["code_version"] == git_sha(ingest_env.settings)
    assert metadata["lock_sha256"] == lock_sha256()


def test_late_file_is_picked_up_by_the_next_run_within_the_lookback(ingest_env: IngestEnv) -> None:
    data = datagen.generate(hours=2, customers=50, start=START, seed=2)
    first_hour = [o for o in data.objects if o.hour == START]
    late = first_hour.pop()  # held back
    ingest_env.upload(first_hour)
    assert {o.name for o in ingest_env.run(START).objects} == {o.name for o in first_hour}
    ingest_env.upload([late, *[o for o in data.objects if o.hour == START + timedelta(hours=1)]])
    second = ingest_env.run(START + timedelta(hours=1), lookback=1)
    assert late.name in {o.name for o in second.objects}
    # Outside the lookback it would not be seen.
    extra = datagen.generate(hours=1, customers=10, start=START - timedelta(hours=5), seed=3).objects[:1]
    ingest_env.upload(extra)
    assert extra[0].name not in {o.name for o in ingest_env.run(START + timedelta(hours=1), lookback=1).objects}


def test_overwritten_object_supersedes_its_earlier_rows(ingest_env: IngestEnv) -> None:
    data = datagen.generate(hours=1, customers=60, start=START, seed=4)
    ingest_env.upload(data.objects)
    ingest_env.run(START, lookback=0)
    target = next(o for o in data.objects if o.name.endswith(".jsonl.gz"))
    before = published(ingest_env, "events")
    lines = lines_of(target)
    ingest_env.upload([with_lines(target, lines[: len(lines) // 2])])
    report = ingest_env.run(START, lookback=0)
    assert [o.name for o in report.objects] == [target.name]
    after = published(ingest_env, "events")
    assert after["event_id"].is_unique
    assert (after["_source_object"] == target.name).sum() == len(lines) // 2
    assert len(after) == len(before) - (len(lines) - len(lines) // 2)


def test_an_unreadable_new_generation_takes_the_rows_of_the_old_one_off_main(ingest_env: IngestEnv) -> None:
    data = datagen.generate(hours=1, customers=40, start=START, seed=12)
    ingest_env.upload(data.objects)
    ingest_env.run(START, lookback=0)
    target = next(o for o in data.objects if o.name.endswith(".jsonl.gz"))
    before = published(ingest_env, "events")
    old_rows = int((before["_source_object"] == target.name).sum())
    assert old_rows > 0

    ingest_env.upload([truncated(target)])  # a truncated gzip stream: unreadable
    report = ingest_env.run(START, lookback=0)
    assert [(o.name, o.status) for o in report.objects] == [(target.name, "quarantined")]
    after = published(ingest_env, "events")
    assert target.name not in set(after["_source_object"])  # the superseded rows are gone from main
    assert len(after) == len(before) - old_rows
    reasons = [
        json.loads(ingest_env.repo.get_object("main", path))["reason"]
        for path in ingest_env.repo.list_paths("main", "quarantine/events/")
        if path.endswith(".json")
    ]
    assert len(reasons) == 1 and reasons[0].startswith("unreadable object")


def test_a_merge_conflict_with_a_competing_run_is_retried_and_converges(
    ingest_env: IngestEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = datagen.generate(hours=1, customers=40, start=START, seed=13)
    ingest_env.upload(data.objects)
    target = next(o for o in data.objects if o.name.endswith(".jsonl.gz"))
    newer = with_lines(target, lines_of(target)[:5])
    slow = ingest_env.reopen()
    real_merge = slow.merge
    attempts: list[str] = []

    def merge_after_a_competitor(*args: object, **kwargs: object) -> str:
        if not attempts:
            # While this run was working, the object got a new generation and another run published it:
            # main now holds different content at the paths this run wrote.
            ingest_env.upload([newer])
            ingest_env.run(START, lookback=0, repo=ingest_env.reopen())
        attempts.append("merge")
        return real_merge(*args, **kwargs)

    monkeypatch.setattr(slow, "merge", merge_after_a_competitor)
    report = ingest_env.run(START, lookback=0, repo=slow)
    assert attempts == ["merge"]  # the first attempt conflicted; the retry found nothing new to publish
    assert report.commit_id is None and report.objects_skipped == len(data.objects)
    events = published(ingest_env, "events")
    assert (events["_source_object"] == target.name).sum() == 5  # the newer generation, not the older one
    assert events["event_id"].is_unique


class ProcessKilled(BaseException):
    """Stands for the process dying: not an error the run can handle, so it cleans nothing up."""


@pytest.mark.parametrize("dies_in", ["commit", "merge"])
def test_crash_leaves_main_unchanged_and_retry_converges(
    ingest_env: IngestEnv, dies_in: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = datagen.generate(hours=1, customers=60, start=START, seed=5, anomaly_rate=0.0)
    ingest_env.upload(data.objects)
    head = ingest_env.repo.head("main")

    def die(*_args: object, **_kwargs: object) -> None:
        raise ProcessKilled(f"killed at {dies_in}")

    dying = ingest_env.reopen()
    monkeypatch.setattr(dying, dies_in, die)  # this handle only: the process that dies
    with pytest.raises(ProcessKilled):
        ingest_env.run(START, lookback=0, repo=dying)
    assert ingest_env.repo.head("main") == head
    assert ingest_env.repo.list_paths("main", "events/") == []

    retry = ingest_env.run(START, lookback=0, repo=ingest_env.reopen())
    assert retry.commit_id is not None
    events = published(ingest_env, "events")
    assert events["event_id"].is_unique
    assert len(events) + len(published(ingest_env, "subscriptions")) == retry.accounting()["rows_published"]
    assert ingest_env.run(START, lookback=0).commit_id is None


def test_two_racing_runs_of_one_hour_publish_no_duplicates(ingest_env: IngestEnv) -> None:
    data = datagen.generate(hours=1, customers=80, start=START, seed=6)
    ingest_env.upload(data.objects)
    barrier = threading.Barrier(2)
    results: list[IngestReport | BaseException] = []

    def race() -> None:
        repo = ingest_env.reopen()
        barrier.wait()
        try:
            results.append(ingest_env.run(START, lookback=0, repo=repo))
        except BaseException as error:  # pylint: disable=broad-exception-caught  # reported below
            results.append(error)

    threads = [threading.Thread(target=race) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(isinstance(r, IngestReport) for r in results), results
    events = published(ingest_env, "events")
    subs = published(ingest_env, "subscriptions")
    assert events["event_id"].is_unique and subs["record_id"].is_unique
    expected = max(r.accounting()["rows_published"] for r in results if isinstance(r, IngestReport))
    assert len(events) + len(subs) == expected


def test_event_sent_again_in_a_later_hour_is_a_duplicate_not_a_quarantined_row(ingest_env: IngestEnv) -> None:
    data = datagen.generate(hours=2, customers=40, start=START, seed=8)
    first = [o for o in data.objects if o.hour == START]
    ingest_env.upload(first)
    ingest_env.run(START, lookback=0)
    web = next(o for o in first if "/web-" in o.name)
    old_line = lines_of(web)[0]
    later = next(o for o in data.objects if o.hour > START and "/web-" in o.name)
    lines = lines_of(later)
    resent = with_lines(later, [*lines, old_line])
    ingest_env.upload([resent])
    report = ingest_env.run(later.hour, lookback=1)
    obj = next(o for o in report.objects if o.name == later.name)
    assert obj.duplicates_dropped == 1
    assert obj.rows_quarantined == 0
    assert obj.rows_in == len(lines) + 1
    assert published(ingest_env, "events")["event_id"].is_unique


def test_quarantine_keeps_only_contract_columns_with_the_pii_policy_applied(ingest_env: IngestEnv) -> None:
    data = datagen.generate(hours=1, customers=20, start=START, seed=9)
    web = next(o for o in data.objects if "/web-" in o.name)
    rows = [json.loads(line) for line in lines_of(web)]
    rows[0].update(event_type="teleport", note="call jane.roe@example.com", ip_address="198.51.100.7")
    for row in rows[1:]:
        row["note"] = "ok"
    body = gzip.compress(("\n".join(json.dumps(r) for r in rows) + "\n{not json\n").encode())
    ingest_env.upload([datagen.RawObject(web.name, body, web.content_type, web.hour, web.arrival)])
    report = ingest_env.run(START, lookback=0)
    obj = report.objects[0]
    assert obj.rows_quarantined == 2 and obj.unknown_columns == [ingest_env.ingest().column_digest("note")]
    path = next(p for p in ingest_env.repo.list_paths("main", "quarantine/") if p.endswith(".parquet"))
    quarantined = pq.read_table(io.BytesIO(ingest_env.repo.get_object("main", path))).to_pandas()
    assert {"note", "ip_address", "customer_id", "_raw"}.isdisjoint(quarantined.columns)
    assert quarantined["customer_token"].dropna().str.startswith("tok_").all()
    assert {"_reason", "_line", "_source_object", "_source_generation"} <= set(quarantined.columns)
    text = quarantined.astype(str).to_csv()
    assert "jane.roe@example.com" not in text and "198.51.100.7" not in text and "{not json" not in text


def test_a_key_other_than_the_lakes_is_refused_and_nothing_is_published(ingest_env: IngestEnv) -> None:
    data = datagen.generate(hours=2, customers=20, start=START, seed=4)
    ingest_env.upload([o for o in data.objects if o.hour == START])
    ingest_env.run(START)
    head = ingest_env.repo.head("main")
    ingest_env.upload([o for o in data.objects if o.hour == START + timedelta(hours=1)])
    rotated = IngestRun(
        ingest_env.settings,
        ingest_env.repo,
        ingest_env.client,
        Tokenizer(b"r" * 32),
        AlertSink(ingest_env.settings),
        now=lambda: NOW,
    )
    with pytest.raises(ConfigurationError, match="not the one that tokenized the lake"):
        rotated.run(START + timedelta(hours=1), lookback=1)
    assert ingest_env.repo.head("main") == head
    assert [b for b in ingest_env.repo.branches() if b.startswith("ingest-")] == []
    assert ingest_env.run(START + timedelta(hours=1), lookback=1).commit_id  # the lake's key still ingests
