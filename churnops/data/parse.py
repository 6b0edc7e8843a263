"""Parsing raw objects: the bytes of one raw object into rows of raw values (no I/O).

:func:`iter_object` reads JSON Lines for events and CSV for subscriptions from a stream of the
object's stored bytes, in chunks of bounded size (whole lines, whole CSV records), so what it holds
does not depend on the object's size; :func:`parse_object` is the same on bytes in memory, as one
chunk. Lines that cannot be parsed are kept aside as *malformed*; an object that cannot be read at
all raises :class:`UnreadableObject` (from :func:`iter_object`, possibly after some chunks: the
caller then drops what it made of them). Checking the rows against the contract is
:mod:`churnops.data.contract`.
"""

from __future__ import annotations

import codecs
import csv
import functools
import gzip
import io
import re
import struct
import sys
import zlib
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.json as pyarrow_json
from orjson import JSONDecodeError, loads  # pylint: disable=no-name-in-module  # C extension

from churnops.data.naming import kind_of
from churnops.data.schema import CONTRACT_COLUMNS, FLOAT, SUBSCRIPTIONS, contract_schema
from churnops.errors import DataContractError

_MALFORMED_COLUMNS = ["_line", "_raw", "_reason"]
_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
_JSONL_CHUNK = 65_536  # lines parsed per list comprehension
CHUNK_BYTES = 32 * 1024 * 1024
"""Decompressed JSON Lines text parsed at a time (whole lines; a longer line is read whole)."""
CHUNK_ROWS = 200_000
"""CSV records parsed at a time."""
_ONE_ARRAY_BYTES = 1 << 30  # text whose columns fit Arrow's 32-bit string offsets whatever its split
_READ_BYTES = 1024 * 1024
_GZIP_INPUT_BYTES = 1024 * 1024
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 2, 4, 8, 16  # gzip header flags (RFC 1952)
_Text = bytes | memoryview
"""JSON Lines text: bytes, or a view of the buffer a chunk was read into."""


class UnreadableObject(DataContractError):
    """The object as a whole cannot be read (corrupt gzip, empty, undecodable text, not JSON/CSV)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ParsedObject:
    """Rows of raw values read from one object, plus the lines that could not be parsed.

    ``rows`` has one object-dtype column per field seen in the object, holding the values as read
    (CSV: strings; JSON: strings, numbers, booleans, nested lists/dicts; absent keys are null).
    ``malformed`` has the columns ``_line``, ``_raw`` and ``_reason``.
    """

    rows: pd.DataFrame
    malformed: pd.DataFrame
    rows_in: int
    line_numbers: np.ndarray | None = field(default=None)
    """1-based line in the object where each row starts; ``None`` means row ``i`` is on line ``i + 1``."""

    def lines(self) -> np.ndarray:
        """The line number of every row in ``rows``."""
        if self.line_numbers is None:
            return np.arange(1, len(self.rows) + 1, dtype=np.int64)
        return np.asarray(self.line_numbers, dtype=np.int64)


def _malformed_frame(entries: list[tuple[int, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(entries, columns=_MALFORMED_COLUMNS)
    return frame.astype({"_line": np.int64, "_raw": object, "_reason": object})


def no_rows(columns: Iterable[str]) -> ParsedObject:
    """A parsed object with ``columns`` (object dtype, as parsed) and no row, nor malformed line."""
    rows = pd.DataFrame({name: pd.Series([], dtype=object) for name in columns})
    return ParsedObject(rows=rows, malformed=_malformed_frame([]), rows_in=0)


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value (``object``, ``array``, ``string``, ``number``, ...)."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _require_utf8(text: _Text, first_line: int = 1) -> None:
    """Raise :class:`UnreadableObject` unless ``text`` (whose first line is ``first_line`` of its
    object) is valid UTF-8 (both JSON paths call this first).

    Arrow validates the text (the same rules as Python's strict UTF-8 codec: no overlong forms, no
    surrogates, nothing above U+10FFFF) without holding the GIL; only invalid text is decoded by
    Python, to find where it breaks.
    """
    if _valid_utf8(text):
        return
    text = bytes(text)
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = text.count(b"\n", 0, exc.start) + first_line
        raise UnreadableObject(f"not valid UTF-8 text (line {line})") from exc


def _has_bom(text: _Text) -> bool:
    return text[: len(codecs.BOM_UTF8)] == codecs.BOM_UTF8


def _valid_utf8(text: _Text) -> bool:
    """Whether ``text`` is valid UTF-8, checked by Arrow on the bytes as they are (no copy)."""
    offsets = pyarrow.array([0, len(text)], type=pyarrow.int64()).buffers()[1]
    value = pyarrow.Array.from_buffers(pyarrow.large_string(), 1, [None, offsets, pyarrow.py_buffer(text)])
    try:
        value.validate(full=True)
    except pyarrow.ArrowInvalid:
        return False
    return True


def _parse_jsonl(text: bytes) -> ParsedObject:
    """Parse JSON Lines: one object per line; blank lines are skipped, other bad lines kept aside.

    Lines are parsed in chunks with one list comprehension each; only a chunk that holds a bad
    line is parsed again line by line, so a large object with a few bad lines stays fast.
    """
    _require_utf8(text)
    if text.startswith(codecs.BOM_UTF8):
        text = text[len(codecs.BOM_UTF8) :]
    parsed = _parse_jsonl_records(text)
    if parsed.rows.empty:
        _no_records(len(parsed.malformed))
    return parsed


def _no_records(malformed: int) -> None:
    """Raise :class:`UnreadableObject` for JSON Lines that hold no JSON object."""
    if not malformed:
        raise UnreadableObject("empty object")
    raise UnreadableObject(f"not JSON Lines: none of the {malformed} line(s) is a JSON object")


def _parse_jsonl_records(text: bytes) -> ParsedObject:
    """The line-by-line path on UTF-8 text: the records and the malformed lines (either may be none)."""
    lines = text.split(b"\n")
    while lines and not lines[-1].strip():  # the newline that ends the last line, trailing blank lines
        lines.pop()
    records: list[dict[str, Any]] = []
    numbers: list[np.ndarray] = []
    malformed: list[tuple[int, str, str]] = []
    for start in range(0, len(lines), _JSONL_CHUNK):
        chunk = lines[start : start + _JSONL_CHUNK]
        try:
            values = [loads(line) for line in chunk]
            if all(isinstance(value, dict) for value in values):
                records.extend(values)
                numbers.append(np.arange(start + 1, start + len(chunk) + 1, dtype=np.int64))
                continue
        except JSONDecodeError:
            pass
        chunk_numbers = _parse_jsonl_lines(chunk, start, records, malformed)
        numbers.append(np.asarray(chunk_numbers, dtype=np.int64))
    rows = pd.DataFrame(records, dtype=object)
    line_numbers = np.concatenate(numbers) if numbers else np.zeros(0, dtype=np.int64)
    return ParsedObject(
        rows=rows,
        malformed=_malformed_frame(malformed),
        rows_in=len(rows) + len(malformed),
        line_numbers=None if rows.empty or line_numbers[-1] == len(rows) else line_numbers,
    )


def _parse_jsonl_lines(
    lines: list[bytes], offset: int, records: list[dict[str, Any]], malformed: list[tuple[int, str, str]]
) -> list[int]:
    """Parse lines one by one into ``records``/``malformed``; returns the line numbers of the records."""
    numbers: list[int] = []
    for number, line in enumerate(lines, start=offset + 1):
        if not line.strip():
            continue
        try:
            value = loads(line)
        except JSONDecodeError as exc:
            malformed.append((number, _decoded(line), f"not valid JSON: {exc}"))
            continue
        if not isinstance(value, dict):
            malformed.append((number, _decoded(line), f"line is a JSON {json_type(value)}, not an object"))
            continue
        records.append(value)
        numbers.append(number)
    return numbers


def _decoded(line: bytes) -> str:
    return line.decode("utf-8").rstrip("\r")  # the whole object was checked by _require_utf8


class _Guarded(io.RawIOBase):
    """A readable stream whose read errors (a corrupt gzip layer) become :class:`UnreadableObject`."""

    def __init__(self, inner: IO[bytes] | io.BufferedIOBase | io.RawIOBase, message: str) -> None:
        super().__init__()
        self.inner = inner
        self.message = message

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self.inner.read(len(buffer))
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableObject(f"{self.message}: {exc}") from exc
        buffer[: len(data)] = data
        return len(data)


class _GzipMembers(io.RawIOBase):
    """The decompressed bytes of a gzip stream of one or more members, read as :class:`gzip.GzipFile` reads
    them: the same header, CRC and length checks, zero padding between members, and the same errors
    (:class:`gzip.BadGzipFile`, :class:`EOFError`, :class:`zlib.error`) with the same messages.

    It feeds zlib :data:`_GZIP_INPUT_BYTES` of compressed input per call, where ``GzipFile`` feeds 8 KiB: far
    fewer calls, each of which lets go of the GIL for longer (the reader thread's decompression then holds up
    the thread that checks the chunk before less often).
    """

    def __init__(self, compressed: IO[bytes] | io.BufferedIOBase) -> None:
        super().__init__()
        self._compressed = compressed
        self._input = b""  # compressed bytes read from the stream, those before _used given to zlib or parsed
        self._used = 0
        self._member: Any = None  # the zlib decompressor of the member being read; None between members
        self._crc = 0
        self._size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` decompressed bytes (at least one, unless the stream ended)."""
        if size < 0:
            return self.readall()
        if not size:
            return b""
        while True:
            if self._member is not None and self._member.eof:
                self._member_end()
            if self._member is None:
                self._crc, self._size = 0, 0
                if not self._member_header():
                    return b""
                self._member = zlib.decompressobj(-zlib.MAX_WBITS)
            given = self._take(_GZIP_INPUT_BYTES)
            data: bytes = self._member.decompress(given, size)
            self._put_back(len(self._member.unconsumed_tail) or len(self._member.unused_data))
            if data:
                break
            if not given:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        return data

    def _take(self, size: int) -> bytes:
        """The next ``size`` compressed bytes (fewer only at the end of the stream)."""
        if self._used + size > len(self._input):  # read on, keeping what is left, so it can be given back
            more = self._compressed.read(max(size, _GZIP_INPUT_BYTES))
            if more:
                self._input, self._used = self._input[self._used :] + more, 0
        taken = self._input[self._used : self._used + size]
        self._used += len(taken)
        return taken

    def _put_back(self, count: int) -> None:
        """Give back the last ``count`` bytes taken."""
        self._used -= count

    def _take_exactly(self, size: int) -> bytes:
        taken = self._take(size)
        while len(taken) < size:
            more = self._take(size - len(taken))
            if not more:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            taken += more
        return taken

    def _member_header(self) -> bool:
        """Read a member's header; False at the end of the stream."""
        magic = self._take(2)
        if magic == b"":
            return False
        if magic != b"\037\213":
            raise gzip.BadGzipFile(f"Not a gzipped file ({magic!r})")
        method, flags, _ = struct.unpack("<BBIxx", self._take_exactly(8))
        if method != 8:
            raise gzip.BadGzipFile("Unknown compression method")
        if flags & _FEXTRA:
            (extra,) = struct.unpack("<H", self._take_exactly(2))
            self._take_exactly(extra)
        for flag in (_FNAME, _FCOMMENT):  # zero-terminated
            while flags & flag:
                byte = self._take(1)
                if not byte or byte == b"\000":
                    break
        if flags & _FHCRC:
            self._take_exactly(2)
        return True

    def _member_end(self) -> None:
        """Check a member's CRC and length, skip the zero padding after it."""
        crc, length = struct.unpack("<II", self._take_exactly(8))
        if crc != self._crc:
            raise gzip.BadGzipFile(f"CRC check failed {hex(crc)} != {hex(self._crc)}")
        if length != (self._size & 0xFFFFFFFF):
            raise gzip.BadGzipFile("Incorrect length of data produced")
        byte = b"\x00"
        while byte == b"\x00":
            byte = self._take(1)
        if byte:
            self._put_back(1)
        self._member = None


def _guarded(inner: IO[bytes] | io.BufferedIOBase | io.RawIOBase, message: str) -> io.BufferedReader:
    return io.BufferedReader(_Guarded(inner, message), buffer_size=_READ_BYTES)


def decode_content_encoding(stored: IO[bytes], content_encoding: str | None) -> io.BufferedReader:
    """The object's own bytes from its stored bytes, as a stream: undo a ``Content-Encoding``
    (``gsutil cp -Z`` writes gzip).

    The encoding is a transport layer on top of the object's format, so a ``.jsonl.gz`` object
    stored with ``Content-Encoding: gzip`` is gzip inside gzip.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return _guarded(stored, "cannot read the object")
    if encoding != "gzip":
        raise UnreadableObject(f"unsupported Content-Encoding {encoding!r}")
    layer = gzip.GzipFile(fileobj=stored, mode="rb")
    return _guarded(layer, "stored with Content-Encoding gzip but not a valid gzip stream")


def iter_object(
    object_name: str,
    stored: IO[bytes],
    content_encoding: str | None = None,
    chunk_bytes: int | None = CHUNK_BYTES,
    chunk_rows: int | None = CHUNK_ROWS,
) -> Generator[ParsedObject, None, None]:
    """Parse a raw object's stored bytes (a stream) into chunks of rows of raw values.

    ``content_encoding`` is the object's ``Content-Encoding`` metadata: ``stored`` gives the
    bytes as stored (read without decompressive transcoding), and the encoding is undone here.
    Each chunk holds whole lines (JSON Lines, at most about ``chunk_bytes`` of text) or whole
    records (CSV, at most ``chunk_rows``); its line numbers are the object's. ``None`` reads
    the object as one chunk. Raises :class:`UnreadableObject`, possibly after some chunks.
    """
    kind = kind_of(object_name)
    data = decode_content_encoding(stored, content_encoding)
    if not data.peek(1):
        raise UnreadableObject("empty object")
    if kind == SUBSCRIPTIONS:
        yield from _iter_csv(data, chunk_rows)
        return
    text = _guarded(_GzipMembers(data), "not a valid gzip stream")
    yield from _iter_jsonl(text, kind, chunk_bytes)


def parse_object(object_name: str, data: bytes, content_encoding: str | None = None) -> ParsedObject:
    """Parse a raw object's stored bytes into rows of raw values, as one chunk (:func:`iter_object`)."""
    (parsed,) = iter_object(object_name, io.BytesIO(data), content_encoding, chunk_bytes=None, chunk_rows=None)
    return parsed


def _iter_jsonl(text: io.BufferedReader, kind: str, chunk_bytes: int | None) -> Iterator[ParsedObject]:
    """JSON Lines in chunks of whole lines; raises at the end if no line was a JSON object.

    The next chunk is read (decompressed), checked as UTF-8 and parsed in a thread while the caller
    works on the chunk before it (the decompression, the UTF-8 check and pyarrow's JSON reader run
    without the GIL); its errors are raised when the chunk is asked for. Closing the iterator waits
    for that chunk.
    """
    chunks = _JsonlChunks(text, kind, -1 if chunk_bytes is None else chunk_bytes)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="jsonl-read") as reader:
        pending = reader.submit(chunks.next_chunk)
        while True:
            parsed = pending.result()
            if parsed is None:
                break
            pending = reader.submit(chunks.next_chunk)
            yield parsed
    if not chunks.records:
        _no_records(chunks.malformed)


class _JsonlChunks:
    """Cuts JSON Lines text read in blocks of ``size`` bytes (``-1``: all of it) into chunks of whole
    lines and parses each; one chunk at a time, in order (:func:`_iter_jsonl`'s reader thread)."""

    def __init__(self, text: io.BufferedReader, kind: str, size: int) -> None:
        self.text = text
        self.kind = kind
        self.size = size
        self.carry = b""
        self.ended = False
        self.lines_before = 0
        self.records = 0
        self.malformed = 0

    def next_chunk(self) -> ParsedObject | None:
        """The next chunk parsed, or None at the end of the text."""
        while not self.ended:
            buffer = self._read_block()
            cut = len(buffer) if self.ended else buffer.rfind(b"\n") + 1
            if not cut and not self.ended:  # no line ends in what was read: read on
                self.carry = bytes(buffer)
                continue
            self.carry = bytes(buffer[cut:])
            if cut:
                newlines = buffer.count(b"\n", 0, cut)
                parsed = _parse_jsonl_chunk(memoryview(buffer)[:cut], self.kind, self.lines_before, newlines)
                self.lines_before += newlines
                self.records += len(parsed.rows)
                self.malformed += len(parsed.malformed)
                return parsed
        return None

    def _read_block(self) -> bytes | bytearray:
        """The text carried from the block before (the start of a line) and the next block, in one buffer: the
        block is read into it, not copied after the carry, and the chunk cut from it is a view, not a copy."""
        if self.size < 0:
            self.ended = True
            return self.carry + self.text.read()
        buffer = bytearray(len(self.carry) + self.size)
        buffer[: len(self.carry)] = self.carry
        with memoryview(buffer) as whole, whole[len(self.carry) :] as rest:
            read = self.text.readinto(rest)
        self.ended = read < self.size  # a short read is the end of the stream
        if self.ended:
            del buffer[len(self.carry) + read :]
        return buffer


def _parse_jsonl_chunk(chunk: _Text, kind: str, lines_before: int, newlines: int) -> ParsedObject:
    """One chunk of whole lines, the first of which is line ``lines_before + 1`` of its object; ``newlines``:
    how many line ends it holds."""
    _require_utf8(chunk, lines_before + 1)
    if not lines_before and _has_bom(chunk):  # a byte order mark starts the object only
        chunk = chunk[len(codecs.BOM_UTF8) :]
    parsed = _parse_jsonl_arrow(chunk, kind, checked=True, newlines=newlines) or _parse_jsonl_records(bytes(chunk))
    if lines_before:
        parsed.line_numbers = parsed.lines() + lines_before
        parsed.malformed["_line"] += lines_before
    return parsed


def _decoded_lines(data: IO[bytes]) -> Iterator[str]:
    """The lines of UTF-8 text read from ``data`` (a byte order mark dropped), each with its line
    end (``\\n``, ``\\r\\n`` or ``\\r``, as :class:`csv.reader` wants them). Raises
    :class:`UnreadableObject` at the first byte that is not UTF-8 (counted from after the mark)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    consumed = 0
    carry = ""
    first = True
    while True:
        block = data.read(_READ_BYTES)
        if first and block.startswith(codecs.BOM_UTF8):
            block = block[len(codecs.BOM_UTF8) :]
        first = False
        start = consumed - len(decoder.getstate()[0])
        try:
            text = carry + decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            raise UnreadableObject(f"not valid UTF-8 text (byte {start + exc.start})") from exc
        consumed += len(block)
        lines = io.StringIO(text, newline="").readlines()
        carry = ""
        if block and lines and (not lines[-1].endswith(("\n", "\r")) or lines[-1].endswith("\r")):
            carry = lines.pop()  # a line (or a \r\n) that may go on in the next block
        yield from lines
        if not block:
            return


class _RecordedLines:
    """The lines of a text stream, remembering those read since :meth:`mark` (one CSV record's)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.since_mark: list[str] = []
        self.nonblank = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.since_mark.append(line)
        self.nonblank = self.nonblank or not line.isspace()
        return line

    def mark(self) -> None:
        """Forget the lines read so far."""
        self.since_mark = []

    def blank(self) -> bool:
        """Whether the whole text is blank (reads the rest of it)."""
        for _ in self:
            if self.nonblank:
                break
        return not self.nonblank


def _csv_header(reader: Any, lines: _RecordedLines) -> list[str]:
    """The header row, checked: raises :class:`UnreadableObject` for an object without one."""
    try:
        header: list[str] = next(reader)
        while not header:  # blank lines before the header
            header = next(reader)
    except (csv.Error, StopIteration) as exc:
        if lines.blank():
            raise UnreadableObject("empty object") from exc
        raise UnreadableObject(f"not CSV: cannot read a header row ({exc})") from exc
    known = set(CONTRACT_COLUMNS[SUBSCRIPTIONS])
    if not known.intersection(header):
        if lines.blank():
            raise UnreadableObject("empty object")
        # The first row is data, not a header: its values (ids, names, e-mails) must not become
        # column names, which reports, markers and alerts would carry.
        raise UnreadableObject(f"no header row: none of the {len(header)} fields of the first row is a contract column")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        shown = [name for name in duplicates if name in known]
        others = len(duplicates) - len(shown)
        listed = ", ".join(shown + ([f"{others} other name(s)"] if others else []))
        raise UnreadableObject(f"not CSV: duplicate column names in the header: {listed}")
    return header


def _iter_csv(data: IO[bytes], chunk_rows: int | None) -> Iterator[ParsedObject]:
    """CSV with a header row, in chunks of whole records; rows with the wrong number of fields are kept aside."""
    lines = _RecordedLines(_decoded_lines(data))
    reader = csv.reader(lines, strict=True)
    header = _csv_header(reader, lines)
    limit = chunk_rows or sys.maxsize
    records: list[list[str]] = []
    numbers: list[int] = []
    malformed: list[tuple[int, str, str]] = []
    last_line = reader.line_num
    chunks = 0
    while True:
        first_line = last_line + 1
        lines.mark()
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            malformed.append((first_line, "".join(lines.since_mark).rstrip("\r\n"), f"not valid CSV: {exc}"))
            last_line = reader.line_num
            continue
        last_line = reader.line_num
        if not record:
            continue
        if len(record) != len(header):
            reason = f"has {len(record)} fields, the header has {len(header)}"
            malformed.append((first_line, "".join(lines.since_mark).rstrip("\r\n"), reason))
        else:
            records.append(record)
            numbers.append(first_line)
        if len(records) + len(malformed) >= limit:
            yield _csv_chunk(header, records, numbers, malformed)
            records, numbers, malformed = [], [], []
            chunks += 1
    if records or malformed or not chunks:
        yield _csv_chunk(header, records, numbers, malformed)


def _csv_chunk(
    header: list[str], records: list[list[str]], numbers: list[int], malformed: list[tuple[int, str, str]]
) -> ParsedObject:
    rows = pd.DataFrame(records, columns=header, dtype=object)
    return ParsedObject(
        rows=rows,
        malformed=_malformed_frame(malformed),
        rows_in=len(rows) + len(malformed),
        line_numbers=np.asarray(numbers, dtype=np.int64),
    )


@functools.lru_cache(maxsize=4)
def _arrow_read_schema(kind: str) -> pyarrow.Schema:
    """How pyarrow must read the contract's columns: numbers for float columns, text for the rest."""
    return pyarrow.schema(
        (name, pyarrow.float64() if col.dtype == FLOAT else pyarrow.string())
        for name, col in contract_schema(kind).columns.items()
    )


def _parse_jsonl_arrow(
    text: _Text, kind: str, checked: bool = False, newlines: int | None = None
) -> ParsedObject | None:
    """The fast path for well-formed JSON Lines: pyarrow's multi-threaded reader.

    It succeeds only when every line is a flat JSON object whose contract columns already have the
    contract's JSON types; anything else (a malformed or blank line, a number sent as text, a
    nested value) returns None, and the caller takes the line-by-line path, which reports it.
    ``checked``: ``text`` is known to be UTF-8; ``newlines``: the number of line ends in ``text``, if known.
    """
    if not checked:  # the caller has not validated the text, and pyarrow's reader does not
        _require_utf8(text)
    if _has_bom(text):
        return None
    options = pyarrow_json.ParseOptions(explicit_schema=_arrow_read_schema(kind), unexpected_field_behavior="infer")
    try:  # read from the text's own buffer, not a copy
        table = pyarrow_json.read_json(pyarrow.BufferReader(pyarrow.py_buffer(text)), parse_options=options)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError):
        return None
    end = len(text)
    while end and text[end - 1] == 0x0A:  # trailing newlines, without copying the object as rstrip would
        end -= 1
    # The lines up to the last that is not blank: the line ends before it, plus one.
    lines = (bytes(text).count(b"\n", 0, end) if newlines is None else newlines - (len(text) - end)) + 1
    flat = all(not pyarrow.types.is_nested(field_.type) for field_ in table.schema)
    if table.num_rows != lines or not flat:  # blank lines would shift line numbers
        return None
    # The explicit schema adds every contract column; keep an all-null one only if its key is in the text.
    absent = [
        name
        for name in _arrow_read_schema(kind).names
        if table.column(name).null_count == table.num_rows
        and not re.search(rb'"' + re.escape(name.encode()) + rb'"\s*:', text)
    ]
    table = table.drop_columns(absent)
    if len(text) < _ONE_ARRAY_BYTES:  # one array per column (the reader gives one per 1 MiB block): every step
        table = table.combine_chunks()  # after costs per array, not per block
    string_dtype = pd.StringDtype("pyarrow")
    rows = table.to_pandas(types_mapper={pyarrow.string(): string_dtype}.get)
    return ParsedObject(rows=rows, malformed=_malformed_frame([]), rows_in=len(rows))
