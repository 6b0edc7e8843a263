"""The id index: every published id of one kind, kept in the lake, so a re-sent row is found at any age.

Ingest drops a row whose id is already published. Looking for ids only in the partitions of the
run's window misses an event a producer sends again days later, so the lake keeps an index of
every published id with the object that published it, in shards:
``_index/ids/<kind>/<shard>.parquet`` (columns ``id`` and ``source``), where the shard is the
first hex digit of BLAKE2b of the id (16 shards). A run reads only the shards its ids fall in, and
rewrites only the shards it changes, on its run branch: the index moves with the data in the
same commit and merge. Any run with more than a few dozen ids touches every shard, so a run
reads and rewrites the whole index: its cost grows with the number of ids ever published (see
``docs/ingestion.md``).

A lake published before the index existed has no shard at all; the first run then builds the
whole index from the partitions (and writes every shard), and the index is complete from then on.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnops.data.versioning import DataRepository

INDEX_PREFIX = "_index/ids"
SHARDS = 16
_COLUMNS = ["id", "source"]


def shard_of(value: str) -> int:
    """The shard of one id (stable across processes, versions and machines)."""
    return hashlib.blake2b(value.encode("utf-8"), digest_size=1).digest()[0] >> 4


def shard_path(kind: str, shard: int) -> str:
    """Lake path of one shard of ``kind``'s index."""
    return f"{INDEX_PREFIX}/{kind}/{shard:x}.parquet"


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"id": pd.Series([], dtype=object), "source": pd.Series([], dtype=object)})


class IdIndex:
    """The id index of one kind as of ``ref``: look ids up, and produce the shards a run changes."""

    def __init__(self, repo: DataRepository, ref: str, kind: str, id_column: str) -> None:
        self.repo = repo
        self.ref = ref
        self.kind = kind
        self.id_column = id_column
        self._stored = set(repo.list_paths(ref, f"{INDEX_PREFIX}/{kind}/"))
        self._shards: dict[int, pd.DataFrame] = {}
        self._built: dict[int, pd.DataFrame] | None = None
        self.shards_read = 0

    @property
    def bootstrapping(self) -> bool:
        """True when the lake has no index for this kind yet (it is built from the partitions)."""
        return not self._stored

    def _build(self) -> dict[int, pd.DataFrame]:
        """The index built from every published partition of this kind (for a lake without one)."""
        if self._built is None:
            paths = [path for path in self.repo.list_paths(self.ref, f"{self.kind}/") if path.endswith(".parquet")]
            if paths:
                table = self.repo.read_table(self.ref, f"{self.kind}/", columns=[self.id_column, "_source_object"])
                frame = pd.DataFrame({"id": table.column(self.id_column).to_pylist(),
                                      "source": table.column("_source_object").to_pylist()}, dtype=object)
                frame = frame[frame["id"].notna()]
                shards = frame["id"].map(shard_of)
                self._built = {int(shard): group.reset_index(drop=True) for shard, group in frame.groupby(shards)}
            else:
                self._built = {}
        return self._built

    def _shard(self, shard: int) -> pd.DataFrame:
        if shard not in self._shards:
            if self.bootstrapping:
                frame = self._build().get(shard, _empty())
            elif (path := shard_path(self.kind, shard)) in self._stored:
                table = pq.read_table(io.BytesIO(self.repo.get_object(self.ref, path)), columns=_COLUMNS)
                frame = pd.DataFrame({name: table.column(name).to_pylist() for name in _COLUMNS}, dtype=object)
                self.shards_read += 1
            else:
                frame = _empty()
            self._shards[shard] = frame
        return self._shards[shard]

    def published(self, ids: Iterable[str], ignore_sources: set[str]) -> set[str]:
        """Those of ``ids`` that are published, except by an object in ``ignore_sources`` (being superseded)."""
        wanted = set(ids)
        by_shard: dict[int, list[str]] = {}
        for value in wanted:
            by_shard.setdefault(shard_of(value), []).append(value)
        found: set[str] = set()
        for shard, values in by_shard.items():
            frame = self._shard(shard)
            keep = frame["id"].isin(values) & ~frame["source"].isin(ignore_sources)
            found.update(frame.loc[keep, "id"])
        return found

    def changes(self, added: Mapping[str, Iterable[str]], removed_sources: set[str],
                removed_ids: Iterable[str]) -> dict[str, bytes]:
        """The shard files after a run: ``added`` (source object -> ids it publishes) in, and the rows of
        ``removed_sources`` out (``removed_ids`` are their ids, which say which shards hold them)."""
        touched: set[int] = {shard_of(value) for value in removed_ids}
        new_rows: dict[int, list[tuple[str, str]]] = {}
        for source, values in added.items():
            for value in values:
                shard = shard_of(value)
                new_rows.setdefault(shard, []).append((value, source))
                touched.add(shard)
        if self.bootstrapping:
            touched.update(self._build())  # a new index is written whole
        files: dict[str, bytes] = {}
        for shard in sorted(touched):
            frame = self._shard(shard)
            frame = frame[~frame["source"].isin(removed_sources)]
            if shard in new_rows:
                frame = pd.concat([frame, pd.DataFrame(new_rows[shard], columns=_COLUMNS, dtype=object)],
                                  ignore_index=True)
            buffer = io.BytesIO()
            table = pa.table({name: pa.array(frame[name].tolist(), type=pa.string()) for name in _COLUMNS})
            pq.write_table(table, buffer, compression="zstd")
            files[shard_path(self.kind, shard)] = buffer.getvalue()
        return files
