"""Ingest throughput: one generated hour of ~1,000,000 events through the whole ingest stage.

Compares, on the same raw objects in a local fake-gcs-server:

* **ingest**: list, download, parse, pandera contract check, dedup, PII tokenization, parquet
  write and branch/commit/merge on the embedded lake (``IngestRun.run``);
* **plain pyarrow**: download the same objects, ``pyarrow.json.read_json`` them and write
  parquet to memory: the floor for reading and rewriting the same bytes.

Prints rows/s for both and their ratio (target: ingest >= 0.4 of plain pyarrow, and the hour done
in under 60 s). Run: ``.venv/bin/python benchmarks/ingest.py [--customers 100000] [--rate 10]``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import socket
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.json as pj
import pyarrow.parquet as pq

from churnops.local import datagen
from churnops.platform.alerts import AlertSink
from churnops.data.ingest import IngestRun
from churnops.local.localstack import LocalStack
from churnops.data.privacy import Tokenizer
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket, list_objects, read_object, storage_client
from churnops.data.versioning import open_repository


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


def main() -> None:
    """Generate, upload, time both paths, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=14.5,
                        help="events per customer per hour (14.5 gives about 1M events for 100k customers)")
    args = parser.parse_args()

    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    started = time.perf_counter()
    generated = datagen.generate(hours=1, customers=args.customers, start=hour, seed=1,
                                 events_per_customer_hour=args.rate)
    events = [o for o in generated.objects if o.name.startswith("activity/events/")]
    print(f"generated {len(events)} event objects, {sum(len(o.data) for o in events) / 1e6:.1f} MB gzip, "
          f"in {time.perf_counter() - started:.1f} s")

    with tempfile.TemporaryDirectory() as state:
        settings = Settings(state_dir=Path(state), gcs_port=_free_port(), raw_bucket="bench-raw",
                            tokenization_key="b" * 32)
        stack = LocalStack(settings, only=("fake-gcs-server",))
        stack.up()
        try:
            client = storage_client(settings)
            ensure_bucket(client, settings.raw_bucket)
            datagen.upload(client, settings.raw_bucket, events)

            base_rows, base_s = plain_pyarrow(settings, "activity/events/")
            repo = open_repository(settings)
            repo.ensure()
            run = IngestRun(settings, repo, client, Tokenizer(b"b" * 32), AlertSink(settings))
            started = time.perf_counter()
            report = run.run(hour, lookback=0)
            ingest_s = time.perf_counter() - started
        finally:
            stack.down()

    acc = report.accounting()
    ingest_rate, base_rate = acc["rows_in"] / ingest_s, base_rows / base_s
    print(f"plain pyarrow read+write : {base_rows:>9,} rows in {base_s:6.2f} s = {base_rate:>10,.0f} rows/s")
    print(f"churnops ingest (full)   : {acc['rows_in']:>9,} rows in {ingest_s:6.2f} s = {ingest_rate:>10,.0f} rows/s "
          f"(published {acc['rows_published']:,}, commit {report.commit_id[:12] if report.commit_id else '-'})")
    print(f"ratio ingest / pyarrow   : {ingest_rate / base_rate:.2f}  (target >= 0.40; hour under 60 s: "
          f"{'yes' if ingest_s < 60 else 'no'})")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
