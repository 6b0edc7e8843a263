"""An ingest run as the ingest pipeline runs it: plan, a task per group of objects (a fan-out), finish.

:func:`plan_run` lists the window's fresh objects, creates the run branch from ``main``'s head (the
*base*) and splits the objects into groups of about equal size; :func:`stage_group` stages one
group's objects on the branch (groups run at the same time, each in its own process) and leaves
the group's object reports and published ids at a run-scoped staging path on the branch;
:func:`finish_run` reads them in listing order, drops the ids that groups published twice (as one
sequential run would have; a partition it rewrites gets its aggregates again), writes the run's index
segments, manifest and head, and checks the branch. Each object's pre-aggregates are staged with it, summed
chunk by chunk. :meth:`churnops.data.ingest.IngestRun.stage_run` runs the three in one process.

Also the records the steps hand on: the reports of a run and of its objects, the staged run, the
plan and its groups (JSON, as KFP passes them between tasks).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnops.data import aggregates, contract, schema, subjects
from churnops.data.contract import AccountingError
from churnops.data.id_index import IdIndex
from churnops.data.run_ids import KEYS_SCHEMA, HashedIds, RunIds
from churnops.data.spool import PartitionSpool
from churnops.data.versioning import NotFoundError
from churnops.data.versioning.base import Content, close_files
from churnops.platform.storage import ObjectRef

if TYPE_CHECKING:  # the steps take the run (churnops.data.ingest imports this module)
    from churnops.data.ingest import IngestRun

log = logging.getLogger(__name__)

ID_COLUMNS = {schema.EVENTS: "event_id", schema.SUBSCRIPTIONS: "record_id"}
RUNS_PREFIX = "_ingest/runs"
HEAD_PATH = "_ingest/head.json"
STAGING_PREFIX = "_ingest/staging"


@dataclass
class ObjectReport:  # pylint: disable=too-many-instance-attributes  # one flat record, written as the marker
    """What happened to one raw object."""

    name: str
    generation: int
    kind: str
    status: str  # "published" | "quarantined"
    rows_in: int = 0
    rows_published: int = 0
    rows_quarantined: int = 0
    duplicates_dropped: int = 0
    rows_erased: int = 0  # rows of erased data subjects, dropped (churnops.data.subjects.drop_erased)
    partition: str | None = None
    reason: str | None = None
    unknown_columns: list[str] = field(default_factory=list)
    """Keyed digests (``column_<hex>``) of the names of columns the contract does not know."""
    corrections: list[dict[str, object]] = field(default_factory=list)


@dataclass
class IngestReport:
    """The outcome of one ingest run; also written to the lake as the run manifest."""

    run_id: str
    hour: str
    lookback_hours: int
    commit_id: str | None = None
    objects_listed: int = 0
    objects_skipped: int = 0
    objects: list[ObjectReport] = field(default_factory=list)
    alerts: list[dict[str, object]] = field(default_factory=list)
    unknown_prefixes: list[str] = field(default_factory=list)

    def total(self, attribute: str) -> int:
        """Sum of one per-object counter."""
        return sum(int(getattr(obj, attribute)) for obj in self.objects)

    @property
    def rows_in(self) -> int:
        """Rows read from the new objects (parsed lines, malformed ones included)."""
        return self.total("rows_in")

    def accounting(self) -> dict[str, int]:
        """The run's row accounting."""
        return {
            "rows_in": self.rows_in,
            "rows_published": self.total("rows_published"),
            "rows_quarantined": self.total("rows_quarantined"),
            "duplicates_dropped": self.total("duplicates_dropped"),
            "rows_erased": self.total("rows_erased"),
            "objects_ingested": len(self.objects),
            "objects_quarantined": sum(1 for obj in self.objects if obj.status == "quarantined"),
            "objects_skipped": self.objects_skipped,
        }

    def check_accounting(self) -> None:
        """Raise :class:`AccountingError` unless every row is accounted for, per object and in total."""
        for obj in self.objects:
            if obj.rows_in != obj.rows_published + obj.rows_quarantined + obj.duplicates_dropped + obj.rows_erased:
                raise AccountingError(f"row accounting does not balance for {obj.name}: {asdict(obj)}")
        totals = self.accounting()
        if totals["rows_in"] != (
            totals["rows_published"] + totals["rows_quarantined"] + totals["duplicates_dropped"] + totals["rows_erased"]
        ):
            raise AccountingError(f"row accounting does not balance: {totals}")


@dataclass
class StagedIngest:
    """An ingest run staged on its run branch, not yet committed (``branch`` is None if nothing was new)."""

    report: IngestReport
    branch: str | None
    metadata: dict[str, str]
    superseded: list[str] = field(default_factory=list)  # partitions of earlier generations deleted on the branch


@dataclass
class ListedObject:
    """One new raw object as listed: its kind and hour come from the listing prefix."""

    ref: ObjectRef
    kind: str
    hour: datetime
    earlier_markers: list[str] = field(default_factory=list)  # markers of earlier generations of this name
    name_error: str | None = None  # why the name is not a raw object name of the contract


@dataclass
class IngestGroup:  # pylint: disable=too-many-instance-attributes  # one flat record, a ParallelFor item
    """One group of a run's fresh objects, staged on the run branch by one task (:func:`stage_group`).

    Written as JSON text (:meth:`to_json`): the ingest pipeline fans out over these, and KFP hands the
    numbers in a list over as floats, too few digits for a GCS generation.
    """

    run_id: str
    hour: str
    lookback_hours: int
    branch: str
    base: str
    number: int
    superseded: list[str]
    """Every fresh object of the run that replaces an earlier generation (its published ids do not count)."""
    sources: list[tuple[int, ListedObject]]
    """The group's objects, each with its position in the run's listing, in that order."""

    @property
    def report_path(self) -> str:
        """Where the group's object reports are staged on the run branch, for the finish step."""
        return f"{STAGING_PREFIX}/{self.run_id}/{self.number}.json"

    def keys_path(self, position: int) -> str:
        """Where the ids the object at ``position`` published (with their record hours) are staged."""
        return f"{STAGING_PREFIX}/{self.run_id}/{self.number}/{position}.parquet"

    def to_dict(self) -> dict[str, object]:
        """The group as JSON values."""
        return {
            **{name: getattr(self, name) for name in ("run_id", "hour", "lookback_hours", "branch", "base", "number")},
            "superseded": list(self.superseded),
            "sources": [_source_to_dict(position, source) for position, source in self.sources],
        }

    def to_json(self) -> str:
        """The group as JSON text."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestGroup:
        """The group :meth:`to_dict` gave."""
        return cls(
            run_id=str(data["run_id"]),
            hour=str(data["hour"]),
            lookback_hours=int(data["lookback_hours"]),
            branch=str(data["branch"]),
            base=str(data["base"]),
            number=int(data["number"]),
            superseded=[str(name) for name in data["superseded"]],
            sources=[_source_from_dict(item) for item in data["sources"]],
        )

    @classmethod
    def from_json(cls, text: str) -> IngestGroup:
        """The group :meth:`to_json` gave."""
        return cls.from_dict(json.loads(text))


@dataclass
class IngestPlan:  # pylint: disable=too-many-instance-attributes  # one flat record, a task output
    """What a run ingests: its fresh objects in groups on a run branch made from ``base``, and what the listing
    found (``branch`` is None and no group exists when nothing was new). See :func:`plan_run`."""

    run_id: str
    hour: str
    lookback_hours: int
    base: str
    branch: str | None
    objects_listed: int
    objects_skipped: int
    unknown_prefixes: list[str]
    alerts: list[dict[str, object]]
    """The alerts the plan raised (only when nothing was new; else the finish step raises the run's)."""
    groups: list[IngestGroup]

    def report(self) -> IngestReport:
        """The run's report as the listing left it: no object staged yet."""
        return IngestReport(
            run_id=self.run_id,
            hour=self.hour,
            lookback_hours=self.lookback_hours,
            objects_listed=self.objects_listed,
            objects_skipped=self.objects_skipped,
            alerts=list(self.alerts),
            unknown_prefixes=list(self.unknown_prefixes),
        )

    def sources(self) -> list[ListedObject]:
        """Every fresh object of the run, in listing order."""
        return [source for _, source in sorted((s for group in self.groups for s in group.sources), key=_position)]

    def to_json(self) -> str:
        """The plan as JSON text."""
        data = {item.name: getattr(self, item.name) for item in fields(self) if item.name != "groups"}
        return json.dumps({**data, "groups": [group.to_dict() for group in self.groups]}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> IngestPlan:
        """The plan :meth:`to_json` gave."""
        data = json.loads(text)
        return cls(
            run_id=str(data["run_id"]),
            hour=str(data["hour"]),
            lookback_hours=int(data["lookback_hours"]),
            base=str(data["base"]),
            branch=None if data["branch"] is None else str(data["branch"]),
            objects_listed=int(data["objects_listed"]),
            objects_skipped=int(data["objects_skipped"]),
            unknown_prefixes=[str(prefix) for prefix in data["unknown_prefixes"]],
            alerts=list(data["alerts"]),
            groups=[IngestGroup.from_dict(group) for group in data["groups"]],
        )


def hours_in_window(hour: datetime, lookback: int) -> list[datetime]:
    """The scheduled hour and the ``lookback`` hours before it, oldest first."""
    return [hour - timedelta(hours=offset) for offset in range(lookback, -1, -1)]


def _position(item: tuple[int, ListedObject]) -> int:
    return item[0]


def _source_to_dict(position: int, source: ListedObject) -> dict[str, object]:
    return {
        "position": position,
        "ref": asdict(source.ref),
        "kind": source.kind,
        "hour": source.hour.isoformat(),
        "earlier_markers": list(source.earlier_markers),
        "name_error": source.name_error,
    }


def _source_from_dict(data: dict[str, Any]) -> tuple[int, ListedObject]:
    ref = data["ref"]
    source = ListedObject(
        ref=ObjectRef(
            bucket=str(ref["bucket"]),
            name=str(ref["name"]),
            generation=int(ref["generation"]),
            size=int(ref["size"]),
            content_encoding=ref["content_encoding"],
        ),
        kind=str(data["kind"]),
        hour=datetime.fromisoformat(str(data["hour"])),
        earlier_markers=[str(marker) for marker in data["earlier_markers"]],
        name_error=data["name_error"],
    )
    return int(data["position"]), source


def split_into_groups(fresh: list[ListedObject], count: int) -> list[list[tuple[int, ListedObject]]]:
    """``fresh`` (with each object's position) in at most ``count`` groups of about equal size in bytes: each
    object, largest first, goes to the group with the fewest bytes so far; each group keeps listing order."""
    members: list[list[int]] = [[] for _ in range(min(max(count, 1), len(fresh)))]
    loads = [0] * len(members)
    for position in sorted(range(len(fresh)), key=lambda index: (-fresh[index].ref.size, index)):
        lightest = min(range(len(members)), key=lambda group: (loads[group], group))
        members[lightest].append(position)
        loads[lightest] += fresh[position].ref.size
    return [[(position, fresh[position]) for position in sorted(group)] for group in members]


def _report_from_dict(data: dict[str, Any]) -> IngestReport:
    """An :class:`IngestReport` from its manifest (``asdict``)."""
    objects = [ObjectReport(**obj) for obj in data["objects"]]
    return IngestReport(**{**data, "objects": objects})


# -- the steps ------------------------------------------------------------------------------------------


def plan_run(run: IngestRun, hour: datetime, lookback: int, pipeline_run: str = "", fanout: int = 1) -> IngestPlan:
    """Step 1: list the window's fresh objects, create the run branch from ``main``'s head (the *base*) and
    split the objects into at most ``fanout`` groups of about equal size (:func:`split_into_groups`).

    When nothing is new no branch is created and the listing's alerts are raised here. ``pipeline_run``:
    see :meth:`~churnops.data.ingest.IngestRun.stage_run`.
    """
    attempts = f"ingest-{hour:%Y%m%dT%H}-"
    if pipeline_run:
        attempts += f"{hashlib.sha256(pipeline_run.encode()).hexdigest()[:8]}-"
        for left in [name for name in run.repo.branches() if name.startswith(attempts)]:
            run.repo.delete_branch(left)
            log.info("branch of a lost attempt removed", extra={"branch": left})
    run_id = uuid.uuid4().hex[:12]
    report = IngestReport(run_id=run_id, hour=f"{hour:%Y-%m-%dT%H}", lookback_hours=lookback)
    hours = hours_in_window(hour, lookback)
    base = run.repo.head("main")  # everything the run reads is this commit; the merge compares against it
    fresh = run.new_objects(hours, report, base)
    report.unknown_prefixes = run.unknown_prefixes(hours)
    plan = IngestPlan(
        run_id=run_id,
        hour=report.hour,
        lookback_hours=lookback,
        base=base,
        branch=None,
        objects_listed=report.objects_listed,
        objects_skipped=report.objects_skipped,
        unknown_prefixes=report.unknown_prefixes,
        alerts=[],
        groups=[],
    )
    if not fresh:
        run.raise_alerts(report)
        plan.alerts = report.alerts
        log.info("nothing new to ingest", extra={"hour": report.hour, "objects_skipped": report.objects_skipped})
        return plan
    subjects.check_key(run.repo, run.tokenizer, base)  # a new key would split every customer in two
    superseded = sorted({source.ref.name for source in fresh if source.earlier_markers})
    branch = f"{attempts}{run_id}"
    run.repo.create_branch(branch, source=base)
    plan.branch = branch
    plan.groups = [
        IngestGroup(run_id, report.hour, lookback, branch, base, number, superseded, members)
        for number, members in enumerate(split_into_groups(fresh, fanout))
    ]
    log.info("ingest planned", extra={"hour": report.hour, "objects": len(fresh), "groups": len(plan.groups)})
    return plan


def stage_group(run: IngestRun, group: IngestGroup) -> str:
    """Steps 2-5 for one group's objects (:meth:`~churnops.data.ingest.IngestRun.stage_objects`) on the run
    branch, and the group's object reports and published ids (with their record hours) at run-scoped staging
    paths on the branch, which :func:`finish_run` reads. Returns the path of the staged reports.

    Groups of one run may be staged at the same time (each by its own process). A group's in-run
    duplicates are those of its own earlier objects; :func:`finish_run` drops those across groups.
    A retried group writes the same files again.
    """
    run.tokens = run.tokenizer.remembering()  # bounded by the group's distinct customer ids
    run.erased = subjects.erased_tokens(run.repo, run.tokenizer.key_id, group.base)
    report = IngestReport(run_id=group.run_id, hour=group.hour, lookback_hours=group.lookback_hours)
    sources = [source for _, source in group.sources]
    with contextlib.ExitStack() as stack:
        indexes = {
            kind: stack.enter_context(IdIndex(run.repo, group.base, kind, column, schema.RECORD_TIME_COLUMNS[kind]))
            for kind, column in ID_COLUMNS.items()
        }
        published = {kind: stack.enter_context(RunIds()) for kind in ID_COLUMNS}
        run.stage_objects(
            group.branch,
            sources,
            indexes,
            set(group.superseded),
            report,
            published,
            lambda number: group.keys_path(group.sources[number][0]),
        )
        staged = [{"position": position, **asdict(obj)} for (position, _), obj in zip(group.sources, report.objects)]
        run.repo.put_objects(group.branch, {group.report_path: json.dumps(staged).encode()})
    log.info("ingest group staged", extra={"run_id": group.run_id, "group": group.number, "objects": len(sources)})
    return group.report_path


def finish_run(run: IngestRun, plan: IngestPlan) -> StagedIngest:
    """The rest of step 5 once every group is staged: read the groups' reports and ids in listing order, drop
    the ids an object published that an object listed before it in another group also published (as a
    sequential run would have: :func:`drop_across_groups`; a rewritten partition's aggregates are written
    again), then write the id index segments, manifest and ``_ingest/head.json``, delete superseded partitions
    and the staging files, and check the branch (``verify_lake``). The result is what
    :meth:`~churnops.data.ingest.IngestRun.stage_run` stages with one group.

    A retry after a finish that completed (its staging files are gone, its manifest is there) returns the
    same run from its manifest, checked again.
    """
    report = plan.report()
    if plan.branch is None:
        return StagedIngest(report=report, branch=None, metadata={})
    branch, base, run_id = plan.branch, plan.base, plan.run_id
    manifest = f"{RUNS_PREFIX}/{report.hour}/{run_id}.json"
    staging = run.repo.list_paths(branch, f"{STAGING_PREFIX}/{run_id}/")
    if not staging and manifest in run.repo.list_paths(branch, manifest):
        report = _report_from_dict(json.loads(run.repo.get_object(branch, manifest)))
        run.verify_lake(branch, report, [])
        return StagedIngest(report=report, branch=branch, metadata=run.commit_metadata(report, base))
    fresh = plan.sources()
    report.objects = _staged_reports(run, branch, plan)
    earlier = run.earlier_partitions(fresh, base)
    with contextlib.ExitStack() as stack:
        indexes = {
            kind: stack.enter_context(IdIndex(run.repo, base, kind, column, schema.RECORD_TIME_COLUMNS[kind]))
            for kind, column in ID_COLUMNS.items()
        }
        # one group dropped every repeat itself: its ids are only written to the index, never looked up
        published = {kind: stack.enter_context(RunIds(lookups=len(plan.groups) > 1)) for kind in ID_COLUMNS}
        drop_across_groups(run, branch, plan, report, published)
        report.check_accounting()
        files, index_deleted = run.index_changes(indexes, published, fresh, earlier, base, run_id)
    new_partitions = {obj.partition for obj in report.objects}
    stale = sorted({path for paths in earlier.values() for path in paths} - new_partitions)
    run.raise_alerts(report)
    files[manifest] = json.dumps(asdict(report), indent=2).encode()
    # Every run rewrites this file, so two runs that started from the same commit always
    # conflict when the second merges (the compare-and-set the lakeFS merge alone lacks).
    files[HEAD_PATH] = json.dumps({"run_id": run_id, "hour": report.hour, "base": base}).encode()
    try:
        run.repo.put_objects(branch, files)
    finally:
        close_files(files)
    stale = [path for path in stale if path in run.repo.list_paths(branch, path)]
    index_deleted.extend(aggregates.superseded(run.repo, branch, stale))  # their aggregates go too
    run.repo.delete_objects(branch, [*stale, *index_deleted, *staging])
    run.verify_lake(branch, report, stale)
    return StagedIngest(report=report, branch=branch, metadata=run.commit_metadata(report, base), superseded=stale)


def _staged_reports(run: IngestRun, branch: str, plan: IngestPlan) -> list[ObjectReport]:
    """The object reports every group of ``plan`` staged, in listing order (:class:`AccountingError` when a
    group or an object is missing)."""
    staged: dict[int, ObjectReport] = {}
    for group in plan.groups:
        try:
            entries = json.loads(run.repo.get_object(branch, group.report_path))
        except NotFoundError as error:
            raise AccountingError(f"group {group.number} of ingest run {plan.run_id} was not staged") from error
        for entry in entries:
            position = int(entry.pop("position"))
            staged[position] = ObjectReport(**entry)
    positions = sorted(position for group in plan.groups for position, _ in group.sources)
    if sorted(staged) != positions:
        raise AccountingError(f"ingest run {plan.run_id}: the groups staged objects {sorted(staged)}, not {positions}")
    return [staged[position] for position in positions]


def drop_across_groups(
    run: IngestRun, branch: str, plan: IngestPlan, report: IngestReport, published: dict[str, RunIds]
) -> None:
    """Drop from each object's partition the ids that an object listed before it, in another group, also
    published, moving those rows from ``rows_published`` to ``duplicates_dropped`` in its report (and
    marker). Adds the ids each object publishes to ``published`` (per kind), in listing order.

    A sequential run drops an id every earlier object published; a group drops those of its own earlier
    objects (and an object's own repeats), so an id staged twice is one an earlier object of another group
    staged, the first of which keeps it; ids added to a ``published`` kept without lookups (one group: the
    caller's choice) are not looked up. The staged ids are read a row group (a chunk of the object) at a
    time. The rows' counts come from the staged ids, so a retry (whose partitions hold none of them) counts
    the same.
    """
    groups = {position: group for group in plan.groups for position, _ in group.sources}
    sources = dict(source for group in plan.groups for source in group.sources)
    for position, obj in zip(sorted(groups), report.objects):
        if obj.partition is None:
            continue
        seen = published[obj.kind]
        gone: list[pa.Array] = []
        with run.repo.open_object(branch, groups[position].keys_path(position)) as stored:
            staged = pq.ParquetFile(stored)
            for number in range(staged.num_row_groups):
                keys = staged.read_row_group(number).cast(KEYS_SCHEMA)
                if not seen.lookups:  # one group, which dropped every repeat: nothing to look up
                    seen.add(obj.name, keys.column("id").combine_chunks(), keys.column("hour").combine_chunks())
                    continue
                ids = HashedIds.of(keys.column("id").combine_chunks())
                repeated = seen.repeated(ids)
                if repeated.any():
                    gone.append(ids.ids.filter(pa.array(repeated)))
                    keys, ids = keys.filter(pa.array(~repeated)), ids.filter(~repeated)
                seen.add(obj.name, ids, keys.column("hour").combine_chunks())
        dropped = sum(len(ids) for ids in gone)
        if dropped:
            obj.rows_published -= dropped
            obj.duplicates_dropped += dropped
            files = {
                **run.object_files(sources[position], obj, plan.run_id),
                **_without_ids(run, branch, obj.partition, obj.kind, pa.concat_arrays(gone)),
            }
            try:
                run.repo.put_objects(branch, files)
            finally:
                close_files(files)


def _without_ids(run: IngestRun, branch: str, partition: str, kind: str, ids: pa.Array) -> dict[str, Content]:
    """``kind``'s ``partition`` at ``branch`` without the rows whose id is in ``ids``, and for events its
    pre-aggregates again: read, filtered and written a row group at a time (each written as one, as the run
    wrote them), the partition to a temporary file (the caller closes it)."""
    id_column = ID_COLUMNS[kind]
    with run.repo.open_object(branch, partition) as source, PartitionSpool(kind) as rewritten:
        stored = pq.ParquetFile(source)
        for number in range(stored.num_row_groups):
            table = stored.read_row_group(number)
            column = table.column(id_column)
            drop = contract.arrow_call("is_in", column, options=pc.SetLookupOptions(ids.cast(column.type)))
            rewritten.append(table.filter(contract.arrow_call("invert", drop)))
        if not stored.num_row_groups:
            rewritten.append(stored.schema_arrow.empty_table())
        rewritten.wait()
        files: dict[str, Content] = {partition: rewritten.spool.detach()}
        if rewritten.summary is not None:
            files[aggregates.aggregates_path(partition)] = rewritten.summary.file()
        return files
