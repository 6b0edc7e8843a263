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
from collections.abc import Iterator
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


_CHUNK_BITS = 16
_CHUNK_MASK = np.uint64((1 << _CHUNK_BITS) - 1)


class _SortedEntries:
    """A sorted set of ``uint64`` entries kept as 256 sorted arrays, by their top 8 bits: adding a chunk's entries
    merges each part into a small array (no copy of the whole set), and a lookup searches the parts."""

    def __init__(self) -> None:
        self.parts = [np.zeros(0, dtype=np.uint64) for _ in range(256)]

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    @staticmethod
    def _split(values: np.ndarray) -> Iterator[tuple[int, slice]]:
        """The parts sorted ``values`` fall in, with the slice of ``values`` of each."""
        bounds = np.searchsorted(values >> np.uint64(56), np.arange(257, dtype=np.uint64))
        for part in np.flatnonzero(bounds[1:] > bounds[:-1]).tolist():
            yield part, slice(int(bounds[part]), int(bounds[part + 1]))

    def add(self, values: np.ndarray) -> None:
        """Add ``values``."""
        values = np.sort(values)
        for part, rows in self._split(values):
            merged = np.concatenate([self.parts[part], values[rows]])
            merged.sort(kind="stable")  # two sorted runs: merged in one pass
            self.parts[part] = merged

    def keep_chunks_before(self, mark: int) -> None:
        """Drop the entries of chunks numbered ``mark`` or more."""
        self.parts = [part[(part & _CHUNK_MASK) < mark] for part in self.parts]

    def matching(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which ``keys`` (hashes with their chunk bits 0) some entry has (a boolean each), and those entries."""
        found = np.zeros(len(keys), dtype=bool)
        matched = [np.zeros(0, dtype=np.uint64)]
        order = np.argsort(keys)  # sorted keys search a sorted array in a fraction of the time
        ordered = keys[order]
        for part, rows in self._split(ordered):
            entries, wanted = self.parts[part], ordered[rows]
            if len(entries) == 0:
                continue
            first = np.searchsorted(entries, wanted, side="left")
            hit = (entries[np.minimum(first, len(entries) - 1)] & ~_CHUNK_MASK) == wanted
            found[order[rows]] = hit
            if hit.any():  # each hit's entries: from its first to the last with its 48 bits
                first = first[hit]
                counts = np.searchsorted(entries, wanted[hit] | _CHUNK_MASK, side="right") - first
                matched.append(entries[np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())])
        return found, np.concatenate(matched)


@dataclass
class _Chunk:
    source: str
    path: Path
    rows: int


class RunIds:
    """Ids added chunk by chunk, each with its source object and record hour: looked up exactly
    (:meth:`repeated`), read back per source (:meth:`keys`), dropped back to a :meth:`mark`.

    What is held in memory is a sorted set of ``uint64`` entries, one an id: the high 48 bits of its hash and
    the number of the chunk that holds it (16 bits). A lookup is a binary search of it; the few ids whose 48
    bits match are compared with the ids of the chunks the matching entries name.
    """

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="churnops-run-ids-")  # pylint: disable=consider-using-with
        self._chunks: list[_Chunk] = []
        self._entries = _SortedEntries()
        self._written = 0

    def __enter__(self) -> RunIds:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the files (the object is of no use after)."""
        self._chunks = []
        self._entries = _SortedEntries()
        self._directory.cleanup()

    def __len__(self) -> int:
        return len(self._entries)

    def mark(self) -> int:
        """A point to :meth:`rollback` to."""
        return len(self._chunks)

    def rollback(self, mark: int) -> None:
        """Forget the ids added since ``mark`` (an object that ended up quarantined whole publishes none)."""
        for chunk in self._chunks[mark:]:
            chunk.path.unlink()
        del self._chunks[mark:]
        self._entries.keep_chunks_before(mark)

    def add(self, source: str, ids: pa.Array, hours: pa.Array) -> None:
        """Add ``source``'s ``ids`` (text) with their record ``hours`` (one each); nothing for no id."""
        if len(ids) == 0:
            return
        number = len(self._chunks)
        if number > int(_CHUNK_MASK):
            raise ValueError(f"more than {int(_CHUNK_MASK) + 1:,} chunks of ids in one run: stage it in more groups")
        table = pa.table([ids.cast(pa.large_string()), hours.cast(RECORD_HOUR_TYPE)], schema=KEYS_SCHEMA)
        self._written += 1
        path = Path(self._directory.name) / f"{self._written}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, KEYS_SCHEMA) as writer:
            writer.write_table(table)
        self._chunks.append(_Chunk(source, path, len(table)))
        self._entries.add((id_hashes(table.column("id").combine_chunks()) & ~_CHUNK_MASK) | np.uint64(number))

    def repeated(self, ids: pa.Array) -> np.ndarray:
        """Which of ``ids`` (a boolean each) were added before."""
        result = np.zeros(len(ids), dtype=bool)
        if len(self._entries) == 0 or len(ids) == 0:
            return result
        candidates, matched = self._entries.matching(id_hashes(ids) & ~_CHUNK_MASK)
        if not candidates.any():
            return result
        owners = np.unique(matched & _CHUNK_MASK).tolist()
        earlier = pa.chunked_array([_read(self._chunks[owner].path).column("id") for owner in owners]).combine_chunks()
        looked_up = ids.cast(pa.large_string()).filter(pa.array(candidates))
        found = pc.call_function("is_in", [looked_up], pc.SetLookupOptions(earlier))
        result[candidates] = np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
        return result

    def sources(self) -> list[str]:
        """The sources ids were added for, in the order first added."""
        return list(dict.fromkeys(chunk.source for chunk in self._chunks))

    def keys(self, source: str | None = None) -> Iterator[tuple[str, pa.Table]]:
        """The ids (with their hours, :data:`KEYS_SCHEMA`) as added, chunk by chunk with their source; only
        ``source``'s if given."""
        for chunk in list(self._chunks):
            if source is None or chunk.source == source:
                yield chunk.source, _read(chunk.path)


def _read(path: Path) -> pa.Table:
    with pa.OSFile(str(path), "rb") as source:
        return pa.ipc.open_file(source).read_all()
