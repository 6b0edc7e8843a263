"""Aggregates backfill on embedded lakes of events partitions published without aggregates: time and peak memory.

Two lakes are built in a temporary folder, one of ``--hours`` hourly partitions and one of four times as many, every
partition ``--events`` published-format events of ``--customers`` customers (built with numpy, written as an ingest
from before the aggregates left them: one merged commit, no ``aggregates/``). Each lake is backfilled
(:func:`churnops.data.backfill.backfill_aggregates`) in a child process of its own, so its peak resident memory is the
backfill's alone; the backfill reads one partition at a time, so the larger lake's peak must stay near the smaller's
(target: ratio <= 1.2). The floor, in another child: reading each partition of the larger lake from the lake and
computing its aggregates file (:func:`churnops.data.aggregates.aggregate_file`), nothing written.

Run: ``.venv/bin/python benchmarks/backfill.py [--hours 12] [--events 200000] [--customers 20000]``
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import load_average, peak_memory

from churnops.data import aggregates, backfill, schema
from churnops.data.versioning.embedded import EmbeddedRepository
from churnops.platform.settings import Settings

START_NS = 1_793_491_200_000_000_000  # 2026-11-01T00:00Z
HOUR_NS = 3_600_000_000_000
MEMORY_TARGET = 1.2


def partition(rng: np.random.Generator, hour: int, events: int, customers: int) -> bytes:
    """One hour's events partition as an ingest publishes it (the columns the aggregates and the check read)."""
    customer = rng.integers(0, customers, events)
    kind = rng.integers(0, len(schema.EVENT_TYPES), events)
    purchase = kind == schema.EVENT_TYPES.index("purchase")
    table = pa.table(
        {
            "event_id": pa.array([f"e{hour}-{i}" for i in range(events)]),
            "customer_token": pa.array([f"tok_{c:08x}" for c in customer.tolist()]),
            "event_time": pa.array(
                START_NS + hour * HOUR_NS + rng.integers(0, HOUR_NS, events), pa.timestamp("ns", "UTC")
            ),
            "event_type": pa.array(np.array(schema.EVENT_TYPES, dtype=object)[kind]),
            "session_id": pa.array([f"s{c:x}-{hour}" for c in (customer * 2 + (rng.random(events) < 0.3)).tolist()]),
            "duration_s": pa.array(np.where(rng.random(events) < 0.7, rng.exponential(30.0, events), np.nan)),
            "amount": pa.array(np.where(purchase, rng.uniform(5, 100, events), np.nan)),
            "_source_object": pa.array([f"web-{hour:03d}.jsonl.gz"] * events),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def build_lake(root: Path, hours: int, events: int, customers: int) -> int:
    """A lake of ``hours`` events partitions without aggregates; returns its bytes of partitions."""
    repo = EmbeddedRepository(root / "lake")
    repo.ensure()
    repo.create_branch("older-ingest")
    rng = np.random.default_rng(hours)
    size = 0
    for hour in range(hours):
        content = partition(rng, hour, events, customers)
        size += len(content)
        path = f"events/dt=2026-11-{1 + hour // 24:02d}/hr={hour % 24:02d}/web-{hour:03d}.jsonl.gz.parquet"
        repo.put_objects("older-ingest", {path: content})
    repo.commit("older-ingest", "events without aggregates", {})
    repo.merge("older-ingest", into="main")
    repo.delete_branch("older-ingest")
    return size


def run_backfill(root: str) -> tuple[float, float, dict[str, object]]:
    """In a child: the backfill of the lake under ``root``; (seconds, peak GiB, summary)."""
    settings = Settings(state_dir=Path(root))
    repo = EmbeddedRepository(settings.embedded_repo_dir)
    started = time.perf_counter()
    report = backfill.backfill_aggregates(repo, settings)
    seconds = time.perf_counter() - started
    assert not backfill.missing_aggregates(repo, "main")
    return seconds, peak_memory() / 2**30, report.summary()


def run_floor(root: str) -> float:
    """In a child: read each partition from the lake and compute its aggregates file; seconds."""
    repo = EmbeddedRepository(Path(root) / "lake")
    started = time.perf_counter()
    for path in backfill.events_partitions(repo, "main"):
        aggregates.aggregate_file(repo.get_object("main", path))
    return time.perf_counter() - started


def main() -> None:
    """Build both lakes, backfill each in a child process, print time, memory and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=12)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    args = parser.parse_args()
    print(f"load average at start: {load_average()} (1, 5, 15 min; {os.cpu_count()} cores)")
    context = multiprocessing.get_context("spawn")
    peaks = []
    with tempfile.TemporaryDirectory(prefix="churnops-bench-") as tmp:
        for hours in (args.hours, 4 * args.hours):
            root = Path(tmp) / f"lake-{hours}"
            size = build_lake(root, hours, args.events, args.customers)
            with context.Pool(1) as pool:
                seconds, peak, summary = pool.apply(run_backfill, (str(root),))
            peaks.append(peak)
            events = int(str(summary["backfilled_events"]))
            print(
                f"{hours} partitions of {args.events:,} events ({size / 2**20:.0f} MiB of parquet): backfilled in "
                f"{seconds:.1f} s ({events / seconds:,.0f} events/s, {seconds / hours:.2f} s a partition), "
                f"peak resident memory {peak:.2f} GiB"
            )
        with context.Pool(1) as pool:
            floor = pool.apply(run_floor, (str(Path(tmp) / f"lake-{4 * args.hours}"),))
        print(f"floor, {4 * args.hours} partitions read and aggregated, nothing written: {floor:.1f} s")
        print(f"backfill / floor time ({4 * args.hours} partitions): {seconds / floor:.2f} (no target)")
    ratio = peaks[1] / peaks[0]
    print(f"peak memory ratio, {4 * args.hours} / {args.hours} partitions: {ratio:.2f}   target <= {MEMORY_TARGET}")
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
