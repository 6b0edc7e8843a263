"""Hourly ingest: raw GCS objects -> contract check -> PII policy -> one lake commit per run.

One run handles the scheduled hour plus a lookback window (late files). It

1. lists raw objects for those hours and skips every (name, generation) already ingested, as
   recorded by marker files in the lake itself (``_ingest/sources/<object>/<generation>.json``);
2. parses and checks each new object against the data contract, quarantining what fails;
3. drops duplicate ids: against what is already published (on the raw ids, before the check)
   and within the run (after it);
4. applies the PII policy (tokenize customer ids, drop direct identifiers);
5. writes one parquet partition per source object on a run branch, plus quarantine files, source
   markers and a run manifest, commits with the accounting as metadata and merges into ``main``.

Partitions are named after the source object, so a new generation of an object overwrites
(supersedes) its earlier rows instead of adding to them. Nothing reaches ``main`` until the merge,
and a re-run of a finished hour finds nothing new and makes no commit.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import PurePosixPath

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from google.cloud import storage

from churnops.data import contract
from churnops.data.contract import AccountingError
from churnops.platform.alerts import Alert, AlertSink
from churnops.platform.buildinfo import git_sha, lock_sha256
from churnops.data.privacy import Tokenizer, apply_pii_policy
from churnops.platform.secrets import tokenization_key
from churnops.platform.settings import Settings
from churnops.platform.storage import ObjectRef, list_objects, read_object, storage_client
from churnops.data.versioning import DataRepository, MergeConflict, VersioningError, open_repository

log = logging.getLogger(__name__)

RAW_PREFIXES = {contract.EVENTS: "activity/events", contract.SUBSCRIPTIONS: "activity/subscriptions"}
ID_COLUMNS = {contract.EVENTS: "event_id", contract.SUBSCRIPTIONS: "record_id"}
SOURCES_PREFIX = "_ingest/sources"
RUNS_PREFIX = "_ingest/runs"
MAX_MERGE_ATTEMPTS = 3
QUARANTINE_INFO = ("_reason", "_line")


@dataclass
class ObjectReport:
    """What happened to one raw object."""

    name: str
    generation: int
    kind: str
    status: str  # "published" | "quarantined"
    rows_in: int = 0
    rows_published: int = 0
    rows_quarantined: int = 0
    duplicates_dropped: int = 0
    partition: str | None = None
    reason: str | None = None
    unknown_columns: list[str] = field(default_factory=list)
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
            "objects_ingested": len(self.objects),
            "objects_quarantined": sum(1 for obj in self.objects if obj.status == "quarantined"),
            "objects_skipped": self.objects_skipped,
        }

    def check_accounting(self) -> None:
        """Raise :class:`AccountingError` unless every row is accounted for, per object and in total."""
        for obj in self.objects:
            if obj.rows_in != obj.rows_published + obj.rows_quarantined + obj.duplicates_dropped:
                raise AccountingError(f"row accounting does not balance for {obj.name}: {asdict(obj)}")
        totals = self.accounting()
        if totals["rows_in"] != totals["rows_published"] + totals["rows_quarantined"] + totals["duplicates_dropped"]:
            raise AccountingError(f"row accounting does not balance: {totals}")


@dataclass
class StagedIngest:
    """An ingest run staged on its run branch, not yet committed (``branch`` is None if nothing was new)."""

    report: IngestReport
    branch: str | None
    metadata: dict[str, str]


@dataclass
class _Prepared:
    """One new object after parsing and the contract check, before dedup and the PII policy."""

    ref: ObjectRef
    kind: str
    report: ObjectReport
    valid: pd.DataFrame | None = None
    quarantined: pd.DataFrame | None = None


def hours_in_window(hour: datetime, lookback: int) -> list[datetime]:
    """The scheduled hour and the ``lookback`` hours before it, oldest first."""
    return [hour - timedelta(hours=offset) for offset in range(lookback, -1, -1)]


def hour_prefix(kind: str, hour: datetime) -> str:
    """Raw-bucket prefix of one kind for one hour."""
    return f"{RAW_PREFIXES[kind]}/{contract.hour_partition(hour)}/"


def partition_path(ref: ObjectRef, kind: str) -> str:
    """Lake path of the partition published from ``ref`` (stable across generations)."""
    hour = contract.hour_of(ref.name)
    stem = PurePosixPath(ref.name).name.split(".")[0]
    return f"{kind}/{contract.hour_partition(hour)}/{stem}.parquet"


def marker_path(ref: ObjectRef) -> str:
    """Lake path of the marker that records ``ref`` (name and generation) as ingested."""
    return f"{SOURCES_PREFIX}/{ref.name}/{ref.generation}.json"


def drop_ids(parsed: contract.ParsedObject, id_column: str, ids: set[str]) -> tuple[contract.ParsedObject, int]:
    """``parsed`` without the rows whose raw ``id_column`` value is in ``ids``, and how many went."""
    if not ids or id_column not in parsed.rows:
        return parsed, 0
    raw = parsed.rows[id_column]
    drop = (raw.notna() & raw.astype(str).isin(ids)).to_numpy()
    dropped = int(drop.sum())
    if not dropped:
        return parsed, 0
    keep = ~drop
    rest = contract.ParsedObject(
        rows=parsed.rows.loc[keep].reset_index(drop=True),
        malformed=parsed.malformed,
        rows_in=parsed.rows_in - dropped,
        line_numbers=parsed.lines()[keep],
    )
    return rest, dropped


def _to_parquet(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buffer, compression="zstd")
    return buffer.getvalue()


class IngestRun:
    """One ingest run. Build with :func:`ingest_hour`, or directly to inject parts in tests."""

    def __init__(
        self,
        settings: Settings,
        repo: DataRepository,
        client: storage.Client,
        tokenizer: Tokenizer,
        alerts: AlertSink,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.client = client
        self.tokenizer = tokenizer
        self.alerts = alerts
        self.now = now

    # -- listing -------------------------------------------------------------------------------

    def new_objects(self, hours: Iterable[datetime], report: IngestReport) -> list[ObjectRef]:
        """Raw objects in the window whose (name, generation) has no marker on ``main``."""
        fresh = []
        for hour in hours:
            for kind in RAW_PREFIXES:
                prefix = hour_prefix(kind, hour)
                done = set(self.repo.list_paths("main", f"{SOURCES_PREFIX}/{prefix}"))
                for ref in list_objects(self.client, self.settings.raw_bucket, prefix):
                    report.objects_listed += 1
                    if marker_path(ref) in done:
                        report.objects_skipped += 1
                    else:
                        fresh.append(ref)
        return fresh

    # -- per object ------------------------------------------------------------------------------

    def prepare(self, ref: ObjectRef, run_id: str, published: set[str]) -> _Prepared:
        """Read and parse one object, drop rows whose id is already published, check the rest.

        Ids are matched on the raw values before the contract check, so an event a producer
        sends again in a later hour's file counts as a duplicate, not as out of its hour.
        """
        kind = contract.kind_of(ref.name)
        report = ObjectReport(name=ref.name, generation=ref.generation, kind=kind, status="published")
        prepared = _Prepared(ref=ref, kind=kind, report=report)
        try:
            parsed = contract.parse_object(ref.name, read_object(self.client, ref))
        except contract.UnreadableObject as error:
            report.status, report.reason = "quarantined", f"unreadable object: {error.reason}"
            return prepared
        parsed, report.duplicates_dropped = drop_ids(parsed, ID_COLUMNS[kind], published)
        result = contract.check(parsed, kind, contract.hour_of(ref.name), self.now())
        report.rows_in = result.rows_in + report.duplicates_dropped
        report.unknown_columns = list(result.unknown_columns)
        report.corrections = [asdict(c) for c in result.corrections]
        if result.missing_required:
            report.status = "quarantined"
            report.reason = f"missing required column(s): {', '.join(result.missing_required)}"
        prepared.valid, prepared.quarantined = result.valid, result.quarantined
        report.rows_quarantined = len(result.quarantined)
        log.debug("object checked", extra={"object": ref.name, "run_id": run_id, "rows_in": report.rows_in})
        return prepared

    def published_ids(self, kind: str, hours: Iterable[datetime], superseded: set[str]) -> set[str]:
        """Ids already on ``main`` for these hours, except rows of objects being re-ingested."""
        ids: set[str] = set()
        for hour in hours:
            prefix = f"{kind}/{contract.hour_partition(hour)}/"
            if not self.repo.list_paths("main", prefix):
                continue
            table = self.repo.read_table("main", prefix, columns=[ID_COLUMNS[kind], "_source_object"]).to_pandas()
            if table.empty:
                continue
            keep = ~table["_source_object"].isin(superseded)
            ids.update(table.loc[keep, ID_COLUMNS[kind]].astype(str))
        return ids

    def published_ids_by_kind(self, fresh: list[ObjectRef], hours: list[datetime]) -> dict[str, set[str]]:
        """Published ids per kind for the window and the hours of the new objects (late files)."""
        check_hours = sorted(set(hours) | {contract.hour_of(ref.name) for ref in fresh})
        superseded = {ref.name for ref in fresh}
        return {kind: self.published_ids(kind, check_hours, superseded) for kind in ID_COLUMNS}

    @staticmethod
    def deduplicate_within_run(prepared: list[_Prepared]) -> None:
        """Drop valid rows whose id an earlier row of this run already has; count them per object."""
        for kind, id_column in ID_COLUMNS.items():
            items = [p for p in prepared if p.kind == kind and p.valid is not None and p.report.status == "published"]
            if not items:
                continue
            ids = pd.concat([item.valid[id_column] for item in items if item.valid is not None], ignore_index=True)
            duplicated = ids.duplicated(keep="first").to_numpy()
            start = 0
            for item in items:
                valid = item.valid if item.valid is not None else pd.DataFrame()
                dup = duplicated[start:start + len(valid)]
                start += len(valid)
                if dup.any():
                    item.report.duplicates_dropped += int(dup.sum())
                    item.valid = valid.loc[~dup]

    def quarantine_rows(self, item: _Prepared, quarantined: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``item`` that failed, with the PII policy applied (raw values never reach the lake)."""
        # Only contract columns and the diagnosis: the raw text of a malformed line and columns the
        # contract does not know (which could hold anything) stay in the raw bucket, for replay.
        known = {*contract.CONTRACT_COLUMNS[item.kind], *QUARANTINE_INFO}
        keep = [column for column in quarantined.columns if column in known]
        rows = apply_pii_policy(quarantined[keep].astype("string"), item.kind, self.tokenizer)
        rows["_source_object"] = item.ref.name
        rows["_source_generation"] = str(item.ref.generation)
        return rows

    def stage(self, item: _Prepared, run_id: str) -> dict[str, bytes]:
        """Files this object contributes to the run branch."""
        files: dict[str, bytes] = {}
        report, ref = item.report, item.ref
        hour = contract.hour_of(ref.name)
        stem = PurePosixPath(ref.name).name.split(".")[0]
        qdir = f"quarantine/{item.kind}/{contract.hour_partition(hour)}"
        if report.status == "published" and item.valid is not None:
            published = apply_pii_policy(item.valid, item.kind, self.tokenizer)
            published["_source_object"] = ref.name
            published["_source_generation"] = ref.generation
            report.partition = partition_path(ref, item.kind)
            report.rows_published = len(published)
            files[report.partition] = _to_parquet(published)
        if item.quarantined is not None and report.rows_quarantined:
            files[f"{qdir}/{stem}@{ref.generation}.parquet"] = _to_parquet(self.quarantine_rows(item, item.quarantined))
        if report.status == "quarantined":
            detail = {"object": ref.name, "generation": ref.generation, "reason": report.reason, "run_id": run_id}
            files[f"{qdir}/{stem}@{ref.generation}.json"] = json.dumps(detail, indent=2).encode()
        marker = {k: v for k, v in asdict(report).items() if k != "corrections"}
        files[marker_path(ref)] = json.dumps(marker, sort_keys=True, indent=2).encode()
        return files

    # -- alerts --------------------------------------------------------------------------------

    def raise_alerts(self, report: IngestReport) -> None:
        """One alert per anomaly class seen in this run."""
        objs = report.objects

        def emit(kind: str, message: str, subset: list[ObjectReport], counts: dict[str, int]) -> None:
            if subset:
                alert = Alert(kind, message, counts, [o.name for o in subset], report.run_id)
                self.alerts.emit(alert)
                report.alerts.append(asdict(alert))

        unreadable = [o for o in objs if o.reason and o.reason.startswith("unreadable")]
        missing = [o for o in objs if o.reason and o.reason.startswith("missing required")]
        drift = [o for o in objs if o.unknown_columns]
        bad_rows = [o for o in objs if o.rows_quarantined and o not in missing]
        dups = [o for o in objs if o.duplicates_dropped]
        emit("unreadable_object", "objects could not be read and were quarantined whole", unreadable,
             {"objects": len(unreadable)})
        emit("missing_required_column", "objects lack a required column and were quarantined whole", missing,
             {"objects": len(missing), "rows": sum(o.rows_in for o in missing)})
        emit("schema_drift", "unknown columns were left out of the published data: "
             + ", ".join(sorted({c for o in drift for c in o.unknown_columns})), drift, {"objects": len(drift)})
        emit("quarantined_rows", "rows failed the contract and were quarantined", bad_rows,
             {"rows": sum(o.rows_quarantined for o in bad_rows)})
        emit("duplicates_dropped", "duplicate ids were dropped", dups,
             {"rows": sum(o.duplicates_dropped for o in dups)})
        corrected = [o for o in objs if o.corrections]
        fixes: Counter[str] = Counter()
        for obj in corrected:
            for correction in obj.corrections:
                fixes[str(correction["kind"])] += int(str(correction["rows"]))
        emit("auto_corrected", "values were corrected to fit the contract: " + ", ".join(sorted(fixes)), corrected,
             dict(fixes))

    # -- the run -------------------------------------------------------------------------------

    def run(self, hour: datetime, lookback: int) -> IngestReport:
        """Ingest ``hour`` with ``lookback`` hours of late files. See the module docstring.

        A merge that conflicts (another run published meanwhile) is retried from the start, up to
        ``MAX_MERGE_ATTEMPTS`` times in all; then :class:`VersioningError` is raised.
        """
        for attempt in range(1, MAX_MERGE_ATTEMPTS + 1):
            try:
                return self._attempt(hour, lookback)
            except MergeConflict:
                log.warning("merge conflict: main moved during the run; retrying", extra={"attempt": attempt})
        raise VersioningError(f"ingest of {hour:%Y-%m-%dT%H} conflicted {MAX_MERGE_ATTEMPTS} times; run it again")

    def _attempt(self, hour: datetime, lookback: int) -> IngestReport:
        staged = self.stage_run(hour, lookback)
        if staged.branch is None:
            return staged.report
        try:
            staged.report.commit_id = self.publish(staged.branch, staged.metadata)
        except Exception:
            # A failed run drops its branch (an interrupted or killed one leaves it; main never sees it).
            self._drop_branch(staged.branch)
            raise
        self._drop_branch(staged.branch)
        log.info("ingest published",
                 extra={"hour": staged.report.hour, "commit": staged.report.commit_id, **staged.report.accounting()})
        return staged.report

    def stage_run(self, hour: datetime, lookback: int) -> StagedIngest:
        """Steps 1-4 and the upload of step 5: the run's files on a new run branch, uncommitted.

        Returns the branch (None when nothing is new: no branch is created) with the report and the
        commit metadata; :meth:`publish` commits and merges it.
        """
        run_id = uuid.uuid4().hex[:12]
        report = IngestReport(run_id=run_id, hour=f"{hour:%Y-%m-%dT%H}", lookback_hours=lookback)
        hours = hours_in_window(hour, lookback)
        fresh = self.new_objects(hours, report)
        if not fresh:
            log.info("nothing new to ingest", extra={"hour": report.hour, "objects_skipped": report.objects_skipped})
            return StagedIngest(report=report, branch=None, metadata={})
        published = self.published_ids_by_kind(fresh, hours)
        prepared = [self.prepare(ref, run_id, published[contract.kind_of(ref.name)]) for ref in fresh]
        self.deduplicate_within_run(prepared)
        files: dict[str, bytes] = {}
        for item in prepared:
            files.update(self.stage(item, run_id))
            report.objects.append(item.report)
        report.check_accounting()
        self.raise_alerts(report)
        files[f"{RUNS_PREFIX}/{report.hour}/{run_id}.json"] = json.dumps(asdict(report), indent=2).encode()

        branch = f"ingest-{hour:%Y%m%dT%H}-{run_id}"
        self.repo.create_branch(branch, source="main")
        try:
            self.repo.put_objects(branch, files)
            # A new generation of an unreadable object supersedes the partition of the old one.
            stale = [partition_path(p.ref, p.kind) for p in prepared if p.report.partition is None]
            existing = {path for kind in RAW_PREFIXES for path in self.repo.list_paths(branch, f"{kind}/")}
            if stale_existing := [path for path in stale if path in existing]:
                self.repo.delete_objects(branch, stale_existing)
        except Exception:
            self._drop_branch(branch)
            raise
        return StagedIngest(report=report, branch=branch, metadata=self.commit_metadata(report))

    def publish(self, branch: str, metadata: dict[str, str]) -> str:
        """Commit and merge a staged run branch (see :func:`publish_branch`)."""
        return publish_branch(self.repo, branch, metadata)

    def _drop_branch(self, branch: str) -> None:
        if self.repo.branch_exists(branch):
            self.repo.delete_branch(branch)

    def commit_metadata(self, report: IngestReport) -> dict[str, str]:
        """Commit metadata: sources with generations, accounting, schema and code versions."""
        sources = [f"gs://{self.settings.raw_bucket}/{o.name}#{o.generation}" for o in report.objects]
        return {
            "run_id": report.run_id,
            "hour": report.hour,
            "lookback_hours": str(report.lookback_hours),
            "sources": json.dumps(sources),
            "accounting": json.dumps(report.accounting(), sort_keys=True),
            "schema_versions": json.dumps(contract.SCHEMA_VERSIONS, sort_keys=True),
            "code_version": git_sha(self.settings),
            "lock_sha256": lock_sha256(),
            "tokenizer_key_id": self.tokenizer.key_id,
        }


def publish_branch(repo: DataRepository, branch: str, metadata: dict[str, str]) -> str:
    """Commit a staged run branch with its metadata and merge it into ``main``; return main's head.

    Raises :class:`MergeConflict` when ``main`` changed the same paths meanwhile; the objects then
    stay new (no marker reached ``main``) and the next run ingests them again.
    """
    repo.commit(branch, f"ingest {metadata.get('hour', '?')} ({metadata.get('run_id', '?')})", metadata)
    # The merge carries the same metadata, so main's head always describes what it published.
    return repo.merge(branch, into="main", message=f"publish ingest {metadata.get('hour', '?')}", metadata=metadata)


def ingest_run(settings: Settings, alerts: AlertSink | None = None) -> IngestRun:
    """An :class:`IngestRun` on the configured storage, lake (created if absent) and tokenization key."""
    repo = open_repository(settings)
    repo.ensure()
    return IngestRun(
        settings=settings,
        repo=repo,
        client=storage_client(settings),
        tokenizer=Tokenizer(tokenization_key(settings)),
        alerts=alerts or AlertSink(settings),
    )


def ingest_hour(settings: Settings, hour: datetime, lookback: int | None = None,
                alerts: AlertSink | None = None) -> IngestReport:
    """Run the ingest stage for ``hour`` against the configured storage, lake and secrets."""
    run = ingest_run(settings, alerts)
    return run.run(hour, settings.ingest_lookback_hours if lookback is None else lookback)


# -- the stage in two steps (the ingest pipeline's two tasks) --------------------------------------


def stage_hour(settings: Settings, hour: datetime, lookback: int | None = None) -> StagedIngest:
    """First step: stage ``hour`` (with ``lookback`` hours of late files) on a run branch, uncommitted."""
    return ingest_run(settings).stage_run(hour, settings.ingest_lookback_hours if lookback is None else lookback)


def publish_staged(settings: Settings, branch: str, metadata: dict[str, str]) -> str:
    """Second step: commit the run branch :func:`stage_hour` staged, merge it into ``main``, delete it.

    Returns main's head after the merge. On a merge conflict the branch is deleted and
    :class:`MergeConflict` raised: nothing was published, so the next run ingests the objects. On
    any other error the branch stays, so a retry of this step resumes it (a commit already made
    is not made twice).
    """
    repo = open_repository(settings)
    if not repo.branch_exists(branch):
        raise ValueError(f"no staged ingest branch {branch!r}: it was published or deleted already")
    try:
        commit = publish_branch(repo, branch, metadata)
    except MergeConflict:
        repo.delete_branch(branch)
        raise
    repo.delete_branch(branch)
    log.info("ingest published", extra={"hour": metadata.get("hour"), "commit": commit})
    return commit


def scheduled_hour(hour: str, scheduled_time: str) -> datetime:
    """The hour a scheduled ingest run handles: ``hour`` if given, else the hour before ``scheduled_time``.

    ``hour`` is ``YYYY-MM-DDTHH`` (or any ISO-8601 time, floored to its hour); ``scheduled_time`` is
    the RFC 3339 time KFP substitutes for its schedule-time placeholder (e.g.
    ``2026-11-01T06:00:00Z``): a run scheduled at 06:00 ingests 05:00-06:00, the last complete hour.
    Naive times are UTC.
    """
    if hour.strip():
        return _floor_hour(hour.strip(), "hour")
    text = scheduled_time.strip()
    if not text or text.startswith("{{"):
        raise ValueError("no hour given and no scheduled time substituted (the run is not a scheduled one): "
                         "pass the hour, e.g. 2026-11-01T05")
    return _floor_hour(text, "scheduled time") - timedelta(hours=1)


def _floor_hour(text: str, what: str) -> datetime:
    value = f"{text}:00" if len(text) == 13 else text
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"{what} {text!r} is not a time like 2026-11-01T05 or 2026-11-01T05:00:00Z") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
