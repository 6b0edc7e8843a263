"""Opening the raw objects of an ingest run: each downloaded to a temporary file and read to its first chunk,
the next one while the one before is checked (:class:`OneAhead`), so the check rarely waits for a download.

:class:`~churnops.data.ingest.IngestRun` opens its objects through these; what it does with the chunks is its own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

from churnops.data import parse
from churnops.data.ingest_steps import ListedObject
from churnops.platform.storage import ObjectRef

Download = Callable[[ObjectRef], IO[bytes]]
"""The stored bytes of exactly one generation of an object, as a temporary file (the caller closes it)."""


@dataclass
class Opened:
    """An object read up to its first chunk: its stored bytes (a temporary file), its chunks, and the first one
    (None for no chunk), parsed."""

    stored: IO[bytes]
    chunks: Generator[parse.ParsedObject, None, None]
    first: parse.ParsedObject | None

    def close(self) -> None:
        """Stop reading (the chunk being parsed ends first) and delete the temporary file."""
        with self.stored:
            self.chunks.close()

    def all_chunks(self) -> Iterator[parse.ParsedObject]:
        """Every chunk, the first one included (handed over: no reference to it is kept here)."""
        if self.first is not None:
            first, self.first = self.first, None
            yield first
            del first
        yield from self.chunks


def open_object(download: Download, ref: ObjectRef, chunk_bytes: int | None, chunk_rows: int | None) -> Opened:
    """Download an object and parse its first chunk (:func:`parse.iter_object`, in chunks of about
    ``chunk_bytes`` of text or ``chunk_rows`` records). Raises what the download or the parse raised, its
    temporary file deleted."""
    stored = download(ref)
    chunks = parse.iter_object(ref.name, stored, ref.content_encoding, chunk_bytes, chunk_rows)
    try:
        return Opened(stored, chunks, next(chunks, None))
    except BaseException:
        Opened(stored, chunks, None).close()
        raise


class OneAhead:
    """Opens the objects of a run one ahead (``opener``, in a thread of its own): the next object is downloaded
    and its first chunk parsed while the one before finishes (its last chunk appended, its files written),
    instead of after. At most one object is opened ahead; one not taken is closed at the end."""

    def __init__(self, opener: Callable[[ListedObject], Opened], sources: list[ListedObject]) -> None:
        self.opener = opener
        self.sources = sources
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="object-open")
        self.pending: dict[int, Future[Opened]] = {}

    def __enter__(self) -> OneAhead:
        return self

    def __exit__(self, *_: object) -> None:
        self.thread.shutdown(wait=True)
        for pending in self.pending.values():
            if pending.exception() is None:
                pending.result().close()

    def open(self, position: int) -> None:
        """Start opening the object at ``position`` (nothing past the end, for a misnamed object or twice)."""
        if position < len(self.sources) and not self.sources[position].name_error and position not in self.pending:
            self.pending[position] = self.thread.submit(self.opener, self.sources[position])

    def opening(self, position: int) -> Future[Opened] | None:
        """The object at ``position`` being opened, if it is (it is then the caller's to close)."""
        return self.pending.pop(position, None)
