"""Backfill of the hourly pre-aggregates (:mod:`churnops.data.aggregates`) for events partitions published without
them, by an ingest that predates them: until every partition of a commit has its aggregates, training, scoring and
the online snapshot read that commit's raw events (:func:`churnops.data.aggregates.covered`).

One run (:func:`backfill_aggregates`, ``churnops lake backfill-aggregates``; docs/ingestion.md, "Backfilling the
pre-aggregates"):

1. reads ``main``'s head (the *base*) and lists the events partitions there whose aggregates are missing; none
   missing: the run ends, with no branch and no commit;
2. on a new branch ``backfill-aggregates-<run id>`` from the base, writes each one's aggregates, one partition read
   at a time (the partition as it now is: rows an erasure removed are not counted), a manifest of what it wrote
   (``_backfill/aggregates/<run id>.json``) and ``_ingest/head.json`` (which every ingest run rewrites too, so on
   lakeFS a backfill and an ingest from the same base conflict there);
3. reads the branch back and checks each written aggregate against its partition (the events the aggregates count
   are the partition's rows with a customer token and an event time), else :class:`AccountingError`;
4. commits with metadata (what was backfilled, the code and schema versions, the base) and merges into ``main`` with
   a compare-and-set on the base, as the ingest does. If ``main`` moved (an ingest published meanwhile), the run
   starts again from the new ``main``, where the newly ingested partitions have their aggregates already, up to
   :data:`MAX_ATTEMPTS` times.

If the merge commit's first parent is not the base (lakeFS only: ``main`` moved between the compare and the merge,
by a writer that does not rewrite ``_ingest/head.json``, such as an erasure), the partitions backfilled are checked
again on ``main``; an aggregate that no longer matches its partition is written again (or removed with its
partition) by a further attempt.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from churnops.data import aggregates, schema
from churnops.data.contract import AccountingError, arrow_call
from churnops.data.ingest import MAX_MERGE_ATTEMPTS
from churnops.data.ingest_steps import HEAD_PATH
from churnops.data.versioning import DataRepository, MergeConflict, VersioningError
from churnops.data.versioning.base import DEFAULT_BRANCH
from churnops.platform.buildinfo import git_sha, lock_sha256
from churnops.platform.settings import Settings

log = logging.getLogger(__name__)

BRANCH_PREFIX = "backfill-aggregates-"
MANIFESTS_PREFIX = "_backfill/aggregates"
OPERATION = "backfill-aggregates"
MAX_ATTEMPTS = MAX_MERGE_ATTEMPTS
_AGGREGATES_OF_EVENTS = f"{aggregates.AGGREGATES_PREFIX}{aggregates.EVENTS_PREFIX}"


@dataclass(frozen=True)
class Backfilled:
    """The aggregates written for one events partition."""

    partition: str
    events: int  # the events they count: the partition's rows with a customer token and an event time
    rows: int  # their rows (customers x hours)


@dataclass
class BackfillReport:
    """What a backfill did: the commits it merged into ``main`` (none when nothing was missing) and what they hold."""

    partitions: int = 0  # events partitions on main when the last attempt started
    commits: list[str] = field(default_factory=list)  # main's head after each publish, oldest first
    backfilled: dict[str, Backfilled] = field(default_factory=dict)  # by partition (a repair replaces an entry)
    removed: list[str] = field(default_factory=list)  # aggregates removed with their partition (a repair only)
    attempts: int = 0

    @property
    def commit_id(self) -> str | None:
        """``main``'s head after the last publish; None when nothing was missing."""
        return self.commits[-1] if self.commits else None

    @property
    def events(self) -> int:
        """The events the written aggregates count, over every backfilled partition."""
        return sum(item.events for item in self.backfilled.values())

    def summary(self) -> dict[str, object]:
        """The report as JSON-ready data."""
        return {
            "commit_id": self.commit_id,
            "commits": self.commits,
            "attempts": self.attempts,
            "events_partitions": self.partitions,
            "backfilled_partitions": len(self.backfilled),
            "backfilled_events": self.events,
            "aggregate_rows": sum(item.rows for item in self.backfilled.values()),
            "removed": self.removed,
        }


@dataclass
class _Attempt:
    """One attempt's outcome: the base it read and, when something was missing, its publish."""

    base: str
    partitions: int
    commit_id: str | None = None
    backfilled: list[Backfilled] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def events_partitions(repo: DataRepository, ref: str) -> list[str]:
    """Every events partition at ``ref``, sorted."""
    return [path for path in repo.list_paths(ref, aggregates.EVENTS_PREFIX) if aggregates.is_events_partition(path)]


def missing_aggregates(repo: DataRepository, ref: str) -> list[str]:
    """The events partitions at ``ref`` that have no aggregates there, sorted."""
    present = set(repo.list_paths(ref, _AGGREGATES_OF_EVENTS))
    return [path for path in events_partitions(repo, ref) if aggregates.aggregates_path(path) not in present]


def _total(column: pa.ChunkedArray | pa.Array) -> int:
    """The sum of an integer or boolean Arrow column (0 when empty)."""
    return int(arrow_call("sum", column).as_py() or 0)


def countable_events(partition: bytes) -> int:
    """How many rows of an events partition file the aggregates count: those with a customer token and a time
    (read a row group at a time)."""
    stored = pq.ParquetFile(pa.BufferReader(partition))
    counted = 0
    for number in range(stored.num_row_groups):
        rows = stored.read_row_group(number, columns=["customer_token", "event_time"])
        counted += _total(arrow_call("and", *(arrow_call("is_valid", column) for column in rows.columns)))
    return counted


def mismatched(repo: DataRepository, ref: str, partitions: list[str]) -> list[str]:
    """Those of ``partitions`` whose aggregates at ``ref`` do not match them: missing, counting other than the
    partition's events, or left when the partition is gone. Reads one partition and its aggregates at a time."""
    events = set(repo.list_paths(ref, aggregates.EVENTS_PREFIX))
    present = set(repo.list_paths(ref, _AGGREGATES_OF_EVENTS))
    wrong = []
    for partition in partitions:
        path = aggregates.aggregates_path(partition)
        if partition not in events:
            if path in present:
                wrong.append(partition)
            continue
        if path not in present:
            wrong.append(partition)
            continue
        counted = pq.read_table(io.BytesIO(repo.get_object(ref, path)), columns=["events"]).column("events")
        if _total(counted) != countable_events(repo.get_object(ref, partition)):
            wrong.append(partition)
    return wrong


def backfill_aggregates(repo: DataRepository, settings: Settings) -> BackfillReport:
    """Write the missing aggregates of ``main``'s events partitions in one commit (see the module doc).

    Raises :class:`VersioningError` when ``main`` kept moving for :data:`MAX_ATTEMPTS` attempts (run it again),
    :class:`AccountingError` when the branch does not hold what was written (nothing is published).
    """
    report = BackfillReport()
    repair: list[str] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        report.attempts = attempt
        try:
            done = _attempt(repo, settings, repair)
        except MergeConflict:
            log.warning("merge conflict: main moved during the backfill; retrying", extra={"attempt": attempt})
            continue
        report.partitions = done.partitions
        report.backfilled.update((item.partition, item) for item in done.backfilled)
        report.removed.extend(done.removed)
        for partition in done.removed:
            report.backfilled.pop(partition, None)
        if done.commit_id is None:
            return report
        report.commits.append(done.commit_id)
        if repo.commit_info(done.commit_id).parents[:1] == [done.base]:
            return report
        # main moved between the compare and the merge (lakeFS only): what main now holds is checked again
        repair = mismatched(repo, done.commit_id, [item.partition for item in done.backfilled])
        if not repair:
            return report
        log.warning("aggregates no longer match their partitions on main; writing them again", extra={"n": len(repair)})
    raise VersioningError(f"the aggregates backfill found main moving {MAX_ATTEMPTS} times; run it again")


def _attempt(repo: DataRepository, settings: Settings, repair: list[str]) -> _Attempt:
    base = repo.head(DEFAULT_BRANCH)
    partitions = events_partitions(repo, base)
    existing = set(partitions)
    wanted = sorted(set(missing_aggregates(repo, base)) | {p for p in repair if p in existing})
    gone = [p for p in repair if p not in existing]
    done = _Attempt(base=base, partitions=len(partitions))
    if not wanted and not gone:
        log.info("no aggregates missing", extra={"base": base, "partitions": len(partitions)})
        return done
    run_id = uuid.uuid4().hex[:12]
    branch = f"{BRANCH_PREFIX}{run_id}"
    repo.create_branch(branch, source=base)
    try:
        for partition in wanted:  # one partition in memory at a time
            content = aggregates.aggregate_file(repo.get_object(base, partition))
            table = pq.read_table(io.BytesIO(content), columns=["events"])
            events = _total(table.column("events"))
            done.backfilled.append(Backfilled(partition, events, table.num_rows))
            repo.put_objects(branch, {aggregates.aggregates_path(partition): content})
            del content, table
        done.removed = gone
        if gone:
            repo.delete_objects(branch, [aggregates.aggregates_path(p) for p in gone])
        manifest = f"{MANIFESTS_PREFIX}/{run_id}.json"
        code_version = git_sha(settings)
        record = {
            "run_id": run_id,
            "base_commit": base,
            "code_version": code_version,
            "aggregates": [asdict(item) for item in done.backfilled],
            "removed": gone,
        }
        repo.put_objects(
            branch,
            {
                manifest: json.dumps(record, indent=2).encode(),
                HEAD_PATH: json.dumps({"run_id": run_id, "operation": OPERATION, "base": base}).encode(),
            },
        )
        wrong = mismatched(repo, branch, [*wanted, *gone])
        if wrong:
            raise AccountingError(f"the backfill branch's aggregates do not match their partitions: {wrong[:5]}")
        metadata = {
            "run_id": run_id,
            "operation": OPERATION,
            "base_commit": base,
            "backfilled": json.dumps(
                {
                    "partitions": len(done.backfilled),
                    "events": sum(item.events for item in done.backfilled),
                    "removed": len(gone),
                },
                sort_keys=True,
            ),
            "manifest": manifest,
            "schema_versions": json.dumps(schema.SCHEMA_VERSIONS, sort_keys=True),
            "code_version": code_version,
            "lock_sha256": lock_sha256(),
        }
        message = f"backfill the aggregates of {len(wanted)} events partition(s) ({run_id})"
        repo.commit(branch, message, metadata)
        done.commit_id = repo.merge(
            branch, into=DEFAULT_BRANCH, message=f"publish {message}", metadata=metadata, expected_head=base
        )
    finally:
        if repo.branch_exists(branch):
            repo.delete_branch(branch)
    log.info(
        "aggregates backfilled",
        extra={"commit": done.commit_id, "partitions": len(done.backfilled), "removed": len(gone), "base": base},
    )
    return done
