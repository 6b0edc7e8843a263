"""The ids a run (or one group of it) has published so far, with their record hours, for its in-run
de-duplication and its id index segments, in memory that does not grow with the ids' text.

In memory: a 64-bit hash of each id (8 bytes an id: 80 MB for a 10M-event object). On disk, in a
temporary directory: the ids themselves and their record hours, one Arrow file per chunk added. A
lookup (:meth:`RunIds.repeated`) hashes the ids looked up, finds the earlier ids with an equal hash
(Arrow's hash-based ``is_in`` over the stored hashes) and compares those ids exactly, read back from
their chunks' files: the answer is exact, and a hash shared by two different ids (rare) costs a file
read, never a wrong answer.
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


@dataclass
class _Chunk:
    source: str
    path: Path
    hashes: np.ndarray


class RunIds:
    """Ids added chunk by chunk, each with its source object and record hour: looked up exactly
    (:meth:`repeated`), read back per source (:meth:`keys`), dropped back to a :meth:`mark`."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="churnops-run-ids-")  # pylint: disable=consider-using-with
        self._chunks: list[_Chunk] = []
        self._written = 0

    def __enter__(self) -> RunIds:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the files (the object is of no use after)."""
        self._chunks = []
        self._directory.cleanup()

    def __len__(self) -> int:
        return sum(len(chunk.hashes) for chunk in self._chunks)

    def mark(self) -> int:
        """A point to :meth:`rollback` to."""
        return len(self._chunks)

    def rollback(self, mark: int) -> None:
        """Forget the ids added since ``mark`` (an object that ended up quarantined whole publishes none)."""
        for chunk in self._chunks[mark:]:
            chunk.path.unlink()
        del self._chunks[mark:]

    def add(self, source: str, ids: pa.Array, hours: pa.Array) -> None:
        """Add ``source``'s ``ids`` (text) with their record ``hours`` (one each); nothing for no id."""
        if len(ids) == 0:
            return
        table = pa.table([ids.cast(pa.large_string()), hours.cast(RECORD_HOUR_TYPE)], schema=KEYS_SCHEMA)
        self._written += 1
        path = Path(self._directory.name) / f"{self._written}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, KEYS_SCHEMA) as writer:
            writer.write_table(table)
        self._chunks.append(_Chunk(source, path, id_hashes(table.column("id").combine_chunks())))

    def repeated(self, ids: pa.Array) -> np.ndarray:
        """Which of ``ids`` (a boolean each) were added before."""
        result = np.zeros(len(ids), dtype=bool)
        if not self._chunks or len(ids) == 0:
            return result
        stored = pa.chunked_array([chunk.hashes for chunk in self._chunks], type=pa.uint64())
        found = pc.call_function("is_in", [stored], pc.SetLookupOptions(pa.array(id_hashes(ids))))
        hits = pc.call_function("indices_nonzero", [found]).to_numpy().astype(np.int64)
        if len(hits) == 0:
            return result
        starts = np.cumsum([0] + [len(chunk.hashes) for chunk in self._chunks])
        owners = np.searchsorted(starts, hits, side="right") - 1
        matched = [
            _read(self._chunks[owner].path).column("id").take(pa.array(hits[owners == owner] - starts[owner]))
            for owner in np.unique(owners)
        ]
        earlier = pa.chunked_array(matched).combine_chunks()
        found = pc.call_function("is_in", [ids.cast(pa.large_string())], pc.SetLookupOptions(earlier))
        return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)

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
