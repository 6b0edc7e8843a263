"""Parsing raw objects: the bytes of one raw object into rows of raw values (no I/O).

:func:`parse_object` reads JSON Lines for events and CSV for subscriptions. Lines that cannot be
parsed are kept aside as *malformed*; an object that cannot be read at all raises
:class:`UnreadableObject`. Checking the rows against the contract is :mod:`churnops.data.contract`.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

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


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value (``object``, ``array``, ``string``, ``number``, ...)."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _require_utf8(text: bytes) -> None:
    """Raise :class:`UnreadableObject` unless ``text`` is valid UTF-8 (both JSON paths call this first)."""
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = text.count(b"\n", 0, exc.start) + 1
        raise UnreadableObject(f"not valid UTF-8 text (line {line})") from exc


def _parse_jsonl(text: bytes) -> ParsedObject:
    """Parse JSON Lines: one object per line; blank lines are skipped, other bad lines kept aside.

    Lines are parsed in chunks with one list comprehension each; only a chunk that holds a bad
    line is parsed again line by line, so a large object with a few bad lines stays fast.
    """
    _require_utf8(text)
    if text.startswith(codecs.BOM_UTF8):
        text = text[len(codecs.BOM_UTF8) :]
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
    if not records:
        if not malformed:
            raise UnreadableObject("empty object")
        raise UnreadableObject(f"not JSON Lines: none of the {len(malformed)} line(s) is a JSON object")
    rows = pd.DataFrame(records, dtype=object)
    line_numbers = np.concatenate(numbers)
    return ParsedObject(
        rows=rows,
        malformed=_malformed_frame(malformed),
        rows_in=len(rows) + len(malformed),
        line_numbers=None if line_numbers[-1] == len(rows) else line_numbers,
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


def _parse_csv(data: bytes) -> ParsedObject:
    """Parse CSV with a header row; rows with the wrong number of fields are kept aside."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableObject(f"not valid UTF-8 text (byte {exc.start})") from exc
    if not text.strip():
        raise UnreadableObject("empty object")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
        while not header:  # blank lines before the header
            header = next(reader)
    except (csv.Error, StopIteration) as exc:
        raise UnreadableObject(f"not CSV: cannot read a header row ({exc})") from exc
    known = set(CONTRACT_COLUMNS[SUBSCRIPTIONS])
    if not known.intersection(header):
        # The first row is data, not a header: its values (ids, names, e-mails) must not become
        # column names, which reports, markers and alerts would carry.
        raise UnreadableObject(f"no header row: none of the {len(header)} fields of the first row is a contract column")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        shown = [name for name in duplicates if name in known]
        others = len(duplicates) - len(shown)
        listed = ", ".join(shown + ([f"{others} other name(s)"] if others else []))
        raise UnreadableObject(f"not CSV: duplicate column names in the header: {listed}")

    records: list[list[str]] = []
    numbers: list[int] = []
    bad: list[tuple[int, int, str]] = []  # (first line, last line, reason)
    last_line = reader.line_num
    while True:
        first_line = last_line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            bad.append((first_line, reader.line_num, f"not valid CSV: {exc}"))
            last_line = reader.line_num
            continue
        last_line = reader.line_num
        if not record:
            continue
        if len(record) != len(header):
            bad.append((first_line, last_line, f"has {len(record)} fields, the header has {len(header)}"))
            continue
        records.append(record)
        numbers.append(first_line)

    malformed: list[tuple[int, str, str]] = []
    if bad:
        physical = io.StringIO(text, newline="").readlines()
        malformed = [(first, "".join(physical[first - 1 : last]).rstrip("\r\n"), reason) for first, last, reason in bad]
    rows = pd.DataFrame(records, columns=header, dtype=object)
    return ParsedObject(
        rows=rows,
        malformed=_malformed_frame(malformed),
        rows_in=len(rows) + len(malformed),
        line_numbers=np.asarray(numbers, dtype=np.int64),
    )


def decode_content_encoding(data: bytes, content_encoding: str | None) -> bytes:
    """The object's own bytes from its stored bytes: undo a ``Content-Encoding`` (``gsutil cp -Z`` writes gzip).

    The encoding is a transport layer on top of the object's format, so a ``.jsonl.gz`` object
    stored with ``Content-Encoding: gzip`` is gzip inside gzip.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return data
    if encoding != "gzip":
        raise UnreadableObject(f"unsupported Content-Encoding {encoding!r}")
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableObject(f"stored with Content-Encoding gzip but not a valid gzip stream: {exc}") from exc


def parse_object(object_name: str, data: bytes, content_encoding: str | None = None) -> ParsedObject:
    """Parse a raw object's stored bytes into rows of raw values; raises :class:`UnreadableObject`.

    ``content_encoding`` is the object's ``Content-Encoding`` metadata: ``data`` are the bytes as
    stored (read without decompressive transcoding), and the encoding is undone here.
    """
    kind = kind_of(object_name)
    data = decode_content_encoding(data, content_encoding)
    if not data:
        raise UnreadableObject("empty object")
    if kind == SUBSCRIPTIONS:
        return _parse_csv(data)
    try:
        text = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableObject(f"not a valid gzip stream: {exc}") from exc
    if not text or text.isspace():  # isspace stops at the first other byte; strip() would copy the object
        raise UnreadableObject("empty object")
    return _parse_jsonl_arrow(text, kind) or _parse_jsonl(text)


def _arrow_read_schema(kind: str) -> pyarrow.Schema:
    """How pyarrow must read the contract's columns: numbers for float columns, text for the rest."""
    return pyarrow.schema(
        (name, pyarrow.float64() if col.dtype == FLOAT else pyarrow.string())
        for name, col in contract_schema(kind).columns.items()
    )


def _parse_jsonl_arrow(text: bytes, kind: str) -> ParsedObject | None:
    """The fast path for well-formed JSON Lines: pyarrow's multi-threaded reader.

    It succeeds only when every line is a flat JSON object whose contract columns already have the
    contract's JSON types; anything else (a malformed or blank line, a number sent as text, a
    nested value) returns None, and the caller takes the line-by-line path, which reports it.
    """
    _require_utf8(text)  # pyarrow's reader does not validate UTF-8
    if text.startswith(codecs.BOM_UTF8):
        return None
    options = pyarrow_json.ParseOptions(explicit_schema=_arrow_read_schema(kind), unexpected_field_behavior="infer")
    try:
        table = pyarrow_json.read_json(io.BytesIO(text), parse_options=options)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError):
        return None
    end = len(text)
    while end and text[end - 1] == 0x0A:  # trailing newlines, without copying the object as rstrip would
        end -= 1
    lines = text.count(b"\n", 0, end) + 1
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
    string_dtype = pd.StringDtype("pyarrow")
    rows = table.to_pandas(types_mapper={pyarrow.string(): string_dtype}.get)
    return ParsedObject(rows=rows, malformed=_malformed_frame([]), rows_in=len(rows))
