"""The id index: every published id of one kind, kept in the lake, so a re-sent row is found at any age.

Ingest drops a row whose id is already published. Looking for ids only in the partitions of the
run's window misses an event a producer sends again days later, so the lake keeps an index of
every published id with the object that published it. It is partitioned by the hour of the
record's time (``event_time``, ``updated_at``), the one thing a re-sent record carries unchanged
besides its id, and appended per run:

    _index/ids/<kind>/dt=YYYY-MM-DD/hr=HH/<run id>.parquet     (columns ``id`` and ``source``)
    _index/ids/<kind>/_layout.json                              (the index is complete)

A run looks each incoming id up in the segments of its record's hour only, and writes one new
segment per record hour of the rows it publishes; it never rewrites a segment, except those that
hold the ids of an object it supersedes (a new generation), which it rewrites without them. The
contract keeps a published record inside its object's hour (± 5 minutes), so an hour's ids are
written by the few runs that ingested the objects of that hour and the hours beside it: what a run
reads and writes depends on the hours its rows name, never on how many ids the lake holds (see
``docs/ingestion.md`` for the bound). Segments are written on the run branch and move with the
data in the same commit and merge.

A lake without ``_layout.json`` (published before the index existed, or with the earlier layout of
16 hash shards) gets the index built from its partitions by its next run, which writes every
hour's segment, deletes the earlier layout's files and writes ``_layout.json``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnops.data import naming
from churnops.data.contract import arrow_call
from churnops.data.run_ids import IdHashes, RunIds
from churnops.data.spool import ParquetSpool
from churnops.data.versioning import DataRepository
from churnops.data.versioning.base import Content

INDEX_PREFIX = "_index/ids"
LAYOUT = {"layout": "record-hour segments", "version": 2}
_COLUMNS = ["id", "source"]


def kind_prefix(kind: str) -> str:
    """Lake prefix of ``kind``'s index."""
    return f"{INDEX_PREFIX}/{kind}/"


def layout_path(kind: str) -> str:
    """Lake path of the file that says ``kind``'s index is complete and in this layout."""
    return f"{kind_prefix(kind)}_layout.json"


def hour_prefix(kind: str, hour: datetime) -> str:
    """Lake prefix of the segments of one record hour."""
    return f"{kind_prefix(kind)}{naming.hour_partition(hour)}/"


def segment_path(kind: str, hour: datetime, run_id: str) -> str:
    """Lake path of the segment one run writes for one record hour."""
    return f"{hour_prefix(kind, hour)}{run_id}.parquet"


def keys(ids: pd.Series, hours: pd.Series) -> pd.DataFrame:
    """An index lookup or addition: ``id`` and record ``hour`` (UTC) per row; rows lacking either are left out."""
    hours = hours.reset_index(drop=True)
    if not isinstance(hours.dtype, pd.DatetimeTZDtype):
        hours = pd.to_datetime(hours, utc=True)
    ids = ids.reset_index(drop=True)
    if not isinstance(ids.array, pd.arrays.ArrowStringArray):  # Arrow strings stay so (no object per id)
        ids = pd.Series(ids.to_numpy(dtype=object))
    frame = pd.DataFrame({"id": ids, "hour": hours.dt.tz_convert("UTC")})
    keep = frame["id"].notna() & frame["hour"].notna()
    return frame if keep.all() else frame[keep]


_DICTIONARY = ["source"]  # a segment's ids are distinct: written plain, not through a dictionary dropped at 1 MiB


def _segment_rows(ids: pa.Array, sources: pa.Array) -> pa.Table:
    """Rows of a segment: ``id`` as text, ``source`` as a dictionary (a few object names for many ids, not one
    string per id; without the Arrow schema stored, the file reads back as plain strings either way)."""
    if not isinstance(sources, pa.DictionaryArray):
        sources = sources.dictionary_encode()
    return pa.table({"id": ids.cast(pa.string()), "source": sources.cast(pa.dictionary(pa.int32(), pa.string()))})


def _by_hour(added: pa.Table) -> Iterable[tuple[pd.Timestamp, pa.Array]]:
    """The ids of ``added`` (:data:`churnops.data.run_ids.KEYS_SCHEMA`) per record hour; rows lacking either are
    left out."""
    ids, hours = added.column("id"), added.column("hour")
    present = arrow_call("and", arrow_call("is_valid", ids), arrow_call("is_valid", hours))
    for hour in arrow_call("unique", arrow_call("filter", hours, present)).to_pylist():
        rows = arrow_call("and", present, arrow_call("equal", hours, pa.scalar(hour, hours.type)))
        yield pd.Timestamp(hour), arrow_call("filter", ids, rows).combine_chunks()


@dataclass
class _HourIds:
    """One record hour's published ids, for lookups: their hashes, and how to read each part (a row group of a
    segment) back as ``id`` and ``source``."""

    hashes: IdHashes = field(default_factory=IdHashes)
    parts: list[Callable[[], pa.Table]] = field(default_factory=list)

    def add(self, ids: pa.Array, read: Callable[[], pa.Table]) -> None:
        """Add a part: its ``ids``, and what reads it back."""
        self.hashes.add(ids, len(self.parts))
        self.parts.append(read)

    def published(self, ids: pa.Array, ignored: pa.Array) -> np.ndarray:
        """Which of ``ids`` (a boolean each) a part holds from a source not in ``ignored``."""

        def ids_of(part: int) -> pa.Array:
            rows = self.parts[part]()
            kept = arrow_call(
                "invert", arrow_call("is_in", rows.column("source"), options=pc.SetLookupOptions(ignored))
            )
            return arrow_call("filter", rows.column("id"), kept)

        return self.hashes.find(ids, ids_of)


def _spool(segments: dict[pd.Timestamp, ParquetSpool], hour: pd.Timestamp) -> ParquetSpool:
    """The segment being written for ``hour``, started if it is not (one temporary file an hour)."""
    if hour not in segments:
        segments[hour] = ParquetSpool(dictionary=_DICTIONARY)
    return segments[hour]


def _from(rows: pa.Table, sources: pa.Array) -> pa.Array:
    """Whether each of a segment's ``rows`` (at least ``source``) holds an id of one of ``sources``."""
    return arrow_call("is_in", rows.column("source"), options=pc.SetLookupOptions(sources)).combine_chunks()


def _kept_columns(rows: pa.Table, gone: pa.Array) -> tuple[pa.Array, pa.Array]:
    """The ``id`` and ``source`` of a segment's ``rows`` but those ``gone`` marks."""
    kept = arrow_call("filter", rows, arrow_call("invert", gone))
    return kept.column("id").combine_chunks(), kept.column("source").combine_chunks()


def _row_group(segment: pq.ParquetFile, number: int) -> Callable[[], pa.Table]:
    return lambda: segment.read_row_group(number, columns=_COLUMNS)


class IdIndex:  # pylint: disable=too-many-instance-attributes  # the lake handle, what it read, and its counters
    """The id index of one kind as of ``ref``: look ids up, and produce the segments a run adds or changes.

    Lookups keep 8 bytes of each id of the record hours they touch in memory (:class:`IdHashes`) and the
    segments in temporary files, read back a row group at a time to confirm a match; :meth:`close` (or the
    ``with`` block) deletes the files.
    """

    def __init__(self, repo: DataRepository, ref: str, kind: str, id_column: str, time_column: str) -> None:
        self.repo = repo
        self.ref = ref
        self.kind = kind
        self.id_column = id_column
        self.time_column = time_column
        self.bootstrapping = layout_path(kind) not in repo.list_paths(ref, layout_path(kind))
        self._lookups: dict[pd.Timestamp, _HourIds] = {}
        self._files = contextlib.ExitStack()
        self._built: dict[pd.Timestamp, pd.DataFrame] | None = None
        self.segments_read = 0
        self.ids_read = 0

    def __enter__(self) -> IdIndex:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the temporary copies of the segments the lookups read."""
        self._lookups = {}
        self._files.close()

    def _build(self) -> dict[pd.Timestamp, pd.DataFrame]:
        """The index built from every published partition of this kind (for a lake without one)."""
        if self._built is None:
            paths = [path for path in self.repo.list_paths(self.ref, f"{self.kind}/") if path.endswith(".parquet")]
            self._built = {}
            if paths:
                table = self.repo.read_table(
                    self.ref, f"{self.kind}/", columns=[self.id_column, self.time_column, "_source_object"]
                )
                frame = keys(
                    pd.Series(table.column(self.id_column).to_pylist(), dtype=object),
                    table.column(self.time_column).to_pandas().dt.floor("h"),
                )
                frame["source"] = pd.Series(table.column("_source_object").to_pylist(), dtype=object)[frame.index]
                for hour, group in frame.groupby("hour"):
                    self._built[hour] = group[_COLUMNS].reset_index(drop=True)
        return self._built

    def _lookup(self, hour: pd.Timestamp) -> _HourIds:
        """The ids of one record hour, for lookups."""
        if hour not in self._lookups:
            stored = _HourIds()
            if self.bootstrapping:
                frame = self._build().get(hour)
                if frame is not None and not frame.empty:
                    table = pa.table(
                        {
                            "id": pa.array(frame["id"], type=pa.string(), from_pandas=True),
                            "source": pa.array(frame["source"], type=pa.string(), from_pandas=True),
                        }
                    )
                    stored.add(table.column("id").combine_chunks(), lambda: table)
            else:
                for path in self.repo.list_paths(self.ref, hour_prefix(self.kind, hour)):
                    if not path.endswith(".parquet"):
                        continue
                    segment = pq.ParquetFile(self._files.enter_context(self.repo.open_object(self.ref, path)))
                    for number in range(segment.num_row_groups):
                        ids = segment.read_row_group(number, columns=["id"]).column("id").combine_chunks()
                        stored.add(ids, _row_group(segment, number))
                    self.segments_read += 1
                    self.ids_read += segment.metadata.num_rows
            self._lookups[hour] = stored
        return self._lookups[hour]

    def published(self, wanted: pd.DataFrame, ignore_sources: set[str]) -> set[str]:
        """Those ids of ``wanted`` (see :func:`keys`) published for their record hour, except by an object
        in ``ignore_sources`` (being superseded)."""
        found: set[str] = set()
        ignored = pa.array(sorted(ignore_sources), type=pa.string())
        for hour, group in wanted.groupby("hour"):
            ids = pa.array(group["id"], type=pa.large_string(), from_pandas=True)
            found.update(ids.filter(pa.array(self._lookup(hour).published(ids, ignored))).to_pylist())
        return found

    def changes(
        self,
        run_id: str,
        added: RunIds,
        removed_sources: set[str],
        removed_hours: Iterable[pd.Timestamp],
    ) -> tuple[dict[str, Content], list[str]]:
        """What a run writes to and deletes from the index: the ids of ``added`` (what the run publishes, with their
        source objects and record hours) as one new segment per record hour, written a chunk at a time to a
        temporary file (the caller closes the files), and the ids of ``removed_sources`` out of the segments of
        ``removed_hours`` (the record hours their partitions held)."""
        files: dict[str, Content] = {}
        deleted: list[str] = []
        segments: dict[pd.Timestamp, ParquetSpool] = {}
        try:
            if self.bootstrapping:
                deleted = self._rewrite_whole(removed_sources, segments, files)
            else:
                deleted = self._rewrite_without(removed_sources, removed_hours, files)
            for source, rows in added.keys():
                for hour, ids in _by_hour(rows):
                    sources = pa.DictionaryArray.from_arrays(np.zeros(len(ids), dtype=np.int32), pa.array([source]))
                    _spool(segments, hour).write(_segment_rows(ids, sources))
            for hour, spool in segments.items():
                files[segment_path(self.kind, hour, run_id)] = spool.detach()
        except BaseException:
            for spool in segments.values():
                spool.__exit__()
            for content in files.values():
                if not isinstance(content, bytes):
                    content.close()
            raise
        return files, deleted

    def _rewrite_whole(
        self, removed_sources: set[str], segments: dict[pd.Timestamp, ParquetSpool], files: dict[str, Content]
    ) -> list[str]:
        """A new index, written whole: every hour's published ids (but ``removed_sources``') into ``segments``, the
        layout file into ``files``; returns the earlier layout's files, to delete."""
        for hour, stored in self._build().items():
            kept = stored.loc[~stored["source"].isin(removed_sources), _COLUMNS]
            if not kept.empty:
                _spool(segments, hour).write(
                    _segment_rows(
                        pa.array(kept["id"], type=pa.string(), from_pandas=True),
                        pa.array(kept["source"], type=pa.string(), from_pandas=True),
                    )
                )
        files[layout_path(self.kind)] = json.dumps(LAYOUT).encode()
        return self.repo.list_paths(self.ref, kind_prefix(self.kind))

    def _rewrite_without(
        self, removed_sources: set[str], removed_hours: Iterable[pd.Timestamp], files: dict[str, Content]
    ) -> list[str]:
        """The segments of ``removed_hours`` that hold ids of ``removed_sources`` rewritten without them into
        ``files`` (a row group at a time, to temporary files the caller closes); returns those left with no id, to
        delete."""
        deleted: list[str] = []
        removed = pa.array(sorted(removed_sources), type=pa.string())
        for hour in sorted(set(removed_hours)):
            for path in self.repo.list_paths(self.ref, hour_prefix(self.kind, hour)):
                if not path.endswith(".parquet"):
                    continue
                with self.repo.open_object(self.ref, path) as stored:
                    segment = pq.ParquetFile(stored)
                    self.segments_read += 1
                    self.ids_read += segment.metadata.num_rows
                    gone = [
                        _from(segment.read_row_group(number, columns=["source"]), removed)
                        for number in range(segment.num_row_groups)
                    ]
                    count = sum(int(arrow_call("sum", mask).as_py() or 0) for mask in gone)
                    if not count:
                        continue
                    if count == segment.metadata.num_rows:
                        deleted.append(path)
                    else:
                        with ParquetSpool(dictionary=_DICTIONARY) as kept:
                            for number, mask in enumerate(gone):
                                rows = segment.read_row_group(number, columns=_COLUMNS)
                                kept.write(_segment_rows(*_kept_columns(rows, mask)))
                            files[path] = kept.detach()
        return deleted
