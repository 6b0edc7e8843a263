"""A parquet file written a chunk at a time to a temporary file, so its rows are never all in memory; an ingested
object's partition file with its pre-aggregates, appended to in a thread of their own."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnops.data import aggregates, schema
from churnops.data.tempfiles import temporary_file


class ParquetSpool:
    """One parquet file written chunk by chunk (a row group or more each) to a temporary file.

    Its columns and types are those of the first frame (a pandas frame or an Arrow table) with rows
    (a column with no value there, which pandas leaves untyped, is text); frames without rows add
    nothing, unless no frame has rows. Each frame is one row group.
    """

    def __init__(self, dictionary: bool | list[str] = True) -> None:
        """``dictionary``: the columns to dictionary-encode (parquet's ``use_dictionary``; all by default). A column
        of distinct values such as ids is better written plain: its dictionary would be built and dropped."""
        self.dictionary = dictionary
        self.file = temporary_file()  # closed by __exit__
        self.writer: pq.ParquetWriter | None = None
        self.empty: pa.Table | None = None
        self.owned = True  # whether __exit__ closes the file (until detach hands it over)

    def __enter__(self) -> ParquetSpool:
        return self

    def __exit__(self, *_: object) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.owned:
            self.file.close()

    def write(self, frame: pd.DataFrame | pa.Table) -> None:
        """Append ``frame``'s rows (a pandas frame is written as :meth:`pyarrow.Table.from_pandas` makes it)."""
        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            if not table.num_rows and self.empty is None:
                self.empty = table
            if not table.num_rows:
                return
            schema_ = pa.schema(
                [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in table.schema],
                metadata=table.schema.metadata,
            )
            self.writer = pq.ParquetWriter(self.file, schema_, compression="zstd", use_dictionary=self.dictionary)
        self.writer.write_table(table.select(self.writer.schema.names).cast(self.writer.schema))

    def close(self) -> bytes:
        """The file's bytes, once every frame is written."""
        with self.detach() as file:
            return file.read()

    def detach(self) -> IO[bytes]:
        """The file, at its start, once every frame is written; the caller closes it (the spool no longer does)."""
        if self.writer is None:
            if self.empty is None:
                raise ValueError("nothing was written")
            self.writer = pq.ParquetWriter(
                self.file, self.empty.schema, compression="zstd", use_dictionary=self.dictionary
            )
            self.writer.write_table(self.empty)
        self.writer.close()
        self.writer = None
        self.file.seek(0)
        self.owned = False
        return self.file


class PartitionSpool:
    """The partition file of one object and, for events, its pre-aggregates (:class:`aggregates.HourlyAggregator`),
    appended to a chunk at a time in a thread of their own: a chunk's parquet encoding and sums overlap the check
    of the next chunk, and at most one chunk waits to be appended."""

    def __init__(self, kind: str) -> None:
        self.spool = ParquetSpool()
        self.summary = aggregates.HourlyAggregator() if kind == schema.EVENTS else None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="partition-append")
        self._pending: Future[None] | None = None

    def __enter__(self) -> PartitionSpool:
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.shutdown(wait=True)  # an append under way ends before the file is closed
        self.spool.__exit__()

    def append(self, rows: pa.Table) -> None:
        """Append ``rows`` (the published rows of a chunk), once the chunk before them is appended."""
        self.wait()
        self._pending = self._thread.submit(self._append, rows)

    def _append(self, rows: pa.Table) -> None:
        self.spool.write(rows)
        if self.summary is not None:
            self.summary.add(rows)

    def wait(self) -> None:
        """Wait until every chunk is appended (raising what an append raised)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()
