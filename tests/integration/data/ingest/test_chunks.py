"""Ingest in chunks: an object read, checked and written a chunk at a time gives the lake and the report
that reading it whole gives, at every chunk boundary.

Each test runs the same raw objects through two ingests: one with tiny chunks on the backend under
test, one reading every object as a single chunk on a lake of its own.
"""

from __future__ import annotations

import gc
import gzip
import io
import json
import os
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from churnops.data.aggregates import AGGREGATES_PREFIX, HourlyAggregator
from churnops.data.ingest import ID_COLUMNS, IngestReport, IngestRun
from churnops.data.privacy import Tokenizer
from churnops.data.spool import ParquetSpool
from churnops.data.versioning import DataRepository, LakeUnavailable
from churnops.data.versioning.embedded import EmbeddedRepository
from churnops.local import datagen
from tests.integration.data.ingest.conftest import KEY, START, IngestEnv
from tests.integration.data.ingest.lake_checks import assert_lake_matches_accounting, published_rows
from tests.integration.data.ingest.test_hostile_input import first, jsonl, lines_of, obj

CHUNK_BYTES = 1_000  # two or three events per chunk
CHUNK_ROWS = 3


@pytest.fixture(scope="module", name="hour_data")
def fixture_hour_data() -> datagen.GeneratedData:
    """One clean hour of 30 customers."""
    return datagen.generate(hours=1, customers=30, start=START, seed=5)


def chunked(run: IngestRun, chunk_bytes: int | None, chunk_rows: int | None) -> IngestRun:
    """``run`` reading objects in chunks of that size (None: whole)."""
    run.chunk_bytes, run.chunk_rows = chunk_bytes, chunk_rows
    return run


def both_ways(env: IngestEnv, tmp_path: Any) -> tuple[IngestReport, IngestReport, DataRepository]:
    """The hour ingested in tiny chunks on ``env``'s lake and whole on a lake of its own."""
    parts = chunked(env.ingest(), CHUNK_BYTES, CHUNK_ROWS).run(START, lookback=0)
    whole_repo = EmbeddedRepository(tmp_path / "whole-lake")
    whole_repo.ensure()
    whole = chunked(env.ingest(whole_repo), None, None).run(START, lookback=0)
    return parts, whole, whole_repo


def comparable(report: IngestReport) -> dict[str, dict[str, Any]]:
    """Each object's report, corrections in a fixed order."""
    objects = {}
    for item in report.objects:
        entry = asdict(item)
        entry["corrections"] = sorted(entry["corrections"], key=lambda c: (c["kind"], c["column"], c["detail"]))
        objects[item.name] = entry
    return objects


def quarantine(repo: DataRepository) -> dict[str, pd.DataFrame]:
    """Every per-row quarantine file on ``main``, by path."""
    return {
        path: pq.read_table(io.BytesIO(repo.get_object("main", path))).to_pandas()
        for path in repo.list_paths("main", "quarantine/")
        if path.endswith(".parquet")
    }


def aggregate_files(repo: DataRepository) -> dict[str, bytes]:
    """Every pre-aggregates file on ``main``, by path."""
    return {path: repo.get_object("main", path) for path in repo.list_paths("main", AGGREGATES_PREFIX)}


def assert_same_lake(env: IngestEnv, whole_repo: DataRepository, kind: str) -> None:
    """The two lakes hold the same published and quarantined rows, each as its accounting says."""
    key = ["_source_object", ID_COLUMNS[kind]]
    pd.testing.assert_frame_equal(
        published_rows(env.repo, kind).sort_values(key, ignore_index=True),
        published_rows(whole_repo, kind).sort_values(key, ignore_index=True),
    )
    mine, theirs = quarantine(env.repo), quarantine(whole_repo)
    assert mine.keys() == theirs.keys()
    for path, frame in mine.items():
        pd.testing.assert_frame_equal(frame, theirs[path])
    # the pre-aggregates, summed a chunk at a time, are the files the whole partitions give
    assert aggregate_files(env.repo) == aggregate_files(whole_repo)
    assert bool(aggregate_files(env.repo)) == (kind == "events")
    assert_lake_matches_accounting(env.repo)
    assert_lake_matches_accounting(whole_repo)


def test_events_in_chunks_publish_what_the_whole_object_publishes(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData, tmp_path: Any
) -> None:
    web = first(hour_data, "web-")
    records = lines_of(web)
    assert len(gzip.decompress(web.data)) > 6 * CHUNK_BYTES
    records[-1] = {**records[-1], "event_id": records[1]["event_id"]}  # a duplicate id, chunks apart
    records[-2] = {**records[-2], "event_type": "not-a-type"}  # a bad row in the last chunk
    text = "\n".join(json.dumps(r) for r in records[: len(records) // 2])
    text += '\n{"event_id": "broken", \n'  # a malformed line mid-object
    text += "\n".join(json.dumps(r) for r in records[len(records) // 2 :]) + "\n"
    small = [{**records[3], "event_id": "small-1"}]
    ingest_env.upload(
        [
            obj(web.name, gzip.compress(text.encode()), web),
            obj(web.name.replace("web-", "tiny-"), jsonl(small), web),  # smaller than a chunk
            obj(web.name.replace("web-", "empty-"), gzip.compress(b""), web),
        ]
    )
    parts, whole, whole_repo = both_ways(ingest_env, tmp_path)
    assert comparable(parts) == comparable(whole)
    assert parts.accounting() == whole.accounting()
    by_name = {o.name: o for o in parts.objects}
    big = by_name[web.name]
    assert big.rows_in == len(records) + 1
    assert big.duplicates_dropped == 1 and big.rows_quarantined == 2
    assert by_name[web.name.replace("web-", "tiny-")].rows_published == 1
    assert by_name[web.name.replace("web-", "empty-")].reason == "unreadable object: empty object"
    assert_same_lake(ingest_env, whole_repo, "events")
    bad = quarantine(ingest_env.repo)
    (rows,) = [frame for path, frame in bad.items() if "/web-" in path]
    assert rows["_line"].tolist() == [str(len(records) // 2 + 1), str(len(records))]  # lines of the object


def test_columns_that_only_later_chunks_have_are_the_object_s_columns(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData, tmp_path: Any
) -> None:
    """A required column absent from the first chunks is null there (those rows quarantined), not missing
    from the object; an optional column absent from the first chunks is no correction."""
    web = first(hour_data, "web-")
    records = lines_of(web)
    early = len(records) // 3
    for record in records[:early]:
        record.pop("customer_id")
        record.pop("device", None)
    ingest_env.upload([obj(web.name, jsonl(records), web)])
    parts, whole, whole_repo = both_ways(ingest_env, tmp_path)
    assert comparable(parts) == comparable(whole)
    (item,) = parts.objects
    assert item.status == "published" and item.rows_quarantined == early
    assert not [c for c in item.corrections if c["kind"] == "added_missing_optional_column"]
    assert_same_lake(ingest_env, whole_repo, "events")


def test_unreadable_bytes_in_a_late_chunk_leave_nothing_of_the_object(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData, tmp_path: Any
) -> None:
    web, app = first(hour_data, "web-"), first(hour_data, "app-")
    text = gzip.decompress(web.data)
    broken = text[:-20] + b"\xff" + text[-19:]
    ingest_env.upload([obj(web.name, gzip.compress(broken), web), app])
    parts, whole, whole_repo = both_ways(ingest_env, tmp_path)
    assert comparable(parts) == comparable(whole)
    by_name = {o.name: o for o in parts.objects}
    lines = text.count(b"\n")
    assert by_name[web.name].reason == f"unreadable object: not valid UTF-8 text (line {lines})"
    assert by_name[web.name].rows_in == 0 and by_name[web.name].partition is None
    assert set(published_rows(ingest_env.repo, "events")["_source_object"]) == {app.name}
    assert_same_lake(ingest_env, whole_repo, "events")


def test_subscriptions_in_chunks_publish_what_the_whole_object_publishes(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData, tmp_path: Any
) -> None:
    billing = first(hour_data, "billing-")
    frame = pd.read_csv(io.BytesIO(billing.data), dtype=str, keep_default_na=False)
    assert len(frame) > 4 * CHUNK_ROWS
    frame.loc[len(frame) - 1, "record_id"] = frame.loc[0, "record_id"]  # a duplicate id, chunks apart
    frame.loc[len(frame) - 2, "plan"] = "no-such-plan"  # a bad row in the last chunk
    ingest_env.upload([obj(billing.name, frame.to_csv(index=False).encode(), billing)])
    parts, whole, whole_repo = both_ways(ingest_env, tmp_path)
    assert comparable(parts) == comparable(whole)
    (item,) = parts.objects
    assert item.duplicates_dropped == 1 and item.rows_quarantined == 1
    assert_same_lake(ingest_env, whole_repo, "subscriptions")


@pytest.mark.parametrize("earlier", [[], [KEY]], ids=["one key version", "rotated key"])
def test_tokens_made_once_per_run_are_the_tokenizer_s_in_every_chunk_and_object(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData, earlier: list[bytes]
) -> None:
    """A run hashes each customer once and reuses the token in later chunks and objects: every published
    and quarantined token is what the tokenizer gives for the row's raw id, under one key or a rotated chain."""
    web, app = first(hour_data, "web-"), first(hour_data, "app-")
    records = lines_of(web)
    records[-1] = {**records[-1], "event_type": "not-a-type"}  # a quarantined row, tokenized in the last chunk
    ingest_env.upload([obj(web.name, jsonl(records), web), app])
    tokenizer = Tokenizer(b"another-key-version-0123456789abcdef", earlier) if earlier else Tokenizer(KEY)
    run = chunked(ingest_env.ingest(), CHUNK_BYTES, CHUNK_ROWS)
    run.tokenizer = tokenizer
    report = run.run(START, lookback=0)
    raw = {r["event_id"]: r["customer_id"] for r in records + lines_of(app)}
    assert report.accounting()["rows_published"] == len(raw) - 1
    published = published_rows(ingest_env.repo, "events")
    assert published["customer_token"].tolist() == [tokenizer.token(raw[e]) for e in published["event_id"]]
    assert len(set(published["customer_token"])) < len(published)  # customers seen in many chunks
    (rows,) = quarantine(ingest_env.repo).values()
    assert rows["customer_token"].tolist() == [tokenizer.token(records[-1]["customer_id"])]


def _open_under(directory: Path) -> list[str]:
    """The files under ``directory`` this process holds open (deleted ones included)."""
    targets = [os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.is_symlink()]
    return [target for target in targets if target.startswith(str(directory))]


def test_a_chunked_run_leaves_no_temporary_file_open_or_behind(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects are opened one ahead, each chunk's ids and index segments spooled to temporary files: after the
    run, with an unreadable object among the others, none of them is left open or on disk, nor closed only when
    collected (a ResourceWarning fails the test)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    web = first(hour_data, "web-")
    ingest_env.upload(
        [
            obj(web.name, web.data, web),
            obj(web.name.replace("web-", "broken-"), b"\x1f\x8b not gzip", web),
            obj(web.name.replace("web-", "again-"), web.data, web),  # every id a duplicate
        ]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        report = chunked(ingest_env.ingest(), CHUNK_BYTES, CHUNK_ROWS).run(START, lookback=0)
        gc.collect()
    dropped_open = [str(w.message) for w in caught if "unclosed file <_io.BufferedRandom" in str(w.message)]
    assert not dropped_open  # a temporary file (tempfile.TemporaryFile) closed only when collected
    assert [o.status for o in report.objects] == ["published", "quarantined", "published"]
    assert report.objects[2].duplicates_dropped == report.objects[0].rows_published > 0
    assert not _open_under(temporary) and not list(temporary.iterdir())


def test_a_run_the_lake_fails_partway_leaves_no_temporary_file_open_or_behind(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object's files are written once the next object is checked, while that one finishes in a thread: when
    the lake refuses the first object's files, the run fails with the lake's error, and the next object's files,
    finished and never written, are closed and gone too."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    web = first(hour_data, "web-")
    ingest_env.upload(
        [obj(web.name, web.data, web), obj(web.name.replace("web-", "xweb-"), web.data, web)]
    )  # listed second
    run = chunked(ingest_env.ingest(), CHUNK_BYTES, CHUNK_ROWS)
    written: list[list[str]] = []

    def refuse(branch: str, files: dict[str, Any]) -> None:
        written.append(sorted(files))
        raise LakeUnavailable(f"refused {len(files)} files on {branch}")

    monkeypatch.setattr(run.repo, "put_objects", refuse)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(LakeUnavailable, match="refused"):
            run.run(START, lookback=0)
        gc.collect()
    assert len(written) == 1 and any(path.endswith(".parquet") and "/web-" in path for path in written[0])
    assert not [str(w.message) for w in caught if "unclosed file <_io.BufferedRandom" in str(w.message)]
    assert not _open_under(temporary) and not list(temporary.iterdir())


def test_an_object_whose_finish_fails_after_its_partition_is_closed_leaves_no_temporary_file(
    ingest_env: IngestEnv, hour_data: datagen.GeneratedData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object finishes in a thread of its own: its partition file and its staged ids are handed over, then
    its aggregates are written. When that last step fails, the run fails with its error, and the files already
    handed over are closed and deleted, not left to the collector (a ResourceWarning fails the test)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    ingest_env.upload([first(hour_data, "web-")])
    run = chunked(ingest_env.ingest(), CHUNK_BYTES, CHUNK_ROWS)
    handed_over: list[str] = []
    detach = ParquetSpool.detach

    def recorded_detach(spool: ParquetSpool) -> Any:
        file = detach(spool)
        handed_over.append(file.name)
        return file

    def fail(_: HourlyAggregator) -> bytes:
        raise OSError("no space left for the aggregates")

    monkeypatch.setattr(ParquetSpool, "detach", recorded_detach)
    monkeypatch.setattr(HourlyAggregator, "file", fail)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(OSError, match="no space left for the aggregates"):
            run.run(START, lookback=0)
        gc.collect()
    assert len(handed_over) == 2  # the partition and the staged ids, before the aggregates failed
    assert not [str(w.message) for w in caught if "unclosed file <_io.BufferedRandom" in str(w.message)]
    assert not _open_under(temporary) and not list(temporary.iterdir())
