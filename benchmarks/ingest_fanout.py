"""Ingest fan-out: one generated hour of events, split into many objects, staged by one process and by groups.

The hour's events are written as ``--objects`` objects of about equal size (each object after the
first repeats ``--repeat`` of the ids of the one before it, so ids cross groups), uploaded to a
local fake-gcs-server, and staged on two fresh embedded lakes:

* **one process**: ``IngestRun.stage_run`` with one group (what the CLI runs);
* **fanned out**: ``plan_run`` in ``--fanout`` groups, then one process per group, all at once (as
  the ingest pipeline's ``ingest-group`` tasks run), then ``finish_run`` (which drops the ids two
  groups published, rewriting those partitions).

Each step runs in a fresh process (the group processes all at once), timed from when every process of
the step has imported and opened its lake, and reports its peak resident memory. The two stagings must
agree on the accounting. Prints the wall times, the speed-up beside its target (half the ideal
``min(fanout, cores)``), the largest group's peak memory beside the single process's, and the load
average before and after (the machine's other work slows the groups down).
Run: ``.venv/bin/python benchmarks/ingest_fanout.py [--customers 20000] [--objects 16] [--fanout 4]``.
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from common import load_average, peak_memory, raw_bucket

from churnops.data.ingest import IngestRun
from churnops.data.ingest_steps import IngestGroup, IngestPlan, finish_run, plan_run, stage_group
from churnops.data.privacy import Tokenizer
from churnops.data.versioning import open_repository
from churnops.local import datagen
from churnops.platform.alerts import AlertSink
from churnops.platform.settings import Settings
from churnops.platform.storage import storage_client

KEY = b"f" * 32


def split_events(events: list[datagen.RawObject], count: int, repeat: float) -> list[datagen.RawObject]:
    """The hour's event lines as ``count`` objects of about equal size, each repeating ``repeat`` of the lines
    of the one before it (the same ids: duplicates across objects)."""
    lines = [line for obj in events for line in gzip.decompress(obj.data).splitlines() if line.strip()]
    size = -(-len(lines) // count)
    parts = [lines[start : start + size] for start in range(0, len(lines), size)]
    like = events[0]
    prefix = like.name.rsplit("/", 1)[0]
    objects = []
    for number, part in enumerate(parts):
        repeated = parts[number - 1][: int(len(parts[number - 1]) * repeat)] if number else []
        data = gzip.compress(b"\n".join([*part, *repeated]) + b"\n")
        objects.append(
            datagen.RawObject(f"{prefix}/bench-{number:03}.jsonl.gz", data, like.content_type, like.hour, like.arrival)
        )
    return objects


def _run(settings: Settings) -> IngestRun:
    repo = open_repository(settings)
    repo.ensure()
    return IngestRun(settings, repo, storage_client(settings), Tokenizer(KEY), AlertSink(settings))


def _child(step: str, settings_json: str, argument: str, hour: datetime, out: Any, ready: Any, go: Any) -> None:
    """Child process: one step, started when every child has imported and opened its lake (``go``); puts
    (seconds, result, peak RSS bytes)."""
    run = _run(Settings.model_validate_json(settings_json))
    ready.put(None)
    go.wait()
    started = time.perf_counter()
    result: object
    if step == "sequential":
        result = run.stage_run(hour, 0).report.accounting()
    elif step == "plan":
        result = plan_run(run, hour, 0, fanout=int(argument)).to_json()
    elif step == "group":
        result = stage_group(run, IngestGroup.from_json(argument))
    else:
        result = finish_run(run, IngestPlan.from_json(argument)).report.accounting()
    out.put((time.perf_counter() - started, result, peak_memory()))


def in_children(
    step: str, settings: Settings, arguments: list[str], hour: datetime
) -> tuple[float, list[tuple[float, Any, int]]]:
    """Run :func:`_child` once per argument, each in a fresh (spawned) process, all started at once once every
    process is ready (imports are not timed); returns the wall time from that start to the last result."""
    context = multiprocessing.get_context("spawn")
    out, ready, go = context.Queue(), context.Queue(), context.Event()
    processes = [
        context.Process(target=_child, args=(step, settings.model_dump_json(), argument, hour, out, ready, go))
        for argument in arguments
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get()
    started = time.perf_counter()
    go.set()
    results = [out.get() for _ in processes]
    wall = time.perf_counter() - started
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a {step} process failed with exit code {process.exitcode}")
    return wall, results


def main() -> None:
    """Generate, upload, stage both ways, print every figure beside its target."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=14.5, help="events per customer per hour")
    parser.add_argument("--objects", type=int, default=16, help="event objects the hour is written as")
    parser.add_argument("--repeat", type=float, default=0.01, help="share of the previous object's ids repeated")
    parser.add_argument("--fanout", type=int, default=4, help="groups (CHURNOPS_INGEST_FANOUT)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"load average at start: {load_average()} (1, 5, 15 min; {cores} cores)")

    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    generated = datagen.generate(
        hours=1, customers=args.customers, start=hour, seed=1, events_per_customer_hour=args.rate
    )
    events = split_events(
        [o for o in generated.objects if o.name.startswith("activity/events/")], args.objects, args.repeat
    )
    del generated
    print(f"{len(events)} event objects, {sum(len(o.data) for o in events) / 1e6:.1f} MB gzip")

    with tempfile.TemporaryDirectory() as state, raw_bucket(Path(state), KEY) as settings:
        datagen.upload(storage_client(settings), settings.raw_bucket, events)
        one = settings.model_copy(update={"state_dir": Path(state) / "one"})
        fanned = settings.model_copy(update={"state_dir": Path(state) / "fanned"})
        sequential_s, ((_, sequential, sequential_rss),) = in_children("sequential", one, [""], hour)
        plan_s, ((_, plan_json, _),) = in_children("plan", fanned, [str(args.fanout)], hour)
        plan = IngestPlan.from_json(plan_json)
        groups_s, groups = in_children("group", fanned, [group.to_json() for group in plan.groups], hour)
        finish_s, ((_, finished, _),) = in_children("finish", fanned, [plan_json], hour)

    if finished != sequential:
        raise RuntimeError(f"the stagings disagree: {sequential} against {finished}")
    total = plan_s + groups_s + finish_s
    ideal = min(len(plan.groups), cores)
    mib = 1024**2
    print(
        f"one process                : {sequential_s:6.2f} s for {sequential['rows_in']:,} rows "
        f"({sequential['duplicates_dropped']:,} duplicates dropped)"
    )
    print(
        f"fanned out, {len(plan.groups)} groups       : {total:6.2f} s = plan {plan_s:.2f} + groups {groups_s:.2f} "
        f"(slowest {max(seconds for seconds, _, _ in groups):.2f}) + finish {finish_s:.2f}"
    )
    print(f"speed-up                   : {sequential_s / total:5.2f}   target >= {ideal / 2:.2f} (half of {ideal})")
    print(
        f"peak memory                : one process {sequential_rss / mib:,.0f} MiB, "
        f"largest group {max(rss for _, _, rss in groups) / mib:,.0f} MiB"
    )
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
