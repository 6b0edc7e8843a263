"""The ids a run (or one group of it) has published so far, with their record hours, for its in-run
de-duplication and its id index segments, in memory that does not grow with the ids' text.

In memory: 8 bytes an id (80 MB for a 10M-event object), a sorted array of their hashes. On disk, in a
temporary directory: the ids themselves and their record hours, one Arrow file per chunk added. A
lookup (:meth:`RunIds.repeated`) hashes the ids looked up, finds the earlier ids with an equal hash by
binary search, and compares the ids exactly with those of the chunks that hold the matches, read back
from their files: the answer is exact, and a hash shared by two different ids (rare) costs a file read,
never a wrong answer.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

RECORD_HOUR_TYPE = pa.timestamp("ns", tz="UTC")
"""The Arrow type of the record hours kept with the ids."""
KEYS_SCHEMA = pa.schema([("id", pa.large_string()), ("hour", RECORD_HOUR_TYPE)])
"""What a run keeps of each published id: the id and its record hour (:func:`churnops.data.id_index.hour_prefix`)."""

_PRIME = np.uint64(0x100000001B3)
_SEED = np.uint64(0xCBF29CE484222325)


def id_hashes(ids: pa.Array) -> np.ndarray:
    """A 64-bit hash of each id: equal ids have equal hashes whatever else is hashed with them; different ids
    rarely do (a match is checked on the ids). Nulls hash to 0.

    The ids' UTF-8 bytes are read eight at a time in numpy (FNV-style multiply and xor per word, then a final
    mix), one pass per distinct byte length: ids of one length (UUIDs, fixed-width keys) take one pass.
    """
    ids = ids.cast(pa.large_string())
    lengths = pc.fill_null(pc.call_function("binary_length", [ids]), 0).to_numpy(zero_copy_only=False)
    offsets = np.frombuffer(ids.buffers()[1], dtype=np.int64)[ids.offset : ids.offset + len(ids) + 1]
    data = np.frombuffer(ids.buffers()[2], dtype=np.uint8) if len(ids) and ids.buffers()[2] else np.zeros(0, np.uint8)
    hashes = np.zeros(len(ids), dtype=np.uint64)
    for width in np.unique(lengths).tolist():
        rows = lengths == width
        if rows.all():
            text = data[offsets[0] : offsets[-1]].reshape(len(ids), width)
        else:
            text = data[offsets[:-1][rows][:, None] + np.arange(width)]
        padded = np.zeros((len(text), -(-width // 8) * 8), dtype=np.uint8)
        padded[:, :width] = text
        mixed = np.full(len(text), _SEED ^ np.uint64(width), dtype=np.uint64)
        for word in padded.view("<u8").T:
            mixed ^= word
            mixed *= _PRIME
        mixed ^= mixed >> np.uint64(29)  # the high bits' variety into the low ones, which a hash table uses
        mixed *= np.uint64(0xBF58476D1CE4E5B9)
        mixed ^= mixed >> np.uint64(32)
        hashes[rows] = mixed
    if ids.null_count:
        hashes[np.asarray(ids.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = 0
    return hashes


@dataclass(frozen=True)
class HashedIds:
    """Ids (Arrow ``large_string``) with their :func:`id_hashes` and the order that sorts those: hashed and
    sorted once for every lookup and addition of the same ids (:meth:`IdHashes.find`, :meth:`IdHashes.add`,
    :meth:`repeats`)."""

    ids: pa.Array
    hashes: np.ndarray
    order: np.ndarray

    @classmethod
    def of(cls, ids: pa.Array | HashedIds) -> HashedIds:
        """``ids`` hashed (returned as it is if it is already)."""
        if isinstance(ids, HashedIds):
            return ids
        ids = ids.cast(pa.large_string())
        hashes = id_hashes(ids)
        return cls(ids, hashes, np.argsort(hashes))

    def __len__(self) -> int:
        return len(self.ids)

    def filter(self, keep: np.ndarray) -> HashedIds:
        """The ids where ``keep`` (a boolean each) is true, in their order, still sorted by hash."""
        kept_order = self.order[keep[self.order]]
        position = np.cumsum(keep) - 1  # of each kept row among the kept ones
        return HashedIds(self.ids.filter(pa.array(keep)), self.hashes[keep], position[kept_order])

    def repeats(self) -> np.ndarray:
        """Which ids (a boolean each) an earlier one of these equals: only ids whose hash another id has are
        compared, exactly, so the answer is exact and costs the hashes' order when no hash repeats."""
        result = np.zeros(len(self.ids), dtype=bool)
        ordered = self.hashes[self.order]
        same = ordered[1:] == ordered[:-1]
        if not same.any():
            return result
        shared = np.zeros(len(ordered), dtype=bool)  # in the sorted order: a hash another id has
        shared[1:] |= same
        shared[:-1] |= same
        rows = np.sort(self.order[shared])
        # Dictionary codes number the distinct ids in the order they first appear: a row repeats an earlier
        # id unless its code is above every code before it.
        codes = self.ids.take(pa.array(rows)).dictionary_encode().indices.to_numpy(zero_copy_only=False)
        before = np.maximum.accumulate(np.concatenate([[-1], codes[:-1]]))
        result[rows[codes <= before]] = True
        return result


_PART_BITS = 16
_PART_MASK = np.uint64((1 << _PART_BITS) - 1)


class IdHashes:
    """Ids found by their hashes: each added id is kept as one ``uint64``, the high 48 bits of its hash
    (:func:`id_hashes`) and the number of the *part* (a chunk, a row group) that holds it, 16 bits. A lookup
    tells which ids may have been added and which parts to read to be sure: a hash found is a candidate,
    confirmed or not by comparing the ids themselves, so an answer built on it is exact.

    The entries are kept sorted in 256 arrays by their top 8 bits: adding merges into small arrays (no copy
    of the whole set) and a lookup is a binary search of sorted keys.
    """

    def __init__(self) -> None:
        self._buckets = [np.zeros(0, dtype=np.uint64) for _ in range(256)]

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets)

    @staticmethod
    def _split(values: np.ndarray) -> Iterator[tuple[int, slice]]:
        """The buckets sorted ``values`` fall in, with the slice of ``values`` of each."""
        bounds = np.searchsorted(values >> np.uint64(56), np.arange(257, dtype=np.uint64))
        for bucket in np.flatnonzero(bounds[1:] > bounds[:-1]).tolist():
            yield bucket, slice(int(bounds[bucket]), int(bounds[bucket + 1]))

    def add(self, ids: pa.Array | HashedIds, part: int) -> None:
        """Add ``ids``, held by ``part`` (0 to 65,535)."""
        if not 0 <= part <= int(_PART_MASK):
            raise ValueError(
                f"more than {int(_PART_MASK) + 1:,} parts of ids in one lookup: stage the run in more groups"
            )
        hashed = HashedIds.of(ids)
        values = (hashed.hashes[hashed.order] & ~_PART_MASK) | np.uint64(part)  # sorted, as the hashes are
        for bucket, rows in self._split(values):
            merged = np.concatenate([self._buckets[bucket], values[rows]])
            merged.sort(kind="stable")  # two sorted runs: merged in one pass
            self._buckets[bucket] = merged

    def keep_parts_before(self, mark: int) -> None:
        """Drop the ids of parts numbered ``mark`` or more."""
        self._buckets = [bucket[(bucket & _PART_MASK) < mark] for bucket in self._buckets]

    def find(self, ids: pa.Array | HashedIds, ids_of: Callable[[int], pa.Array]) -> np.ndarray:
        """Which of ``ids`` were added (a boolean each), exactly: the ids whose hash was added are compared with
        ``ids_of(part)`` (the ids a part holds, those that count) of the parts that hold those hashes."""
        if len(self) == 0:  # nothing added: nothing to hash
            return np.zeros(len(ids), dtype=bool)
        hashed = HashedIds.of(ids)
        result = np.zeros(len(hashed), dtype=bool)
        candidates, parts = self._candidates(hashed)
        if not parts:
            return result
        earlier = pa.chunked_array(
            [ids_of(part).cast(pa.large_string()) for part in parts], type=pa.large_string()
        ).combine_chunks()
        looked_up = hashed.ids.filter(pa.array(candidates))
        found = pc.call_function("is_in", [looked_up], pc.SetLookupOptions(earlier))
        result[candidates] = np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
        return result

    def _candidates(self, hashed: HashedIds) -> tuple[np.ndarray, list[int]]:
        """Which ids may have been added (a boolean each: their hash was) and the parts that hold those hashes."""
        found = np.zeros(len(hashed), dtype=bool)
        matched = [np.zeros(0, dtype=np.uint64)]
        order = hashed.order  # sorted keys search a sorted array in a fraction of the time
        ordered = hashed.hashes[order] & ~_PART_MASK
        for bucket, rows in self._split(ordered):
            entries, wanted = self._buckets[bucket], ordered[rows]
            if len(entries) == 0:
                continue
            first = np.searchsorted(entries, wanted, side="left")
            hit = (entries[np.minimum(first, len(entries) - 1)] & ~_PART_MASK) == wanted
            found[order[rows]] = hit
            if hit.any():  # each hit's entries: from its first to the last with its 48 bits
                first = first[hit]
                counts = np.searchsorted(entries, wanted[hit] | _PART_MASK, side="right") - first
                matched.append(entries[np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())])
        return found, np.unique(np.concatenate(matched) & _PART_MASK).tolist()


@dataclass
class _Chunk:
    source: str
    path: Path
    rows: int


class RunIds:
    """Ids added chunk by chunk, each with its source object and record hour: looked up exactly
    (:meth:`repeated`), read back (per source: :meth:`keys`), dropped back to a :meth:`mark`.

    What is held in memory is one ``uint64`` an id (:class:`IdHashes`, the chunk as the part); the few ids
    whose hash matches are compared with the ids of the chunks that hold the matches, read from their files.
    """

    def __init__(self, lookups: bool = True) -> None:
        """``lookups``: false for ids only written and read back (:meth:`keys`), never looked up; they are not
        hashed."""
        self._directory = tempfile.TemporaryDirectory(prefix="churnops-run-ids-")  # pylint: disable=consider-using-with
        self._chunks: list[_Chunk] = []
        self._hashes = IdHashes()
        self._lookups = lookups
        self._written = 0

    def __enter__(self) -> RunIds:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the files (the object is of no use after)."""
        self._chunks = []
        self._hashes = IdHashes()
        self._directory.cleanup()

    def __len__(self) -> int:
        return sum(chunk.rows for chunk in self._chunks)

    def mark(self) -> int:
        """A point to :meth:`rollback` to."""
        return len(self._chunks)

    def rollback(self, mark: int) -> None:
        """Forget the ids added since ``mark`` (an object that ended up quarantined whole publishes none)."""
        for chunk in self._chunks[mark:]:
            chunk.path.unlink()
        del self._chunks[mark:]
        self._hashes.keep_parts_before(mark)

    def add(self, source: str, ids: pa.Array | HashedIds, hours: pa.Array) -> pa.Table:
        """Add ``source``'s ``ids`` (text) with their record ``hours`` (one each); nothing for no id. Returns them
        as kept (:data:`KEYS_SCHEMA`)."""
        text = ids.ids if isinstance(ids, HashedIds) else ids.cast(pa.large_string())
        table = pa.table([text, hours.cast(RECORD_HOUR_TYPE)], schema=KEYS_SCHEMA)
        if len(table) == 0:
            return table
        self._written += 1
        path = Path(self._directory.name) / f"{self._written}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, KEYS_SCHEMA) as writer:
            writer.write_table(table)
        if self._lookups:
            self._hashes.add(ids, len(self._chunks))
        self._chunks.append(_Chunk(source, path, len(table)))
        return table

    @property
    def lookups(self) -> bool:
        """Whether the ids are kept to be looked up (:meth:`repeated`), or only written and read back."""
        return self._lookups

    def repeated(self, ids: pa.Array | HashedIds) -> np.ndarray:
        """Which of ``ids`` (a boolean each) were added before."""
        if not self._lookups:
            raise TypeError("these ids are kept without lookups")
        return self._hashes.find(ids, lambda chunk: _read(self._chunks[chunk].path).column("id"))

    def keys(self, source: str | None = None) -> Iterator[tuple[str, pa.Table]]:
        """The ids (with their hours, :data:`KEYS_SCHEMA`) as added, chunk by chunk with their source; only
        ``source``'s if given."""
        for chunk in list(self._chunks):
            if source is None or chunk.source == source:
                yield chunk.source, _read(chunk.path)


def _read(path: Path) -> pa.Table:
    with pa.OSFile(str(path), "rb") as source:
        return pa.ipc.open_file(source).read_all()
