"""Hourly ingest: raw GCS objects -> contract check -> PII policy -> one lake commit per run.

One run handles the scheduled hour plus a lookback window (late files). It

1. lists raw objects for those hours and skips every (name, generation) already ingested, as
   recorded by marker files in the lake itself (``_ingest/sources/<object>/<generation>.json``);
   an object whose name the contract does not know is quarantined whole (not read), and a
   prefix the contract does not know raises an alert;
2. parses and checks each new object against the data contract, quarantining what fails;
3. drops duplicate ids: against everything already published (the lake's id index, see
   :mod:`churnops.data.id_index`, on the raw ids, before the check) and within the run (after it);
4. applies the PII policy (tokenize customer ids, drop direct identifiers); names of columns the
   contract does not know are data (a CSV without a header row makes values into names), so
   reports and alerts carry keyed digests of them, never the names;
5. writes one parquet partition per source object on a run branch, plus quarantine files, source
   markers, the id index segments it adds or changes, the hourly pre-aggregates of each events partition
   (:mod:`churnops.data.aggregates`) and a run manifest; checks that the branch holds
   exactly the rows the accounting claims; commits with the accounting as metadata and merges
   into ``main`` with a compare-and-set on the commit the run started from.

Partitions are named after the source object's full file name, so two objects never share one
and a new generation of an object overwrites (supersedes) its earlier rows instead of adding to
them. Nothing reaches ``main`` until the merge, and a re-run of a finished hour finds nothing new
and makes no commit.

The ingest pipeline runs the stage as tasks: a plan, one task per group of the fresh objects (a fan-out)
and a finish that makes the branch what one sequential run stages (:mod:`churnops.data.ingest_steps`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import PurePosixPath
from typing import IO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from google.cloud import storage

from churnops.data import aggregates, contract, id_index, ingest_steps, naming, parse, schema, subjects
from churnops.data.contract import AccountingError
from churnops.data.id_index import IdIndex
from churnops.data.ingest_steps import ID_COLUMNS, IngestReport, ObjectReport, StagedIngest
from churnops.data.ingest_steps import ListedObject as _Source  # the name the run's per-object steps use
from churnops.data.opening import OneAhead, Opened, open_object
from churnops.data.privacy import Tokenizer, apply_pii_policy, apply_pii_policy_to_table, lake_tokenizer
from churnops.data.run_ids import KEYS_SCHEMA, HashedIds, RunIds
from churnops.data.spool import ParquetSpool, PartitionSpool
from churnops.data.tempfiles import temporary_file
from churnops.data.versioning import DataRepository, MergeConflict, NotFoundError, VersioningError, open_repository
from churnops.data.versioning.base import Content, check_path, close_files
from churnops.platform.alerts import Alert, AlertSink
from churnops.platform.buildinfo import git_sha, lock_sha256
from churnops.platform.settings import Settings
from churnops.platform.storage import ObjectRef, list_objects, list_prefixes, storage_client, storage_errors

log = logging.getLogger(__name__)

RAW_ROOT = "activity/"
RAW_PREFIXES = {schema.EVENTS: "activity/events", schema.SUBSCRIPTIONS: "activity/subscriptions"}
SOURCES_PREFIX = "_ingest/sources"
MAX_MERGE_ATTEMPTS = 3
QUARANTINE_INFO = ("_reason", "_line")
_DAY = re.compile(r"dt=\d{4}-\d{2}-\d{2}/")
_HOUR = re.compile(r"hr=(?:[01]\d|2[0-3])/")


@dataclass
class _Staged:
    """One object's part of a run: its report and its files (the partition as its open temporary file, which
    :meth:`IngestRun.stage_objects` closes once written)."""

    report: ObjectReport
    files: dict[str, Content]
    keys: IO[bytes] | None = None
    """The ids it publishes with their record hours (:data:`KEYS_SCHEMA`, a row group per chunk; the staged ids,
    :func:`~churnops.data.ingest_steps.stage_group`); None if it publishes nothing."""

    def close(self) -> None:
        """Close its open files (once written, or when they never will be)."""
        close_files(self.files)
        if self.keys is not None:
            self.keys.close()


class _NewColumns(Exception):
    """A chunk has contract columns the object's earlier chunks lack: read the object again knowing them."""

    def __init__(self, columns: frozenset[str]) -> None:
        super().__init__(sorted(columns))
        self.columns = columns


def hour_prefix(kind: str, hour: datetime) -> str:
    """Raw-bucket prefix of one kind for one hour."""
    return f"{RAW_PREFIXES[kind]}/{naming.hour_partition(hour)}/"


def partition_path(ref: ObjectRef, kind: str) -> str:
    """Lake path of the partition published from ``ref``: the object's full file name, so it is
    stable across generations and no two objects share one."""
    hour = naming.hour_of(ref.name)
    return f"{kind}/{naming.hour_partition(hour)}/{PurePosixPath(ref.name).name}.parquet"


def _name_digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


def marker_path(ref: ObjectRef) -> str:
    """Lake path of the marker that records ``ref`` (name and generation) as ingested.

    An object name that is not a valid lake path (empty or ``.``/``..`` parts) is recorded under
    a digest of the name, beside the markers of its hour.
    """
    path = f"{SOURCES_PREFIX}/{ref.name}/{ref.generation}.json"
    try:
        return check_path(path)
    except ValueError:
        parts = list(itertools.takewhile(lambda part: part not in ("", ".", ".."), ref.name.split("/")[:-1]))
        return "/".join([SOURCES_PREFIX, *parts, f"_unrecognised-{_name_digest(ref.name)}", f"{ref.generation}.json"])


def drop_ids(parsed: parse.ParsedObject, id_column: str, ids: set[str]) -> tuple[parse.ParsedObject, int]:
    """``parsed`` without the rows whose raw ``id_column`` value is in ``ids``, and how many went."""
    if not ids or id_column not in parsed.rows:
        return parsed, 0
    drop = _raw_ids(parsed.rows[id_column]).isin(ids).to_numpy()
    dropped = int(drop.sum())
    if not dropped:
        return parsed, 0
    keep = ~drop
    rest = parse.ParsedObject(
        rows=parsed.rows.loc[keep].reset_index(drop=True),
        malformed=parsed.malformed,
        rows_in=parsed.rows_in - dropped,
        line_numbers=parsed.lines()[keep],
    )
    return rest, dropped


def _raw_ids(column: pd.Series) -> pd.Series:
    """Raw id values as the stripped text they are published as (nulls stay null, so they match nothing).

    Text only (Arrow strings) is stripped by pyarrow, as the contract does, and stays Arrow strings (no
    Python string per id); other raw values (JSON numbers among the ids) are stripped value by value.
    """
    if isinstance(column.array, pd.arrays.ArrowStringArray):
        stripped = contract.arrow_call("utf8_trim_whitespace", _arrow_strings(column))
        return pd.Series(pd.arrays.ArrowStringArray(stripped), index=column.index)
    present = column.notna()
    return column.astype(object).where(~present, column[present].astype(str).str.strip()).where(present, None)


def _arrow_strings(column: pd.Series) -> pa.Array:
    """A text column's values as one Arrow ``large_string`` array, the type pandas' Arrow-backed strings
    hold (no copy for those, so the ids a run keeps and their index keys share one buffer)."""
    values = pa.array(column.array) if isinstance(column.dtype, pd.StringDtype) else pa.array(column, from_pandas=True)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.cast(pa.large_string())


def _add_corrections(merged: dict[tuple[str, str, str], dict[str, object]], more: list[contract.Correction]) -> None:
    """Add one chunk's corrections to the object's: rows summed per kind, column and detail."""
    for correction in more:
        entry = merged.setdefault(
            (correction.kind, correction.column, correction.detail), {**asdict(correction), "rows": 0}
        )
        entry["rows"] = int(str(entry["rows"])) + correction.rows


def _drop_seen(valid: pd.DataFrame, id_column: str, seen: RunIds) -> tuple[pd.DataFrame, HashedIds, int]:
    """``valid`` without the rows whose id an earlier row has (of ``seen``, the ids published before it,
    or of ``valid`` itself), the ids of the rows kept (hashed), and how many went.

    The ids are hashed once (:class:`HashedIds`): repeats within ``valid`` are found among the ids that share a
    hash, and ``seen`` looks them up by those hashes (:meth:`RunIds.repeated`), so a chunk costs a hash of its own
    ids and a binary search of the hashes of the ids published before it, never a set of everything published
    so far.
    """
    ids = HashedIds.of(_arrow_strings(valid[id_column]))
    dup = ids.repeats() | seen.repeated(ids)
    dropped = int(dup.sum())
    if dropped:
        valid = valid.loc[~dup].reset_index(drop=True)
        ids = ids.filter(~dup)
    return valid, ids, dropped


class IngestRun:
    """One ingest run. Build with :func:`ingest_hour`, or directly to inject parts in tests."""

    chunk_bytes = parse.CHUNK_BYTES
    """JSON Lines text read, checked and written at a time (:func:`churnops.data.parse.iter_object`)."""
    chunk_rows = parse.CHUNK_ROWS
    """CSV records read, checked and written at a time."""

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
        self.tokens = tokenizer.remembering()
        """What tokenizes rows: ``tokenizer``, remembering the tokens of the run (each :meth:`stage_run` starts
        a new memory), so a customer met in many chunks and objects is hashed once per run."""
        self.erased: set[str] = set()  # erased subjects' tokens, read from the lake at the start of a run
        self.alerts = alerts
        self.now = now

    # -- listing -------------------------------------------------------------------------------

    def new_objects(self, hours: Iterable[datetime], report: IngestReport, ref: str = "main") -> list[_Source]:
        """Raw objects in the window whose (name, generation) has no marker at ``ref``."""
        fresh = []
        for hour in hours:
            for kind in RAW_PREFIXES:
                prefix = hour_prefix(kind, hour)
                done = set(self.repo.list_paths(ref, f"{SOURCES_PREFIX}/{prefix}"))
                for obj in list_objects(self.client, self.settings.raw_bucket, prefix):
                    report.objects_listed += 1
                    if marker_path(obj) in done:
                        report.objects_skipped += 1
                        continue
                    source = _Source(ref=obj, kind=kind, hour=hour, name_error=self._name_error(obj, kind))
                    own = marker_path(obj).rpartition("/")[0]
                    source.earlier_markers = sorted(path for path in done if path.rpartition("/")[0] == own)
                    fresh.append(source)
        return fresh

    @staticmethod
    def _name_error(ref: ObjectRef, kind: str) -> str | None:
        """Why ``ref``'s name is not a raw object name of ``kind`` (None if it is)."""
        try:
            if naming.kind_of(ref.name) != kind:
                raise ValueError(ref.name)
            check_path(partition_path(ref, kind))
        except ValueError:
            return (
                f"unrecognised object name: the contract expects {RAW_PREFIXES[kind]}/dt=YYYY-MM-DD/hr=HH/"
                f"<file>{'.jsonl.gz' if kind == schema.EVENTS else '.csv'}"
            )
        return None

    def unknown_prefixes(self, hours: Iterable[datetime]) -> list[str]:
        """Prefixes (and objects) under ``activity/`` that the contract's layout does not know.

        Looks at the top level, each kind's day level and, for the days of the window, the hour
        level: an object there would never be listed for any hour.
        """
        bucket = self.settings.raw_bucket
        known = {f"{prefix}/" for prefix in RAW_PREFIXES.values()}
        prefixes, names = list_prefixes(self.client, bucket, RAW_ROOT)
        unknown = [p for p in prefixes if p not in known] + names
        days = sorted({f"dt={hour:%Y-%m-%d}/" for hour in hours})
        for kind_prefix in sorted(known):
            prefixes, names = list_prefixes(self.client, bucket, kind_prefix)
            unknown += [p for p in prefixes if not _DAY.fullmatch(p.removeprefix(kind_prefix))] + names
            for day in days:
                if f"{kind_prefix}{day}" not in prefixes:
                    continue
                hour_prefixes, names = list_prefixes(self.client, bucket, f"{kind_prefix}{day}")
                unknown += [p for p in hour_prefixes if not _HOUR.fullmatch(p.removeprefix(f"{kind_prefix}{day}"))]
                unknown += names
        return sorted(unknown)

    # -- per object ------------------------------------------------------------------------------

    def stage_object(  # pylint: disable=too-many-arguments,too-many-positional-arguments
        self,
        source: _Source,
        index: IdIndex,
        superseded: set[str],
        seen: RunIds,
        run_id: str,
        finishing: ThreadPoolExecutor,
        opening: Future[Opened] | None = None,
        read_next: Callable[[], None] = lambda: None,
    ) -> Future[_Staged]:
        """Steps 3-5 for one object, read and processed in chunks: the files it contributes to the run branch and
        its report, once its last chunk is appended and its files are closed (in ``finishing``, a thread of the
        caller's, while the caller goes on). ``seen`` holds the ids earlier objects of the run published (of the
        same kind); the ids this object publishes are added to it before this returns (none if it ends up
        quarantined whole). ``opening``: the object being opened already (:meth:`_open_object`), else it is opened
        here; ``read_next`` is called once its last chunk is read (to start reading the next object).

        An object whose later chunk names a contract column its earlier chunks lack is read again
        knowing the column, so every chunk is checked with the columns of the whole object, as if it
        were read whole. An object found unreadable after some chunks leaves nothing of them.
        """
        ref = source.ref
        if source.name_error:
            read_next()
            report = ObjectReport(ref.name, ref.generation, source.kind, "quarantined", reason=source.name_error)
            return finishing.submit(_Staged, report, dict(self.object_files(source, report, run_id)))
        columns: frozenset[str] = frozenset()
        mark = seen.mark()
        while True:
            try:
                opened = opening.result() if opening is not None else self._open_object(source)
                opening = None
                try:
                    report, finish = self.stream_object(
                        source, opened, (index, superseded), seen, run_id, columns, read_next
                    )
                finally:
                    opened.close()
                if report.status != "published":
                    seen.rollback(mark)
                return finishing.submit(finish)
            except _NewColumns as more:
                seen.rollback(mark)
                columns = more.columns
            except parse.UnreadableObject as error:
                read_next()
                seen.rollback(mark)
                report = ObjectReport(
                    ref.name, ref.generation, source.kind, "quarantined", reason=f"unreadable object: {error.reason}"
                )
                return finishing.submit(_Staged, report, dict(self.object_files(source, report, run_id)))

    def _open_object(self, source: _Source) -> Opened:
        """Download an object and parse its first chunk, in the run's chunk sizes (:mod:`churnops.data.opening`)."""
        return open_object(self.download, source.ref, self.chunk_bytes, self.chunk_rows)

    def download(self, ref: ObjectRef) -> IO[bytes]:
        """The stored bytes of exactly this generation, in a temporary file (not in memory)."""
        spool = temporary_file()  # the caller closes it
        blob = self.client.bucket(ref.bucket).blob(ref.name, generation=ref.generation)
        try:
            with storage_errors(f"reading gs://{ref.bucket}/{ref.name}#{ref.generation}"):
                blob.download_to_file(spool, raw_download=True)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    def stream_object(  # pylint: disable=too-many-arguments,too-many-positional-arguments,too-many-locals
        self,
        source: _Source,
        opened: Opened,
        lookup: tuple[IdIndex, set[str]],
        seen: RunIds,
        run_id: str,
        columns: frozenset[str],
        read_next: Callable[[], None],
    ) -> tuple[ObjectReport, Callable[[], _Staged]]:
        """One pass over an object's chunks (see :meth:`stage_object`); ``lookup``: the id index and the superseded
        sources it ignores; ``columns``: contract columns the object is known to have. Returns the object's report
        (its rows counted) and the step that finishes it: waits for its last chunk to be appended, closes its
        files (the partition, its aggregates, the quarantine, its published ids) and returns them with the report."""
        index, superseded = lookup
        ref, kind = source.ref, source.kind
        id_column, time_column = ID_COLUMNS[kind], schema.RECORD_TIME_COLUMNS[kind]
        contract_columns = set(schema.CONTRACT_COLUMNS[kind])
        staged = _Staged(ObjectReport(ref.name, ref.generation, kind, "published"), {})
        report = staged.report
        corrections: dict[tuple[str, str, str], dict[str, object]] = {}
        unknown: dict[str, None] = {}
        now = self.now()
        known = set(columns)
        with contextlib.ExitStack() as spools:
            partition = spools.enter_context(PartitionSpool(kind))
            quarantine = spools.enter_context(ParquetSpool())
            keys = spools.enter_context(ParquetSpool(dictionary=["hour"]))  # the ids are distinct
            keys.write(KEYS_SCHEMA.empty_table())
            for number, parsed in enumerate(opened.all_chunks()):
                present = contract_columns.intersection(parsed.rows.columns)
                if number and not present <= known:
                    raise _NewColumns(frozenset(known | present))
                known |= present
                for name in sorted(known - present):  # what the object has, this chunk lacks: nulls
                    parsed.rows[name] = None
                result, duplicates, erased = self.check_chunk(parsed, source, index, superseded, now)
                del parsed
                report.rows_in += result.rows_in + duplicates + erased
                report.duplicates_dropped += duplicates
                report.rows_erased += erased
                unknown.update(dict.fromkeys(result.unknown_columns))
                _add_corrections(corrections, result.corrections)
                if result.missing_required:
                    report.status = "quarantined"
                    report.reason = f"missing required column(s): {', '.join(result.missing_required)}"
                else:
                    valid, ids, within = _drop_seen(result.valid, id_column, seen)
                    report.duplicates_dropped += within
                    keys.write(seen.add(ref.name, ids, pa.array(valid[time_column].dt.floor("h"))))
                    valid["_source_object"] = ref.name
                    valid["_source_generation"] = ref.generation
                    # From here on in Arrow: the PII policy on the table the parquet writer takes.
                    published_rows = apply_pii_policy_to_table(
                        pa.Table.from_pandas(valid, preserve_index=False), kind, self.tokens
                    )
                    partition.append(published_rows)
                    report.rows_published += published_rows.num_rows
                    del valid, published_rows
                if len(result.quarantined):
                    quarantine.write(self.quarantine_rows(result.quarantined, source))
                    report.rows_quarantined += len(result.quarantined)
            read_next()  # the next object is read while this one's last chunk is appended and its files written
            files = spools.pop_all()  # closed by the finishing step

        def finish() -> _Staged:
            with files:
                self.finish_object(staged, source, (partition, quarantine, keys), unknown, list(corrections.values()))
            staged.files.update(self.object_files(source, report, run_id))
            log.debug("object staged", extra={"object": ref.name, "run_id": run_id, "rows_in": report.rows_in})
            return staged

        return report, finish

    def finish_object(
        self,
        staged: _Staged,
        source: _Source,
        spools: tuple[PartitionSpool, ParquetSpool, ParquetSpool],
        unknown: Iterable[str],
        corrections: list[dict[str, object]],
    ) -> None:
        """Close an object's partition (once its last chunk is appended), its aggregates, its published ids and its
        quarantine file into ``staged``; record its unknown columns (as digests: a CSV whose header row is missing
        makes values into names) and corrections."""
        report, (partition, quarantine, keys) = staged.report, spools
        partition.wait()
        digests = {name: self.column_digest(name) for name in unknown}
        report.unknown_columns = list(digests.values())
        report.corrections = [{**c, "column": digests.get(str(c["column"]), c["column"])} for c in corrections]
        try:
            if report.status == "published":
                report.partition = partition_path(source.ref, source.kind)
                staged.files[report.partition] = partition.spool.detach()
                staged.keys = keys.detach()
                if partition.summary is not None:  # in the same commit as the partition
                    staged.files[aggregates.aggregates_path(report.partition)] = partition.summary.file()
            if report.rows_quarantined:
                staged.files[self.quarantine_path(source, "parquet")] = quarantine.close()
        except BaseException:
            staged.close()  # what was detached before the failure
            raise

    def check_chunk(
        self, parsed: parse.ParsedObject, source: _Source, index: IdIndex, superseded: set[str], now: datetime
    ) -> tuple[contract.ContractResult, int, int]:
        """Drop a chunk's rows whose id is already published and those of erased subjects, check the
        rest against the contract: (the check's result, duplicates dropped, rows erased).

        Ids are matched on the raw values before the contract check, so an event a producer
        sends again in a later hour's file counts as a duplicate, not as out of its hour.
        """
        kind, id_column = source.kind, ID_COLUMNS[source.kind]
        published: set[str] = set()
        # The record times are read once: for the index lookup here and, unless rows are dropped, for the check.
        times = contract.read_record_times(parsed.rows, kind)
        if id_column in parsed.rows:
            hours = times.hours() if times is not None else contract.record_hours(parsed.rows, kind)
            wanted = id_index.keys(_raw_ids(parsed.rows[id_column]), hours)
            published = index.published(wanted, superseded)
        parsed, duplicates = drop_ids(parsed, id_column, published)
        parsed, erased = subjects.drop_erased(parsed, kind, self.tokens, self.erased)
        if duplicates or erased:
            times = None
        return contract.check(parsed, kind, source.hour, now, times=times), duplicates, erased

    def column_digest(self, name: str) -> str:
        """A keyed digest standing for a column name that may be data (same name, same digest)."""
        return "column_" + self.tokenizer.digest("column name", name)

    def quarantine_rows(self, quarantined: pd.DataFrame, source: _Source) -> pd.DataFrame:
        """Quarantined rows with the PII policy applied (raw values never reach the lake)."""
        # Only contract columns and the diagnosis: the raw text of a malformed line and columns the
        # contract does not know (which could hold anything) stay in the raw bucket, for replay.
        keep = [c for c in (*schema.CONTRACT_COLUMNS[source.kind], *QUARANTINE_INFO) if c in quarantined.columns]
        rows = apply_pii_policy(quarantined[keep].astype("string"), source.kind, self.tokens)
        rows["_source_object"] = source.ref.name
        rows["_source_generation"] = str(source.ref.generation)
        return rows

    @staticmethod
    def quarantine_path(source: _Source, suffix: str) -> str:
        """Lake path of the object's quarantine file (``parquet``: its rows; ``json``: why it was quarantined whole)."""
        ref = source.ref
        qdir = f"quarantine/{source.kind}/{naming.hour_partition(source.hour)}"
        file_name = f"unrecognised-{_name_digest(ref.name)}" if source.name_error else PurePosixPath(ref.name).name
        return f"{qdir}/{file_name}@{ref.generation}.{suffix}"

    def object_files(self, source: _Source, report: ObjectReport, run_id: str) -> dict[str, bytes]:
        """The object's marker, and the note of an object quarantined whole."""
        ref = source.ref
        files: dict[str, bytes] = {}
        if report.status == "quarantined":
            detail = {"object": ref.name, "generation": ref.generation, "reason": report.reason, "run_id": run_id}
            files[self.quarantine_path(source, "json")] = json.dumps(detail, indent=2).encode()
        marker = {k: v for k, v in asdict(report).items() if k != "corrections"}
        files[marker_path(ref)] = json.dumps(marker, sort_keys=True, indent=2).encode()
        return files

    # -- what was published before -------------------------------------------------------------

    def earlier_partitions(self, fresh: list[_Source], ref: str) -> dict[str, set[str]]:
        """Per object name, the partitions its earlier generations published (from their markers)."""
        result: dict[str, set[str]] = {}
        for source in fresh:
            for marker in source.earlier_markers:
                partition = json.loads(self.repo.get_object(ref, marker)).get("partition")
                if partition:
                    result.setdefault(source.ref.name, set()).add(partition)
        return result

    def _record_hours_of_partitions(self, paths: Iterable[str], kind: str, ref: str) -> set[pd.Timestamp]:
        """The record hours the published rows of ``paths`` fall in (the index segments that hold their ids)."""
        hours: set[pd.Timestamp] = set()
        for path in paths:
            try:
                stored = self.repo.open_object(ref, path)
            except NotFoundError:
                continue
            with stored:  # only the record-time column read from it
                times = pq.read_table(stored, columns=[schema.RECORD_TIME_COLUMNS[kind]]).column(0)
            hours.update(times.to_pandas().dt.floor("h").dropna())
        return hours

    def index_changes(
        self,
        indexes: dict[str, IdIndex],
        added: dict[str, RunIds],
        fresh: list[_Source],
        earlier: dict[str, set[str]],
        base: str,
        run_id: str,
    ) -> tuple[dict[str, Content], list[str]]:
        """The id index files this run writes and deletes: its published ids in (``added``: per kind, the ids
        the run publishes), superseded objects' ids out. The caller closes the files."""
        files: dict[str, Content] = {}
        deleted: list[str] = []
        for kind, index in indexes.items():
            superseded = {source.ref.name for source in fresh if source.kind == kind and source.earlier_markers}
            old_paths = {path for name in superseded for path in earlier.get(name, ())}
            if len(added[kind]) or superseded or index.bootstrapping:
                written, gone = index.changes(
                    run_id, added[kind], superseded, self._record_hours_of_partitions(old_paths, kind, base)
                )
                files.update(written)
                deleted.extend(gone)
        return files, deleted

    # -- checks against the lake ----------------------------------------------------------------

    def verify_lake(self, ref: str, report: IngestReport, deleted: list[str]) -> None:
        """Raise :class:`AccountingError` unless ``ref`` holds exactly the rows the report claims.

        Each published object's partition must hold ``rows_published`` rows, all from this
        object and generation; each per-row quarantine file ``rows_quarantined`` rows; and the
        superseded partitions must be gone. The run calls this on its branch before it commits.
        """
        for obj in report.objects:
            if obj.partition is not None:
                rows, sources, generations = 0, set(), set()
                with self.repo.open_object(ref, obj.partition) as stored:  # two columns, a row group at a time
                    partition = pq.ParquetFile(stored, read_dictionary=["_source_object"])  # one string, not one a row
                    for batch in partition.iter_batches(columns=["_source_object", "_source_generation"]):
                        rows += batch.num_rows
                        sources.update(contract.arrow_call("unique", batch.column(0)).to_pylist())
                        generations.update(contract.arrow_call("unique", batch.column(1)).to_pylist())
                if rows != obj.rows_published or (rows and (sources != {obj.name} or generations != {obj.generation})):
                    raise AccountingError(
                        f"the lake holds {rows} rows in {obj.partition}, "
                        f"the run published {obj.rows_published} from {obj.name}"
                    )
        for path in deleted:
            if self._exists(ref, path):
                raise AccountingError(f"superseded partition {path} is still in the lake")

    def _exists(self, ref: str, path: str) -> bool:
        return path in self.repo.list_paths(ref, path)

    # -- alerts --------------------------------------------------------------------------------

    def raise_alerts(self, report: IngestReport) -> None:
        """One alert per anomaly class seen in this run."""
        objs = report.objects

        def emit(kind: str, message: str, subset: list[str], counts: dict[str, int]) -> None:
            if subset:
                alert = Alert(kind, message, counts, subset, report.run_id)
                self.alerts.emit(alert)
                report.alerts.append(asdict(alert))

        def names(subset: list[ObjectReport]) -> list[str]:
            return [o.name for o in subset]

        unrecognised = [o for o in objs if o.reason and o.reason.startswith("unrecognised")]
        unreadable = [o for o in objs if o.reason and o.reason.startswith("unreadable")]
        missing = [o for o in objs if o.reason and o.reason.startswith("missing required")]
        drift = [o for o in objs if o.unknown_columns]
        bad_rows = [o for o in objs if o.rows_quarantined and o not in missing]
        dups = [o for o in objs if o.duplicates_dropped]
        emit(
            "unknown_prefix",
            "objects lie under prefixes the contract does not know; no run will ingest them",
            report.unknown_prefixes,
            {"prefixes": len(report.unknown_prefixes)},
        )
        emit(
            "unrecognised_object",
            "object names do not follow the contract; quarantined whole, not read",
            names(unrecognised),
            {"objects": len(unrecognised)},
        )
        emit(
            "unreadable_object",
            "objects could not be read and were quarantined whole",
            names(unreadable),
            {"objects": len(unreadable)},
        )
        emit(
            "missing_required_column",
            "objects lack a required column and were quarantined whole",
            names(missing),
            {"objects": len(missing), "rows": sum(o.rows_in for o in missing)},
        )
        columns = sorted({c for o in drift for c in o.unknown_columns})
        emit(
            "schema_drift",
            f"{len(columns)} unknown column(s) were left out of the published data (names are "
            f"withheld, they may be data: {', '.join(columns)} are keyed digests; see the raw objects)",
            names(drift),
            {"objects": len(drift), "columns": len(columns)},
        )
        emit(
            "quarantined_rows",
            "rows failed the contract and were quarantined",
            names(bad_rows),
            {"rows": sum(o.rows_quarantined for o in bad_rows)},
        )
        emit(
            "duplicates_dropped",
            "duplicate ids were dropped",
            names(dups),
            {"rows": sum(o.duplicates_dropped for o in dups)},
        )
        corrected = [o for o in objs if o.corrections]
        fixes: Counter[str] = Counter()
        for obj in corrected:
            for correction in obj.corrections:
                fixes[str(correction["kind"])] += int(str(correction["rows"]))
        emit(
            "auto_corrected",
            "values were corrected to fit the contract: " + ", ".join(sorted(fixes)),
            names(corrected),
            dict(fixes),
        )

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
        report = staged.report
        try:
            report.commit_id = self.publish(staged.branch, staged.metadata)
            if self.repo.commit_info(report.commit_id).parents[:1] != [staged.metadata["base_commit"]]:
                # main moved between the compare and the merge (possible on lakeFS only, and only by a
                # writer other than ingest): what main now holds is checked again.
                self.verify_lake(report.commit_id, report, staged.superseded)
        except Exception:
            # A failed run drops its branch (an interrupted or killed one leaves it; main never sees it).
            self._drop_branch(staged.branch)
            raise
        self._drop_branch(staged.branch)
        log.info("ingest published", extra={"hour": report.hour, "commit": report.commit_id, **report.accounting()})
        return report

    def stage_run(self, hour: datetime, lookback: int, pipeline_run: str = "", fanout: int = 1) -> StagedIngest:
        """Steps 1-4 and the upload of step 5: the run's files on a new run branch, uncommitted and checked.

        Returns the branch (None when nothing is new: no branch is created) with the report and the
        commit metadata (whose ``base_commit`` is the commit the run read); :meth:`publish` commits
        and merges it.

        The steps the ingest pipeline runs as tasks (:mod:`churnops.data.ingest_steps`), here one after the other:
        :func:`~churnops.data.ingest_steps.plan_run` (in at most ``fanout`` groups), ``stage_group`` for every
        group, ``finish_run``. A failure drops the branch.

        With ``pipeline_run`` (the KFP run id of an ingest pipeline run) the branch name carries a digest of
        it, and the branches earlier attempts of that pipeline run left are deleted first: such an attempt
        was lost before it answered, so no commit step got its branch.
        """
        plan = ingest_steps.plan_run(self, hour, lookback, pipeline_run, fanout)
        if plan.branch is None:
            return ingest_steps.finish_run(self, plan)
        try:
            for group in plan.groups:
                ingest_steps.stage_group(self, group)
            return ingest_steps.finish_run(self, plan)
        except Exception:
            self._drop_branch(plan.branch)
            raise

    def stage_objects(
        self,
        branch: str,
        fresh: list[_Source],
        indexes: dict[str, IdIndex],
        superseded: set[str],
        report: IngestReport,
        published: dict[str, RunIds],
        keys_path: Callable[[int], str],
    ) -> None:
        """Steps 3-5 one object at a time, each in chunks (:meth:`stage_object`), its files written to ``branch``
        once the next object is checked. The next object is opened (downloaded, its first chunk parsed) while the
        one before is checked, and checked while the one before finishes (its last chunk appended, its files
        closed, in a thread of its own), so the run holds a few chunks' rows at a time, never an object's. The ids
        each object publishes are added to ``published`` (per kind; on disk, their hashes in memory) and written
        with its files, at ``keys_path(i)`` for ``fresh[i]``."""
        finishing: list[tuple[int, Future[_Staged]]] = []  # objects staged, not yet written, by position
        with (
            OneAhead(self._open_object, fresh) as ahead,
            ThreadPoolExecutor(1, thread_name_prefix="object-finish") as finisher,
        ):
            try:
                ahead.open(0)
                for kind in dict.fromkeys(source.kind for source in fresh if not source.name_error):  # as it downloads
                    contract.prepare(kind)
                for position, source in enumerate(fresh):
                    staging = self.stage_object(
                        source,
                        indexes[source.kind],
                        superseded,
                        published[source.kind],
                        report.run_id,
                        finisher,
                        ahead.opening(position),
                        functools.partial(ahead.open, position + 1),
                    )
                    finishing.append((position, staging))
                    if len(finishing) > 1:
                        written, staged = finishing.pop(0)
                        self._write_staged(branch, staged.result(), report, keys_path(written))
                if finishing:
                    written, staged = finishing.pop()
                    self._write_staged(branch, staged.result(), report, keys_path(written))
            finally:
                for _, unwritten in finishing:  # after an error: closed, not written
                    if unwritten.exception() is None:
                        unwritten.result().close()

    def _write_staged(self, branch: str, staged: _Staged, report: IngestReport, keys_path: str) -> None:
        """Write an object's files (its published ids at ``keys_path``) to ``branch``; add its report to the run's."""
        try:
            self.repo.put_objects(branch, {**staged.files, **({keys_path: staged.keys} if staged.keys else {})})
        finally:
            staged.close()
        report.objects.append(staged.report)

    def publish(self, branch: str, metadata: dict[str, str]) -> str:
        """Commit and merge a staged run branch (see :func:`publish_branch`)."""
        return publish_branch(self.repo, branch, metadata)

    def _drop_branch(self, branch: str) -> None:
        if self.repo.branch_exists(branch):
            self.repo.delete_branch(branch)

    def commit_metadata(self, report: IngestReport, base: str) -> dict[str, str]:
        """Commit metadata: sources with generations, accounting, schema and code versions, base commit."""
        sources = [f"gs://{self.settings.raw_bucket}/{o.name}#{o.generation}" for o in report.objects]
        return {
            "run_id": report.run_id,
            "hour": report.hour,
            "lookback_hours": str(report.lookback_hours),
            "base_commit": base,
            "sources": json.dumps(sources),
            "accounting": json.dumps(report.accounting(), sort_keys=True),
            "schema_versions": json.dumps(schema.SCHEMA_VERSIONS, sort_keys=True),
            "code_version": git_sha(self.settings),
            "lock_sha256": lock_sha256(),
            "tokenizer_key_id": self.tokenizer.key_id,
        }


def publish_branch(repo: DataRepository, branch: str, metadata: dict[str, str]) -> str:
    """Commit a staged run branch with its metadata and merge it into ``main``; return main's head.

    Raises :class:`MergeConflict` when ``main`` moved since the run read it (its ``base_commit``);
    the objects then stay new (no marker reached ``main``) and the next run ingests them again.
    """
    repo.commit(branch, f"ingest {metadata.get('hour', '?')} ({metadata.get('run_id', '?')})", metadata)
    # The merge carries the same metadata, so main's head always describes what it published; it is a
    # compare-and-set on the commit the run read, so a run never publishes over one it did not see.
    return repo.merge(
        branch,
        into="main",
        message=f"publish ingest {metadata.get('hour', '?')}",
        metadata=metadata,
        expected_head=metadata.get("base_commit"),
    )


def ingest_run(settings: Settings, alerts: AlertSink | None = None) -> IngestRun:
    """An :class:`IngestRun` on the configured storage, lake (created if absent) and tokenization key."""
    repo = open_repository(settings)
    repo.ensure()
    return IngestRun(
        settings=settings,
        repo=repo,
        client=storage_client(settings),
        tokenizer=lake_tokenizer(settings),
        alerts=alerts or AlertSink(settings),
    )


def ingest_hour(
    settings: Settings, hour: datetime, lookback: int | None = None, alerts: AlertSink | None = None
) -> IngestReport:
    """Run the ingest stage for ``hour`` against the configured storage, lake and secrets."""
    run = ingest_run(settings, alerts)
    return run.run(hour, settings.ingest_lookback_hours if lookback is None else lookback)


def publish_staged(
    settings: Settings, branch: str, metadata: dict[str, str], repo: DataRepository | None = None
) -> str:
    """Last step: commit the run branch :func:`~churnops.data.ingest_steps.finish_run` staged, merge it into
    ``main``, delete it.

    Returns main's commit that published the run. On a merge conflict the branch is deleted and
    :class:`MergeConflict` raised: nothing was published, so the next run ingests the objects. On
    any other error the branch stays, so a retry of this step resumes it (a commit already made
    is not made twice). A retry after the merge (the task died before it could answer) finds the
    run's publish on ``main`` by its ``run_id`` and returns it, deleting the branch if it is left.
    """
    repo = repo or open_repository(settings)
    run_id = metadata.get("run_id", "")
    published = repo.find_commit("main", {"run_id": run_id}) if run_id else None
    if published is not None:
        if repo.branch_exists(branch):
            repo.delete_branch(branch)
        log.info("ingest already published", extra={"hour": metadata.get("hour"), "commit": published})
        return published
    if not repo.branch_exists(branch):
        raise ValueError(
            f"no staged ingest branch {branch!r} and no publish of run {metadata.get('run_id')!r} on "
            "main: the branch was discarded after a merge conflict (the next run ingests its objects)"
        )
    try:
        commit = publish_branch(repo, branch, metadata)
    except MergeConflict:
        repo.delete_branch(branch)
        raise
    repo.delete_branch(branch)
    log.info("ingest published", extra={"hour": metadata.get("hour"), "commit": commit})
    return commit


# How late in its hour a run may start and still be taken for the hour's scheduled run when KFP gives its
# creation time as its scheduled time (the default schedule starts at minute 5).
FALLBACK_START_WINDOW = timedelta(minutes=20)


def scheduled_hour(hour: str, scheduled_time: str, created_time: str = "") -> datetime:
    """The hour a scheduled ingest run handles: ``hour`` if given, else the hour before ``scheduled_time``.

    ``hour`` is ``YYYY-MM-DDTHH`` (or any ISO-8601 time, floored to its hour); ``scheduled_time`` is
    the RFC 3339 time KFP substitutes for its schedule-time placeholder (e.g.
    ``2026-11-01T06:00:00Z``): a run scheduled at 06:00 ingests 05:00-06:00, the last complete hour.
    Naive times are UTC.

    ``created_time`` is what KFP substitutes for the run's creation time. The 2.17 driver reads a
    recurring run's scheduled time from its Workflow, and when the run's service account may not
    read it, silently gives the creation time instead: then the two are equal. That is right for
    an hourly run started on time, and wrong for a catch-up run after an outage (every one would
    ingest the hour before now). So when they are equal and the run started more than
    :data:`FALLBACK_START_WINDOW` into its hour, the hour cannot be known and the run is refused.
    """
    if hour.strip():
        return _floor_hour(hour.strip(), "hour")
    text = scheduled_time.strip()
    if not text or text.startswith("{{"):
        raise ValueError(
            "no hour given and no scheduled time substituted (the run is not a scheduled one): "
            "pass the hour, e.g. 2026-11-01T05"
        )
    scheduled = _parse_time(text, "scheduled time")
    created = created_time.strip()
    if created and not created.startswith("{{") and _parse_time(created, "creation time") == scheduled:
        into_hour = scheduled - scheduled.replace(minute=0, second=0, microsecond=0)
        if into_hour > FALLBACK_START_WINDOW:
            minutes = int(into_hour.total_seconds() // 60)
            raise ValueError(
                f"the scheduled time KFP gave is the run's creation time ({text}), {minutes}"
                " min into its hour: a catch-up or manual run whose hour cannot be known (the run's service account "
                "may not read its Workflow, docs/pipelines.md): pass the hour, e.g. 2026-11-01T05"
            )
    return scheduled.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def _parse_time(text: str, what: str) -> datetime:
    value = f"{text}:00" if len(text) == 13 else text
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"{what} {text!r} is not a time like 2026-11-01T05 or 2026-11-01T05:00:00Z") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _floor_hour(text: str, what: str) -> datetime:
    return _parse_time(text, what).replace(minute=0, second=0, microsecond=0)
