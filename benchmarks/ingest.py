"""Ingest cost: one generated hour of events through the whole ingest stage, on an empty lake and on
a lake with a long history of published ids.

On the same raw objects in a local fake-gcs-server it times

* **plain pyarrow**: download the objects, ``pyarrow.json.read_json`` them and write parquet to
  memory: the floor for reading and rewriting the same bytes. It runs in a fresh process of its own, as each
  ingest does (a KFP task is one): a fresh process pays for its first download, JSON read and parquet write,
  which a process that has done them before does not. The plain path in the benchmark's own process, after a
  first run, is timed too and printed beside it, with its ratio;
* **ingest, empty lake**: list, download, parse, contract check, dedup, PII tokenization, parquet
  write and branch/commit/merge on a fresh embedded lake (``IngestRun.run``);
* **ingest, with history**: the same hour on a lake whose id index already holds
  ``--history-hours`` hours of ``--history-ids`` ids each (the last one, the hour just before the ingested
  one, of ``--last-hour-ids``: the hour a run's rows can also name), written directly into the index (the
  hours before the ingested one) with the index's own segment writer.

Each path runs ``--repeat`` times (default 2), in turn, each ingest on a lake of its own and in a fresh
process, which reports its peak resident memory; the best time of each path is compared. Then, for peak memory
against the size of one object, the hour's events are written as a single object of
``--object-events`` events (its lines repeated with new ids, for sizes above the hour's) and
ingested alone on an empty lake, once per size; the ratio of the largest to the smallest is
printed beside its target. Prints every figure beside its target (docs/ingestion.md, Cost) and
the load average before and after.
Run: ``.venv/bin/python benchmarks/ingest.py [--customers 100000] [--rate 14.5]
[--object-events 1000000,10000000]`` (``--object-events ''`` leaves the single objects out).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import multiprocessing
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq
from common import load_average, peak_memory, raw_bucket

from churnops.data import id_index, naming, schema
from churnops.data.ingest import ID_COLUMNS, IngestRun
from churnops.data.privacy import Tokenizer
from churnops.data.run_ids import RECORD_HOUR_TYPE, RunIds
from churnops.data.versioning import open_repository
from churnops.data.versioning.base import close_files
from churnops.local import datagen
from churnops.platform.alerts import AlertSink
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket, list_objects, read_object, storage_client

KEY = b"b" * 32


def plain_pyarrow(settings: Settings, prefix: str) -> tuple[int, float]:
    """Download, read JSON Lines with pyarrow, write parquet to memory. Returns (rows, seconds)."""
    client = storage_client(settings)
    started = time.perf_counter()
    rows = 0
    for ref in list_objects(client, settings.raw_bucket, prefix):
        table = pj.read_json(io.BytesIO(gzip.decompress(read_object(client, ref))))
        pq.write_table(table, io.BytesIO(), compression="zstd")
        rows += table.num_rows
    return rows, time.perf_counter() - started


def simulate_history(settings: Settings, before: datetime, hours: int, ids_per_hour: int, last_hour_ids: int) -> int:
    """Write ``hours`` hours of ``ids_per_hour`` published event ids into the lake's id index (the
    hours just before ``before``; the last of them ``last_hour_ids``), committed and merged like a run's.
    Returns the ids written."""
    repo = open_repository(settings)
    repo.ensure()
    kind = schema.EVENTS
    repo.create_branch("history")
    repo.put_objects("history", {id_index.layout_path(kind): json.dumps(id_index.LAYOUT).encode()})
    index = id_index.IdIndex(repo, "history", kind, ID_COLUMNS[kind], schema.RECORD_TIME_COLUMNS[kind])
    written = 0
    for offset in range(hours, 0, -1):
        hour = pd.Timestamp(before - timedelta(hours=offset))
        ids = pa.array([os.urandom(16).hex() for _ in range(last_hour_ids if offset == 1 else ids_per_hour)])
        written += len(ids)
        source = f"activity/events/{naming.hour_partition(hour)}/web-000.jsonl.gz"
        with RunIds() as added:
            added.add(source, ids, pa.array([hour] * len(ids), type=RECORD_HOUR_TYPE))
            files, _ = index.changes(f"history-{offset:04d}", added, set(), [])
        repo.put_objects("history", files)
        close_files(files)
    repo.commit("history", "simulated history of published ids", {})
    repo.merge("history", into="main", message="simulated history", metadata={})
    repo.delete_branch("history")
    return written


def single_object(settings: Settings, prefix: str, hour: datetime, events: int, path: Path) -> tuple[str, int]:
    """Write the events under ``prefix`` as one object of about ``events`` events to a bucket of its own
    (each repetition of the hour's lines gets new ids). Returns (bucket, events written)."""
    client = storage_client(settings)
    refs = list(list_objects(client, settings.raw_bucket, prefix))
    written, copy = 0, 0
    with gzip.open(path, "wb", compresslevel=1) as out:
        while written < events:
            for ref in refs:
                text = gzip.decompress(read_object(client, ref))
                if copy:
                    text = re.sub(rb'("event_id": ?"[^"]*)"', rb'\1-%d"' % copy, text)
                lines = text.splitlines(keepends=True)[: events - written]
                out.write(b"".join(lines))
                written += len(lines)
                if written >= events:
                    break
            copy += 1
    bucket = f"bench-object-{events}"
    ensure_bucket(client, bucket)
    name = f"activity/events/{naming.hour_partition(hour)}/big-000.jsonl.gz"
    blob = client.bucket(bucket).blob(name)
    blob.upload_from_filename(str(path), content_type="application/gzip")
    path.unlink()
    return bucket, written


def single_objects(settings: Settings, state: Path, hour: datetime, sizes: list[int]) -> list[tuple[int, float, int]]:
    """Ingest the hour's events as one object of each size, alone on an empty lake: (events, seconds, peak RSS)."""
    objects = []
    for size in sizes:
        prefix = f"activity/events/{naming.hour_partition(hour)}/"
        bucket, written = single_object(settings, prefix, hour, size, state / "object.gz")
        seconds, acc, _, rss = ingest_in_child(
            settings.model_copy(update={"state_dir": state / bucket, "raw_bucket": bucket}), hour
        )
        if acc["rows_in"] != written or acc["rows_published"] != written:
            raise RuntimeError(
                f"the {written:,}-event object's ingest read {acc['rows_in']:,} rows and published "
                f"{acc['rows_published']:,}: each one is a valid, distinct event"
            )
        objects.append((written, seconds, rss))
        print(
            f"one object of {written:,} events: {seconds:.2f} s, peak {rss / 1024**3:.3f} GiB (load {load_average()})"
        )
    return objects


def print_objects(objects: list[tuple[int, float, int]]) -> None:
    """Peak memory of each single object's ingest, and the ratio of the largest to the smallest."""
    for written, seconds, rss in objects:
        print(
            f"peak memory, one object of {written:>10,} events: {rss / 1024**3:6.3f} GiB "
            f"({written / seconds:,.0f} events/s)"
            + ("   target <= 1.500 GiB for 10M events" if written >= 10_000_000 else "")
        )
    if len(objects) > 1:
        print(
            f"peak memory ratio, {objects[-1][0]:,} / {objects[0][0]:,} events: "
            f"{objects[-1][2] / objects[0][2]:5.2f}   target <= 1.30"
        )


def _ingest(state: str, gcs_port: int, bucket: str, hour: datetime, out: multiprocessing.Queue) -> None:
    """Child process: one ingest run of ``hour``; puts (seconds, accounting, commit, peak RSS bytes)."""
    settings = Settings(state_dir=Path(state), gcs_port=gcs_port, raw_bucket=bucket, tokenization_key=KEY.decode())
    repo = open_repository(settings)
    repo.ensure()
    run = IngestRun(settings, repo, storage_client(settings), Tokenizer(KEY), AlertSink(settings))
    started = time.perf_counter()
    report = run.run(hour, lookback=0)
    seconds = time.perf_counter() - started
    out.put((seconds, report.accounting(), report.commit_id, peak_memory()))


def _plain(state: str, gcs_port: int, bucket: str, out: multiprocessing.Queue) -> None:
    """Child process: :func:`plain_pyarrow` once; puts (rows, seconds)."""
    settings = Settings(state_dir=Path(state), gcs_port=gcs_port, raw_bucket=bucket)
    out.put(plain_pyarrow(settings, "activity/events/"))


def _in_child(target: Callable[..., None], settings: Settings, *more: object) -> Any:
    """``target(state_dir, gcs_port, raw_bucket, *more, queue)`` in a fresh (spawned) process; what it put."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    process = context.Process(
        target=target, args=(str(settings.state_dir), settings.gcs_port, settings.raw_bucket, *more, out)
    )
    process.start()
    result = out.get()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"the {target.__name__} process failed with exit code {process.exitcode}")
    return result


def plain_in_child(settings: Settings) -> tuple[int, float]:
    """:func:`plain_pyarrow` in a fresh process, as each ingest runs."""
    result: tuple[int, float] = _in_child(_plain, settings)
    return result


def ingest_in_child(settings: Settings, hour: datetime) -> tuple[float, dict[str, int], str | None, int]:
    """Run :func:`_ingest` in a fresh (spawned) process so its peak memory is its own."""
    result: tuple[float, dict[str, int], str | None, int] = _in_child(_ingest, settings, hour)
    return result


@dataclass
class Timed:
    """The best run of each timed path (the peak memories are the largest of the runs)."""

    plain: tuple[int, float]  # in a fresh process, as each ingest
    plain_warm: tuple[int, float]  # in the benchmark's process, after a first run
    empty: tuple[float, dict[str, int], str | None, int]
    history: tuple[float, dict[str, int], str | None, int]
    history_ids: int
    history_setup_s: float


def timed_paths(settings: Settings, state: Path, hour: datetime, args: argparse.Namespace) -> Timed:
    """Each path ``args.repeat`` times, in turn (plain, empty, history, plain, ...), each in a fresh process and
    each ingest on a lake of its own: load that comes and goes hits all three, and the best time of each is
    compared. The plain path also runs in this process (after the first time, warm)."""
    plain, plain_warm, empty, with_history = [], [], [], []
    history, history_setup_s = 0, 0.0
    plain_pyarrow(settings, "activity/events/")  # this process's first run: what "warm" is after
    for attempt in range(args.repeat):
        plain.append(plain_in_child(settings))
        plain_warm.append(plain_pyarrow(settings, "activity/events/"))
        empty.append(ingest_in_child(settings.model_copy(update={"state_dir": state / f"empty{attempt}"}), hour))
        lake = settings.model_copy(update={"state_dir": state / f"history{attempt}"})
        started = time.perf_counter()
        history = simulate_history(lake, hour, args.history_hours, args.history_ids, args.last_hour_ids)
        history_setup_s = time.perf_counter() - started
        with_history.append(ingest_in_child(lake, hour))
    best_empty = min(empty, key=lambda result: result[0])
    best_history = min(with_history, key=lambda result: result[0])
    return Timed(
        plain=min(plain, key=lambda result: result[1]),
        plain_warm=min(plain_warm, key=lambda result: result[1]),
        empty=(*best_empty[:3], max(result[3] for result in empty)),
        history=(*best_history[:3], max(result[3] for result in with_history)),
        history_ids=history,
        history_setup_s=history_setup_s,
    )


def print_paths(best: Timed, args: argparse.Namespace) -> None:
    """The three paths' figures beside their targets."""
    base_rows, base_s = best.plain
    empty_s, acc, commit, empty_rss = best.empty
    history_s, history_acc, _, history_rss = best.history
    history, history_setup_s = best.history_ids, best.history_setup_s
    if history_acc != acc:
        raise RuntimeError(f"the two ingests disagree: {acc} against {history_acc}")
    ingest_rate, base_rate = acc["rows_in"] / empty_s, base_rows / base_s
    gib = 1024**3
    warm_rows, warm_s = best.plain_warm
    print(
        f"plain pyarrow read+write   : {base_rows:>10,} rows in {base_s:6.2f} s = {base_rate:>10,.0f} rows/s "
        f"(a fresh process, as each ingest)"
    )
    print(f"  the same, warm            : {warm_rows:>10,} rows in {warm_s:6.2f} s (this process, after a first run)")
    print(
        f"ingest, empty lake         : {acc['rows_in']:>10,} rows in {empty_s:6.2f} s = {ingest_rate:>10,.0f} rows/s "
        f"(published {acc['rows_published']:,}, commit {commit[:12] if commit else '-'})"
    )
    print(
        f"ingest, {history:,} ids of history ({args.history_hours} h, written in {history_setup_s:.0f} s): "
        f"{history_s:.2f} s"
    )
    print(f"best of {args.repeat} runs of each path, run in turn")
    print(f"ratio ingest / pyarrow     : {ingest_rate / base_rate:5.2f}   target >= 0.60")
    print(
        f"  against the warm pyarrow  : {ingest_rate / (warm_rows / warm_s):5.2f}   "
        "(a fresh ingest against a warm plain)"
    )
    print(f"ratio with / without history: {history_s / empty_s:5.2f}   target <= 1.20")
    print(
        f"peak memory of the ingest  : {empty_rss / gib:6.3f} GiB for {acc['rows_in']:,} events "
        f"({empty_rss / max(acc['rows_in'], 1):,.0f} B/event; with history {history_rss / gib:.3f} GiB)   "
        f"target <= 1.500 GiB for a 10M-event hour"
    )


def main() -> None:
    """Generate, upload, time the three paths, print every figure beside its target."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument(
        "--rate",
        type=float,
        default=14.5,
        help="events per customer per hour (14.5 gives about 1M events for 100k customers)",
    )
    parser.add_argument("--history-hours", type=int, default=100)
    parser.add_argument("--history-ids", type=int, default=100_000, help="published ids per history hour")
    parser.add_argument(
        "--last-hour-ids", type=int, default=1_000_000, help="published ids of the hour before the ingested one"
    )
    parser.add_argument(
        "--object-events",
        default="1000000,10000000",
        help="sizes (events) of the single objects whose ingest's peak memory is compared, comma-separated",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each timed path; the best is compared")
    args = parser.parse_args()
    print(f"load average at start: {load_average()} (1, 5, 15 min; {os.cpu_count()} cores)")

    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    started = time.perf_counter()
    generated = datagen.generate(
        hours=1, customers=args.customers, start=hour, seed=1, events_per_customer_hour=args.rate
    )
    events = [o for o in generated.objects if o.name.startswith("activity/events/")]
    print(
        f"generated {len(events)} event objects, {sum(len(o.data) for o in events) / 1e6:.1f} MB gzip, "
        f"in {time.perf_counter() - started:.1f} s"
    )
    del generated

    with tempfile.TemporaryDirectory() as state, raw_bucket(Path(state), KEY) as settings:
        datagen.upload(storage_client(settings), settings.raw_bucket, events)
        del events
        best = timed_paths(settings, Path(state), hour, args)
        objects = single_objects(
            settings, Path(state), hour, [int(size) for size in args.object_events.split(",") if size.strip()]
        )

    print_paths(best, args)
    print_objects(objects)
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
