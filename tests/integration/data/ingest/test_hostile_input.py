"""Ingest under input a hostile or careless producer sends: nothing is lost, nothing leaks, nothing blocks.

Every test runs on both lake backends (embedded git, lakeFS through the spec-validating double)
and checks the rows the lake holds after each run against the accounting, not only the report.
"""

from __future__ import annotations

import gzip
import io
import json
import threading
from datetime import timedelta
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnops.data.id_index import INDEX_PREFIX
from churnops.data.ingest_steps import HEAD_PATH, IngestReport
from churnops.data.versioning import DataRepository
from churnops.local import datagen
from churnops.platform.logs import setup_logging
from tests.integration.data.ingest.conftest import START, IngestEnv
from tests.integration.data.ingest.lake_checks import (
    BeforeFirstMerge,
    assert_lake_matches_accounting,
    lake_texts,
    latest_markers,
    published_rows,
)

HOUR_PREFIX = f"activity/events/dt={START:%Y-%m-%d}/hr={START:%H}/"
BILLING_PREFIX = f"activity/subscriptions/dt={START:%Y-%m-%d}/hr={START:%H}/"


@pytest.fixture(scope="module", name="hour_data")
def fixture_hour_data() -> datagen.GeneratedData:
    """Two clean hours of 40 customers."""
    return datagen.generate(hours=2, customers=40, start=START, seed=21)


def obj(name: str, data: bytes, like: datagen.RawObject) -> datagen.RawObject:
    """A raw object named ``name`` holding ``data``, arriving like ``like``."""
    return datagen.RawObject(name, data, like.content_type, like.hour, like.arrival)


def lines_of(raw: datagen.RawObject) -> list[dict[str, Any]]:
    """The JSON records of an events object."""
    return [json.loads(line) for line in gzip.decompress(raw.data).decode().splitlines()]


def jsonl(records: list[dict[str, Any]]) -> bytes:
    """An events object's bytes."""
    return gzip.compress(("\n".join(json.dumps(r) for r in records) + "\n").encode())


def first(data: datagen.GeneratedData, part: str, hour_offset: int = 0) -> datagen.RawObject:
    """The object of one producer (``web-``, ``app-``, ``billing-``) in one hour."""
    hour = START + timedelta(hours=hour_offset)
    return next(o for o in data.objects if o.hour == hour and f"/{part}" in o.name)


# -- partition keys ---------------------------------------------------------------------------------


def test_objects_sharing_a_stem_never_share_a_partition(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData
) -> None:
    web = first(hour_data, "web-")
    records = lines_of(web)
    third = len(records) // 3
    copy = [{**r, "event_id": r["event_id"] + "-copy"} for r in records[:third]]
    late = [{**r, "event_id": r["event_id"] + "-late"} for r in records[third : 2 * third]]
    ingest_env.upload([web])
    ingest_env.run(START, lookback=0)
    assert_lake_matches_accounting(ingest_env.repo)
    ingest_env.upload(
        [
            obj(HOUR_PREFIX + "web-000.copy.jsonl.gz", jsonl(copy), web),
            obj(HOUR_PREFIX + "web-000.late.jsonl.gz", jsonl(late), web),
        ]
    )
    report = ingest_env.run(START, lookback=0)

    assert sorted(o.rows_published for o in report.objects) == sorted([len(copy), len(late)])
    partitions = ingest_env.repo.list_paths("main", f"events/dt={START:%Y-%m-%d}/hr={START:%H}/")
    assert len(partitions) == 3
    events = published_rows(ingest_env.repo, "events")
    assert len(events) == len(records) + len(copy) + len(late)
    assert assert_lake_matches_accounting(ingest_env.repo) == len(events)


def test_a_new_generation_replaces_a_partition_of_the_old_naming(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData
) -> None:
    """A lake written when partitions were named after the stem: the new generation's rows replace them."""
    web = first(hour_data, "web-")
    ingest_env.upload([web])
    ingest_env.run(START, lookback=0)
    repo = ingest_env.repo
    new_path = next(p for p in repo.list_paths("main", "events/"))
    old_path = new_path.replace("web-000.jsonl.gz.parquet", "web-000.parquet")
    marker_path = next(p for p in repo.list_paths("main", "_ingest/sources/") if "web-000" in p)
    marker = json.loads(repo.get_object("main", marker_path))
    legacy = "legacy"
    repo.create_branch(legacy)
    # The id index of that time: 16 hash shards of every id (a shard holding the partition's ids).
    ids = pq.read_table(io.BytesIO(repo.get_object("main", new_path)), columns=["event_id"]).column(0).to_pylist()
    shard = io.BytesIO()
    pq.write_table(pa.table({"id": ids, "source": [web.name] * len(ids)}), shard)
    repo.put_objects(
        legacy,
        {
            old_path: repo.get_object("main", new_path),
            marker_path: json.dumps({**marker, "partition": old_path}).encode(),
            f"{INDEX_PREFIX}/events/3.parquet": shard.getvalue(),
        },
    )
    repo.delete_objects(legacy, [new_path, *repo.list_paths("main", f"{INDEX_PREFIX}/")])
    repo.commit(legacy, "a lake of the old layout", {})
    repo.merge(legacy)
    repo.delete_branch(legacy)

    ingest_env.upload([obj(web.name, jsonl(lines_of(web)[:10]), web)])
    report = ingest_env.run(START, lookback=0)
    assert report.objects[0].rows_published == 10
    assert repo.list_paths("main", "events/") == [new_path]
    assert assert_lake_matches_accounting(repo) == 10  # the index holds exactly the 10 ids: the shard is gone
    assert f"{INDEX_PREFIX}/events/3.parquet" not in repo.list_paths("main", f"{INDEX_PREFIX}/")


# -- header-less CSV and PII ----------------------------------------------------------------------


def test_csv_without_a_header_row_leaks_no_pii(ingest_env: IngestEnv, hour_data: datagen.GeneratedData) -> None:
    log_stream = io.StringIO()
    setup_logging(ingest_env.settings, stream=log_stream)
    billing = first(hour_data, "billing-")
    text = billing.data.decode()
    rows = text.splitlines()[1:]
    headerless = obj(billing.name, ("\n".join(rows) + "\n").encode(), billing)
    # A second export whose extra column is named after a customer's e-mail address.
    frame = pd.read_csv(io.BytesIO(billing.data), dtype=str)
    email = str(frame["email"].dropna().iloc[0])
    frame[email] = "x"
    renamed = obj(BILLING_PREFIX + "billing-001.csv", frame.to_csv(index=False).encode(), billing)
    ingest_env.upload([headerless, renamed])
    report = ingest_env.run(START, lookback=0)

    by_name = {o.name: o for o in report.objects}
    assert by_name[headerless.name].status == "quarantined"
    assert by_name[headerless.name].reason.startswith("unreadable object: no header row")
    assert by_name[renamed.name].rows_published == len(frame)
    assert by_name[renamed.name].unknown_columns == [ingest_env.ingest().column_digest(email)]
    assert "schema_drift" in {a["kind"] for a in report.alerts}
    assert_lake_matches_accounting(ingest_env.repo)

    pii = {value for column in ("customer_id", "name", "email", "phone") for value in frame[column].dropna()}
    everything = "\n".join([*lake_texts(ingest_env.repo), log_stream.getvalue(), json.dumps(report.alerts)])
    leaked = sorted(value for value in pii if value in everything)
    assert not leaked, f"raw PII in the lake, commits, logs or alerts: {leaked[:5]}"


# -- unknown object names and prefixes ------------------------------------------------------------


def test_objects_with_unknown_names_are_quarantined_and_the_hour_proceeds(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData
) -> None:
    web, billing = first(hour_data, "web-"), first(hour_data, "billing-")
    strange = [
        obj(HOUR_PREFIX + "_SUCCESS", b"", web),
        obj(HOUR_PREFIX + "web-001.JSONL.GZ", web.data, web),
        obj(BILLING_PREFIX + "billing-001.csv.gz", gzip.compress(billing.data), billing),
        obj(HOUR_PREFIX + "retry/web-000.jsonl.gz", web.data, web),
    ]
    elsewhere = [
        obj(f"activity/events/dt={START:%Y-%m-%d}/hr=5/web-000.jsonl.gz", web.data, web),
        obj(f"activity/Events/dt={START:%Y-%m-%d}/hr={START:%H}/web-000.jsonl.gz", web.data, web),
        obj("activity/subscriptions/2026-11-01/billing-000.csv", billing.data, billing),
    ]
    ingest_env.upload([web, billing, *strange, *elsewhere])
    report = ingest_env.run(START, lookback=0)

    by_name = {o.name: o for o in report.objects}
    assert by_name[web.name].rows_published > 0 and by_name[billing.name].rows_published > 0
    for item in strange:
        assert by_name[item.name].status == "quarantined"
        assert by_name[item.name].reason.startswith("unrecognised object name")
    alerts = {a["kind"]: a for a in report.alerts}
    assert set(alerts["unrecognised_object"]["objects"]) == {o.name for o in strange}
    assert alerts["unknown_prefix"]["objects"] == sorted(
        ["activity/Events/", "activity/subscriptions/2026-11-01/", f"activity/events/dt={START:%Y-%m-%d}/hr=5/"]
    )
    notes = [p for p in ingest_env.repo.list_paths("main", "quarantine/") if p.endswith(".json")]
    assert len(notes) == len(strange)
    assert_lake_matches_accounting(ingest_env.repo)

    # Later runs whose window covers the hour neither fail nor quarantine the objects again.
    later = ingest_env.run(START + timedelta(hours=1), lookback=1)
    assert later.commit_id is None and not later.objects
    assert later.objects_skipped == len(strange) + 2


# -- invalid UTF-8 ----------------------------------------------------------------------------------


def test_invalid_utf8_quarantines_its_object_only(ingest_env: IngestEnv, hour_data: datagen.GeneratedData) -> None:
    web, app = first(hour_data, "web-"), first(hour_data, "app-")
    text = gzip.decompress(web.data)
    broken = text.replace(b'"page":"', b'"page":"\xff\xfe', 1)  # a well-formed line with invalid bytes
    assert broken != text
    ingest_env.upload([obj(web.name, gzip.compress(broken), web), app])
    report = ingest_env.run(START, lookback=0)
    by_name = {o.name: o for o in report.objects}
    assert by_name[web.name].status == "quarantined"
    assert by_name[web.name].reason == "unreadable object: not valid UTF-8 text (line 1)"
    assert by_name[app.name].rows_published > 0
    assert assert_lake_matches_accounting(ingest_env.repo) == by_name[app.name].rows_published
    assert ingest_env.run(START + timedelta(hours=1), lookback=1).commit_id is None


# -- time zones ---------------------------------------------------------------------------------------


def test_naive_times_are_utc_whatever_comes_before_them(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData
) -> None:
    web = first(hour_data, "web-")
    records = lines_of(web)[:4]
    records[0]["event_time"] = f"{START:%Y-%m-%d}T02:10:00+02:00"  # 00:10 UTC
    records[1]["event_time"] = f"{START:%Y-%m-%d}T00:20:00"  # naive: 00:20 UTC
    records[2]["event_time"] = f"{START - timedelta(days=1):%Y-%m-%d}T19:30:00-05:00"  # 00:30 UTC
    records[3]["event_time"] = f"{START:%Y-%m-%d} 00:40:00.5"
    ingest_env.upload([obj(web.name, jsonl(records), web)])
    report = ingest_env.run(START, lookback=0)
    assert report.objects[0].rows_published == 4
    times = published_rows(ingest_env.repo, "events").set_index("event_id")["event_time"]
    expected = [START + timedelta(minutes=m) for m in (10, 20, 30, 40.0083333333)]
    for record, when in zip(records, expected):
        assert abs(times[record["event_id"]] - pd.Timestamp(when)) < pd.Timedelta(seconds=1)
    assert_lake_matches_accounting(ingest_env.repo)


# -- Content-Encoding ---------------------------------------------------------------------------------


def test_objects_stored_with_content_encoding_gzip_are_read(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData
) -> None:
    web, billing = first(hour_data, "web-"), first(hour_data, "billing-")
    bucket = ingest_env.client.bucket(ingest_env.settings.raw_bucket)
    for raw in (web, billing):  # what `gsutil cp -Z` stores: the file gzipped once more, marked as encoded
        blob = bucket.blob(raw.name)
        blob.content_encoding = "gzip"
        blob.upload_from_string(gzip.compress(raw.data), content_type=raw.content_type)
    report = ingest_env.run(START, lookback=0)
    assert all(o.status == "published" and o.rows_published > 0 for o in report.objects), report.objects
    assert assert_lake_matches_accounting(ingest_env.repo) == report.accounting()["rows_published"]


# -- racing runs ----------------------------------------------------------------------------------------


def test_racing_runs_of_one_hour_publish_once(ingest_env: IngestEnv, hour_data: datagen.GeneratedData) -> None:
    ingest_env.upload([o for o in hour_data.objects if o.hour == START])
    head = ingest_env.repo.head("main")
    barrier = threading.Barrier(2)
    repos = [BeforeFirstMerge(ingest_env.reopen(), lambda: barrier.wait(timeout=60)) for _ in range(2)]  # meet there
    results: list[IngestReport | BaseException] = []

    def race(repo: BeforeFirstMerge) -> None:
        try:
            results.append(ingest_env.run(START, lookback=0, repo=repo))  # type: ignore[arg-type]
        except BaseException as error:  # pylint: disable=broad-exception-caught  # reported below
            results.append(error)

    threads = [threading.Thread(target=race, args=(repo,)) for repo in repos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    reports = [r for r in results if isinstance(r, IngestReport)]
    assert len(reports) == 2, results
    # Both staged from the same commit and met at the merge: one won, the other conflicted,
    # retried from the new main and found everything done.
    winner = next(r for r in reports if r.commit_id)
    loser = next(r for r in reports if r is not winner)
    assert loser.commit_id is None and not loser.objects
    assert sorted(repo.merges for repo in repos) == [1, 1]
    history = ingest_env.repo.log("main", limit=10)
    assert {c.metadata["run_id"] for c in history if c.metadata.get("run_id")} == {winner.run_id}
    assert history[0].metadata["base_commit"] == head and history[0].parents[0] == head
    assert json.loads(ingest_env.repo.get_object("main", HEAD_PATH))["run_id"] == winner.run_id
    assert assert_lake_matches_accounting(ingest_env.repo) == winner.accounting()["rows_published"]


# -- re-sent events long after their hour ---------------------------------------------------------------


@pytest.fixture(scope="module", name="many_hours")
def fixture_many_hours() -> datagen.GeneratedData:
    """12 clean hours of 800 customers (about 14,000 events)."""
    return datagen.generate(hours=12, customers=800, start=START, seed=22)


class CountingReads:
    """A repository handle that records the paths it reads."""

    def __init__(self, inner: DataRepository) -> None:
        self.inner = inner
        self.read: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_object(self, ref: str, path: str) -> bytes:
        """The real read, recorded."""
        self.read.append(path)
        return self.inner.get_object(ref, path)

    def open_object(self, ref: str, path: str) -> IO[bytes]:
        """The real read, recorded."""
        self.read.append(path)
        return self.inner.open_object(ref, path)


def test_events_sent_again_days_later_are_duplicates(ingest_env: IngestEnv, many_hours: datagen.GeneratedData) -> None:
    ingest_env.upload(many_hours.objects)
    first_run = ingest_env.run(START + timedelta(hours=11), lookback=11)
    assert first_run.accounting()["rows_quarantined"] == 0
    published = assert_lake_matches_accounting(ingest_env.repo)

    # 40 hours later, far outside any window, a producer re-sends 300 events of the first hours
    # among 50 new ones.
    old = [r for hour in range(3) for r in lines_of(first(many_hours, "web-", hour))][:300]
    assert len(old) == 300
    later = START + timedelta(hours=40)
    new = [{**r, "event_id": f"{r['event_id']}-new", "event_time": f"{later:%Y-%m-%dT%H}:05:00Z"} for r in old[:50]]
    name = f"activity/events/dt={later:%Y-%m-%d}/hr={later:%H}/web-000.jsonl.gz"
    ingest_env.upload([datagen.RawObject(name, jsonl(new + old), "application/gzip", later, later)])
    repo = ingest_env.repo
    before = {path: repo.get_object("main", path) for path in repo.list_paths("main", INDEX_PREFIX + "/")}
    reader = CountingReads(repo)
    report = ingest_env.run(later, lookback=3, repo=reader)  # type: ignore[arg-type]

    resent = report.objects[0]
    assert (resent.rows_in, resent.duplicates_dropped, resent.rows_published, resent.rows_quarantined) == (
        350,
        300,
        50,
        0,
    )
    assert assert_lake_matches_accounting(ingest_env.repo) == published + 50
    # The index answered: no published partition was read, only a part of the index.
    assert not [p for p in reader.read if p.startswith((f"events/dt={START:%Y-%m-%d}", "subscriptions/"))]
    # ... only the segments of the hours the re-sent events name (and of the new events' hour, which has none).
    index_reads = [p for p in reader.read if p.startswith(INDEX_PREFIX)]
    assert index_reads and all(
        p.split("/")[2:4] == ["events", f"dt={START:%Y-%m-%d}"] and int(p.split("/")[4].removeprefix("hr=")) < 3
        for p in index_reads
    ), index_reads
    assert latest_markers(ingest_env.repo)[name]["duplicates_dropped"] == 300
    # The index is appended to: nothing it held was rewritten, and the run added one segment, for the
    # record hour of the 50 ids it published.
    after = {path: repo.get_object("main", path) for path in repo.list_paths("main", INDEX_PREFIX + "/")}
    assert {path: after[path] for path in before} == before
    assert sorted(set(after) - set(before)) == [
        f"{INDEX_PREFIX}/events/dt={later:%Y-%m-%d}/hr={later:%H}/{report.run_id}.parquet"
    ]
