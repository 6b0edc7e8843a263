"""Raw data contract: parse raw objects and validate them against the pandera schemas.

``docs/data-contract.md`` describes the contract in prose; the pandera schemas built by
:func:`contract_schema` are its executable form and the single source of truth for the columns,
which of them are required, their types, allowed values and ranges.

Two steps, both pure (no I/O):

* :func:`parse_object` turns the bytes of a raw object into rows of raw values (JSON Lines for
  events, CSV for subscriptions). Lines that cannot be parsed are kept aside as *malformed*;
  an object that cannot be read at all raises :class:`UnreadableObject`.
* :func:`check` normalises, coerces and validates the rows (pandera, ``coerce=True``,
  ``lazy=True``) and splits them into ``valid`` rows with proper dtypes and ``quarantined`` rows
  that keep their raw values and every reason they failed. No row is dropped:
  ``rows_in == len(valid) + len(quarantined)``.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pyarrow_compute
import pyarrow.json as pyarrow_json
from orjson import JSONDecodeError, loads  # pylint: disable=no-name-in-module  # C extension
from pandera.engines import pandas_engine

from churnops.errors import DataContractError

EVENTS = "events"
SUBSCRIPTIONS = "subscriptions"
SCHEMA_VERSIONS = {EVENTS: "events:v1", SUBSCRIPTIONS: "subscriptions:v1"}
RECORD_TIME_COLUMNS = {EVENTS: "event_time", SUBSCRIPTIONS: "updated_at"}
"""Per kind, the column that places a record in time (kept inside its object's hour by the contract)."""

# Column types of the contract.
_ARROW_STRING = pd.StringDtype("pyarrow")
STRING = pandas_engine.Engine.dtype(_ARROW_STRING)
FLOAT = pandas_engine.Engine.dtype("float64")
# pandera's dtype dataclasses take keyword fields that pylint cannot see.
TIMESTAMP = pandas_engine.DateTime(  # pylint: disable=unexpected-keyword-arg,no-value-for-parameter
    tz="UTC", to_datetime_kwargs={"format": "ISO8601"}
)
DATE = pandas_engine.DateTime(  # pylint: disable=unexpected-keyword-arg,no-value-for-parameter
    to_datetime_kwargs={"format": "%Y-%m-%d"}
)

# PII policy values kept in each column's pandera metadata.
TOKENIZE = "tokenize"
DROP = "drop"

_QUARANTINE_COLUMNS = ["_raw", "_reason", "_line"]
_MALFORMED_COLUMNS = ["_line", "_raw", "_reason"]
_OBJECT_NAME = re.compile(
    r"(?:^|/)activity/(?P<kind>events|subscriptions)/dt=(?P<dt>\d{4}-\d{2}-\d{2})/hr=(?P<hr>\d{2})/[^/]+$"
)
_EXTENSIONS = {EVENTS: ".jsonl.gz", SUBSCRIPTIONS: ".csv"}
_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
_UTC_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?(?:Z|\+00:00)$"
_NAIVE_TIMESTAMP = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d+)?)?)?)?"
_MAX_VALUE_CHARS = 60
_JSONL_CHUNK = 65_536  # lines parsed per list comprehension


class UnreadableObject(DataContractError):
    """The object as a whole cannot be read (corrupt gzip, empty, undecodable text, not JSON/CSV)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AccountingError(DataContractError):
    """rows_in differs from rows_published + rows_quarantined + duplicates_dropped: nothing is published."""


# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------

# The contract's vocabulary, defined here only: the generator and the feature code import it.
EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "login",
    "logout",
    "search",
    "add_to_cart",
    "purchase",
    "support_contact",
    "video_play",
    "error",
)
DEVICES: tuple[str, ...] = ("web", "ios", "android")
PLANS: tuple[str, ...] = ("basic", "standard", "premium")
CONTRACTS: tuple[str, ...] = ("monthly", "annual", "two_year")
PAYMENT_METHODS: tuple[str, ...] = ("card", "paypal", "bank_transfer", "invoice")
STATUSES: tuple[str, ...] = ("active", "cancelled")


def _column(
    dtype: Any,
    required: bool,
    checks: list[pa.Check] | None = None,
    pii: str | None = None,
    allowed: tuple[str, ...] | None = None,
) -> pa.Column:
    """A contract column: required columns must exist and be non-null; optional ones may be absent."""
    checks = list(checks or [])
    if allowed is not None:
        checks.append(pa.Check.isin(list(allowed), error=f"is not one of {', '.join(allowed)}"))
    return pa.Column(
        dtype,
        checks=checks,
        nullable=not required,
        required=required,
        metadata={"pii": pii, "allowed": allowed},
    )


def _non_negative() -> list[pa.Check]:
    return [
        pa.Check(np.isfinite, error="is not a finite number"),
        pa.Check.ge(0, error="is negative"),
    ]


def _window_checks(hour: datetime | None, now: datetime | None, tolerance: timedelta) -> list[pa.Check]:
    """Checks that keep a record time inside its object's hour (± tolerance) and not in the future."""
    if hour is None or now is None:
        return []
    low = pd.Timestamp(hour - tolerance)
    high = pd.Timestamp(hour + timedelta(hours=1) + tolerance)
    return [
        pa.Check.in_range(
            low,
            high,
            include_max=False,
            error=f"is outside the object's hour [{low}, {high})",
        ),
        pa.Check.le(pd.Timestamp(now), error=f"is later than now ({pd.Timestamp(now)})"),
    ]


def _signup_not_after_update(frame: pd.DataFrame) -> pd.Series:
    signup = frame["signup_date"].dt.tz_localize("UTC")
    return ~(signup.notna() & frame["updated_at"].notna() & (signup > frame["updated_at"]))


def _cancel_date_when_cancelled(frame: pd.DataFrame) -> pd.Series:
    cancelled = frame["status"].eq("cancelled").fillna(False).astype(bool)
    return ~(cancelled & frame["cancel_date"].isna())


def contract_schema(
    kind: str,
    hour: datetime | None = None,
    now: datetime | None = None,
    tolerance: timedelta = timedelta(minutes=5),
) -> pa.DataFrameSchema:
    """The pandera schema of ``kind``; with ``hour`` and ``now`` it also checks the time window."""
    window = _window_checks(hour, now, tolerance)
    if kind == EVENTS:
        columns = {
            "event_id": _column(STRING, True),
            "customer_id": _column(STRING, True, pii=TOKENIZE),
            "event_time": _column(TIMESTAMP, True, window),
            "event_type": _column(STRING, True, allowed=EVENT_TYPES),
            "session_id": _column(STRING, False),
            "duration_s": _column(FLOAT, False, _non_negative()),
            "amount": _column(FLOAT, False, _non_negative()),
            "device": _column(STRING, False, allowed=DEVICES),
            "page": _column(STRING, False),
            "ip_address": _column(STRING, False, pii=DROP),
            "user_agent": _column(STRING, False, pii=DROP),
            "email": _column(STRING, False, pii=DROP),
        }
        checks: list[pa.Check] = []
    elif kind == SUBSCRIPTIONS:
        columns = {
            "record_id": _column(STRING, True),
            "customer_id": _column(STRING, True, pii=TOKENIZE),
            "name": _column(STRING, False, pii=DROP),
            "email": _column(STRING, False, pii=DROP),
            "phone": _column(STRING, False, pii=DROP),
            "plan": _column(STRING, True, allowed=PLANS),
            "contract": _column(STRING, True, allowed=CONTRACTS),
            "payment_method": _column(STRING, False, allowed=PAYMENT_METHODS),
            "monthly_charges": _column(FLOAT, True, _non_negative()),
            "total_charges": _column(FLOAT, False, _non_negative()),
            "signup_date": _column(DATE, True),
            "status": _column(STRING, True, allowed=STATUSES),
            "cancel_date": _column(TIMESTAMP, False),
            "updated_at": _column(TIMESTAMP, True, window),
            "country": _column(STRING, False),
        }
        checks = [
            pa.Check(_signup_not_after_update, error="signup_date is after updated_at"),
            pa.Check(_cancel_date_when_cancelled, error="status is cancelled but cancel_date is empty"),
        ]
    else:
        raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(SCHEMA_VERSIONS)}")
    return pa.DataFrameSchema(columns, checks=checks, coerce=True, name=SCHEMA_VERSIONS[kind])


def _columns_where(kind: str, wanted: Any) -> list[str]:
    return [name for name, col in contract_schema(kind).columns.items() if wanted(col)]


CONTRACT_COLUMNS: dict[str, list[str]] = {kind: _columns_where(kind, lambda _: True) for kind in SCHEMA_VERSIONS}
REQUIRED_COLUMNS: dict[str, list[str]] = {
    kind: _columns_where(kind, lambda col: col.required) for kind in SCHEMA_VERSIONS
}
PII_COLUMNS: dict[str, dict[str, str]] = {
    kind: {name: col.metadata["pii"] for name, col in contract_schema(kind).columns.items() if col.metadata["pii"]}
    for kind in SCHEMA_VERSIONS
}
"""Per kind, the PII columns and their policy: ``tokenize`` or ``drop``."""


# --------------------------------------------------------------------------------------------
# Object names
# --------------------------------------------------------------------------------------------


def hour_partition(hour: datetime) -> str:
    """The ``dt=YYYY-MM-DD/hr=HH`` path segment of ``hour``: raw object names and lake partitions use it."""
    return f"dt={hour:%Y-%m-%d}/hr={hour:%H}"


def _match_name(object_name: str) -> re.Match[str]:
    match = _OBJECT_NAME.search(object_name)
    if match is None or not object_name.endswith(_EXTENSIONS[match["kind"]]):
        raise ValueError(
            f"not a raw object name: {object_name!r} (expected activity/events/dt=YYYY-MM-DD/hr=HH/*.jsonl.gz "
            "or activity/subscriptions/dt=YYYY-MM-DD/hr=HH/*.csv)"
        )
    return match


def kind_of(object_name: str) -> str:
    """``"events"`` or ``"subscriptions"`` from a raw object's name; ``ValueError`` for anything else."""
    return _match_name(object_name)["kind"]


def hour_of(object_name: str) -> datetime:
    """The UTC hour named by the ``dt=YYYY-MM-DD/hr=HH`` part of a raw object's name."""
    match = _match_name(object_name)
    try:
        day = datetime.strptime(match["dt"], "%Y-%m-%d")
    except ValueError as exc:
        raise ValueError(f"invalid date in object name {object_name!r}: {exc}") from exc
    hour = int(match["hr"])
    if hour > 23:
        raise ValueError(f"invalid hour in object name {object_name!r}: {hour}")
    return day.replace(hour=hour, tzinfo=timezone.utc)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


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


def _json_type(value: Any) -> str:
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
            malformed.append((number, _decoded(line), f"line is a JSON {_json_type(value)}, not an object"))
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
    if not text.strip():
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
    lines = text.rstrip(b"\n").count(b"\n") + 1
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


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Correction:
    """A change ``check`` made to the data instead of quarantining it."""

    kind: str  # added_missing_optional_column | coerced_dtype | dropped_unknown_column | normalised_value
    column: str
    rows: int
    detail: str


@dataclass
class ContractResult:
    """The outcome of checking one object against its contract.

    ``valid`` holds the rows that passed, with exactly the contract's columns in contract order
    and their dtypes (strings ``string[pyarrow]``, floats ``float64``, timestamps
    ``datetime64[ns, UTC]``, dates ``datetime64[ns]``). ``quarantined`` holds every other row
    and every malformed line: the raw values as text, ``_raw`` (the text of a malformed line),
    ``_reason`` (all reasons, joined by ``"; "``) and ``_line`` (1-based line in the object),
    ordered by line. When ``missing_required`` is not empty, every row is quarantined.
    """

    kind: str
    schema_version: str
    valid: pd.DataFrame
    quarantined: pd.DataFrame
    corrections: list[Correction]
    unknown_columns: list[str]
    missing_required: list[str]
    rows_in: int


class _Reasons:
    """Collects failure reasons per row, in the order they are found."""

    def __init__(self) -> None:
        self._rows: list[np.ndarray] = []
        self._texts: list[np.ndarray] = []

    def add(self, rows: Any, reason: str | list[str] | np.ndarray) -> None:
        """Record ``reason`` (one text, or one text per row) for ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        if isinstance(reason, str):
            texts = np.full(rows.size, reason, dtype=object)
        else:
            texts = np.asarray(reason, dtype=object)
        self._rows.append(rows)
        self._texts.append(texts)

    def joined(self) -> pd.Series:
        """Row index -> every distinct reason of that row, joined with ``"; "``, by row."""
        if not self._rows:
            return pd.Series([], dtype=object)
        found = pd.DataFrame({"row": np.concatenate(self._rows), "reason": np.concatenate(self._texts)})
        found = found.drop_duplicates().sort_values("row", kind="stable")
        rows = found["row"].to_numpy()
        texts = found["reason"].to_numpy()
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        ends = np.r_[starts[1:], len(rows)]
        joined = texts[starts].copy()
        for i in np.flatnonzero(ends - starts > 1):  # rows with more than one reason
            joined[i] = "; ".join(texts[starts[i] : ends[i]])
        return pd.Series(joined, index=rows[starts])


def _format_values(values: pd.Series) -> list[str]:
    """Short printable forms of failing values (never used for PII columns)."""
    texts = [repr(value) for value in values]
    return [text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..." for text in texts]


def _check_frame_columns(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> tuple[list[str], list[str]]:
    """The object's columns against the contract: (unknown columns, missing required columns)."""
    unknown = [str(name) for name in frame.columns if name not in schema.columns]
    missing = [name for name, col in schema.columns.items() if col.required and name not in frame.columns]
    return unknown, missing


def _expected_raw_type(dtype: Any, from_json: bool) -> type:
    """The Python type a column's raw values are expected to have (anything else is coerced or rejected)."""
    return float if from_json and dtype == FLOAT else str


@dataclass
class _Normalised:
    column: pd.Series
    corrections: list[Correction]
    rejected: pd.Series  # row -> JSON type name of a value whose type can never be coerced
    to_coerce: int  # values whose type differs from the expected raw type but may be coerced


def _normalise_strings(
    text: pd.Series, name: str, allowed: tuple[str, ...] | None
) -> tuple[pd.Series, list[Correction]]:
    """Strip surrounding whitespace, lower-case allowed values, turn empty strings into nulls."""
    if not isinstance(text.array, pd.arrays.ArrowStringArray):
        text = pd.Series(
            pd.arrays.ArrowStringArray(pyarrow.array(text.to_numpy(), type=pyarrow.string(), from_pandas=True)),
            index=text.index,
        )
    corrections: list[Correction] = []
    stripped = text.str.strip()
    empty = stripped.eq("").fillna(False).astype(bool)
    strip_count = int((stripped.ne(text).fillna(False).astype(bool) & ~empty).sum())
    if strip_count:
        corrections.append(Correction("normalised_value", name, strip_count, "surrounding whitespace stripped"))
    if allowed is not None:
        lowered = stripped.str.lower()
        fixable = lowered.ne(stripped).fillna(False).astype(bool) & lowered.isin(allowed)
        if fixable.any():
            stripped = stripped.where(~fixable, lowered)
            corrections.append(
                Correction("normalised_value", name, int(fixable.sum()), "lower-cased to an allowed value")
            )
    return stripped.mask(empty), corrections


def _normalise_column(column: pd.Series, name: str, col: pa.Column, from_json: bool) -> _Normalised:
    """Normalise strings and sort out values whose Python type can never be coerced to the column's type."""
    allowed = col.metadata["allowed"]
    expected = _expected_raw_type(col.dtype, from_json)
    present = column.notna()
    inferred = pd.api.types.infer_dtype(column, skipna=True)
    no_rejects = pd.Series([], dtype=object)
    if inferred in ("string", "empty"):  # the common case: text only
        text, corrections = _normalise_strings(column, name, allowed)
        return _Normalised(text, corrections, no_rejects, int(present.sum()) if expected is float else 0)
    if inferred == "floating" and col.dtype == FLOAT:  # JSON numbers in a float column
        return _Normalised(column, [], no_rejects, 0 if expected is float else int(present.sum()))

    types = column.map(type, na_action="ignore")
    is_str = types.eq(str)
    column = column.copy()
    corrections: list[Correction] = []
    if is_str.any():
        text, corrections = _normalise_strings(column[is_str], name, allowed)
        column[is_str] = text.to_numpy(dtype=object, na_value=None)
    # Numbers may become strings or floats; booleans, objects and arrays never become anything.
    coercible = is_str.copy()
    if not isinstance(col.dtype, pandas_engine.DateTime):
        coercible |= types.isin([int, float])
    rejected = present & ~coercible
    rejected_types = column[rejected].map(_json_type)
    column[rejected] = None
    to_coerce = int((present & ~rejected & types.ne(expected)).sum())
    return _Normalised(column, corrections, rejected_types, to_coerce)


def _validate(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run pandera lazily: (data as coerced as pandera could, failure cases)."""
    try:
        return schema.validate(frame, lazy=True), pd.DataFrame(columns=["column", "check", "failure_case", "index"])
    except pa.errors.SchemaErrors as errors:
        return errors.data, errors.failure_cases


def _record_check_failures(
    failures: pd.DataFrame, schema: pa.DataFrameSchema, reasons: _Reasons, skip: set[tuple[int, str]]
) -> None:
    """Turn pandera failure cases (after a successful coercion) into per-row reasons."""
    failures = failures[~failures["check"].astype(str).str.startswith("dtype(")]
    if failures["index"].isna().any() or failures["check"].astype(str).str.startswith("coerce_dtype").any():
        broken = failures[failures["index"].isna()]
        raise ValueError(
            "contract check failed on a whole column, not on rows: "
            + "; ".join(f"{c}: {k}" for c, k in zip(broken["column"], broken["check"]))
        )
    frame_checks = {frame_check.error for frame_check in schema.checks}
    for (column, error), group in failures.groupby(["column", "check"], sort=False, dropna=False):
        rows = group["index"].astype(np.int64).to_numpy()
        if error in frame_checks:
            reasons.add(rows, error)
        elif error == "not_nullable":
            keep = [row for row in rows if (row, column) not in skip]
            reasons.add(keep, f"null in required column {column}")
        elif _hide_values(schema.columns[column]):
            reasons.add(rows, f"{column} {error}")
        else:
            reasons.add(rows, [f"{column}: {value} {error}" for value in _format_values(group["failure_case"])])


def _hide_values(col: pa.Column) -> bool:
    """Reasons never show PII values; a failing time is left to the row's own raw value."""
    return bool(col.metadata["pii"]) or isinstance(col.dtype, pandas_engine.DateTime)


def _raw_text(value: Any) -> str:
    """A raw JSON value that is not a string, as JSON text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _as_raw_text(column: pd.Series) -> pd.Series:
    """Raw values as text for the quarantine: strings as they are, other JSON values re-encoded."""
    present = column.notna()
    column = column.astype(object).where(present, None)
    inferred = pd.api.types.infer_dtype(column, skipna=True)
    if inferred in ("floating", "integer", "mixed-integer-float"):
        column[present] = column[present].astype(str)
    elif inferred not in ("string", "empty"):
        other = present & ~column.map(type).eq(str)
        column[other] = column[other].map(_raw_text)
    return column


def _quarantine(parsed: ParsedObject, rows: np.ndarray, reasons: pd.Series | str) -> pd.DataFrame:
    """Raw rows (as text) plus ``_raw``/``_reason``/``_line``, with the malformed lines, by line."""
    raw = parsed.rows.iloc[rows]
    raw = pd.DataFrame({name: _as_raw_text(raw[name]) for name in raw.columns}, index=raw.index)
    raw["_raw"] = None
    raw["_reason"] = reasons if isinstance(reasons, str) else reasons.to_numpy()
    raw["_line"] = parsed.lines()[rows]
    frame = pd.concat([raw, parsed.malformed], ignore_index=True) if len(parsed.malformed) else raw
    frame = frame.astype({"_line": np.int64}).sort_values("_line", kind="stable", ignore_index=True)
    data_columns = [name for name in frame.columns if name not in _QUARANTINE_COLUMNS]
    if len(parsed.malformed):
        frame[data_columns] = frame[data_columns].astype(object).where(frame[data_columns].notna(), None)
    return frame[data_columns + _QUARANTINE_COLUMNS]


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC)")
    return value


def _naive_as_utc(column: pd.Series) -> pd.Series:
    """Timestamp texts without an offset made explicitly UTC, value by value.

    pandas parses an ISO 8601 column as a whole and gives a naive value the offset of an earlier
    value that has one; the contract says a naive timestamp is UTC, so each naive value gets
    ``+00:00`` (a bare date ``T00:00:00+00:00``) before the column is parsed.
    """
    if isinstance(column.array, pd.arrays.ArrowStringArray):  # text only: matched by pyarrow, not value by value
        naive = column.str.fullmatch(_NAIVE_TIMESTAMP).fillna(False).astype(bool)
    else:
        naive = column.astype(object).str.fullmatch(_NAIVE_TIMESTAMP).eq(True)  # non-text values give NaN
    if not naive.any():
        return column
    fixed = column[naive].astype(object)
    column = column.copy()
    column[naive] = (fixed + np.where(fixed.str.len() == 10, "T00:00:00+00:00", "+00:00")).to_numpy(dtype=object)
    return column


def record_hours(rows: pd.DataFrame, kind: str) -> pd.Series:
    """The UTC hour of each parsed row's record time, read as :func:`check` reads it (per-value
    offsets, naive values as UTC); NaT where the value is absent or not a timestamp."""
    name = RECORD_TIME_COLUMNS[kind]
    if name not in rows.columns:
        return pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns, UTC]")
    normalised = _normalise_column(rows[name], name, contract_schema(kind).columns[name], kind == EVENTS).column
    hours = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns, UTC]")
    rest = np.ones(len(rows), dtype=bool)
    if isinstance(normalised.array, pd.arrays.ArrowStringArray) and len(rows):
        # The common form, a UTC time to the second or finer: its hour is its first 13 characters.
        text = pyarrow.array(normalised.array)
        call = pyarrow_compute.call_function
        utc = call("match_substring_regex", [text], pyarrow_compute.MatchSubstringOptions(_UTC_TIMESTAMP))
        prefix = call("utf8_slice_codeunits", [text], pyarrow_compute.SliceOptions(0, 13))
        parsed = call("strptime", [prefix], pyarrow_compute.StrptimeOptions("%Y-%m-%dT%H", "s", error_is_null=True))
        # strptime rolls an impossible date over (February 30th is March 1st): it must print back the same.
        exact = call("equal", [call("strftime", [parsed], pyarrow_compute.StrftimeOptions("%Y-%m-%dT%H")), prefix])
        fast = pd.Series(parsed.to_pandas(), index=rows.index).dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
        done = pyarrow_compute.fill_null(utc, False).to_numpy(zero_copy_only=False) & pyarrow_compute.fill_null(
            exact, False
        ).to_numpy(zero_copy_only=False)
        hours[done] = fast[done]
        rest = ~done
    if rest.any():
        times = pd.to_datetime(
            _naive_as_utc(normalised[rest]), format="ISO8601", utc=True, errors="coerce", cache=False
        )
        hours[rest] = times.dt.floor("h")
    return hours


class _RowChecker:
    """Accumulates the reasons and corrections of one ``check`` call."""

    def __init__(self, schema: pa.DataFrameSchema, from_json: bool) -> None:
        self.schema = schema
        self.from_json = from_json
        self.reasons = _Reasons()
        self.corrections: list[Correction] = []
        self.nulled: set[tuple[int, str]] = set()  # cells emptied because their value was rejected
        self.to_coerce: dict[str, int] = {}

    def prepare(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The contract's columns, normalised, with absent optional columns added as nulls."""
        work = pd.DataFrame(index=rows.index)
        for name, col in self.schema.columns.items():
            if name not in rows.columns:
                work[name] = None
                self.corrections.append(
                    Correction(
                        "added_missing_optional_column", name, len(work), "absent from the object; filled with nulls"
                    )
                )
                continue
            normalised = _normalise_column(rows[name], name, col, self.from_json)
            work[name] = _naive_as_utc(normalised.column) if col.dtype == TIMESTAMP else normalised.column
            self.corrections.extend(normalised.corrections)
            self.to_coerce[name] = normalised.to_coerce
            self._reject(
                name,
                normalised.rejected.index,
                [f"uncoercible value in column {name} ({type_name})" for type_name in normalised.rejected],
            )
        return work

    def _reject(self, name: str, rows: pd.Index | np.ndarray, texts: list[str]) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        self.reasons.add(rows, texts)
        self.nulled.update((int(row), name) for row in rows)

    def validate(self, work: pd.DataFrame) -> pd.DataFrame:
        """Coerce and check with pandera; returns the coerced data (failed rows still in it)."""
        data, failures = _validate(self.schema, work)
        uncoercible = failures[failures["check"].astype(str).str.startswith("coerce_dtype")]
        if not uncoercible.empty:
            # Values pandera cannot coerce are reported and emptied, then the rows are checked again.
            for name, group in uncoercible.groupby("column", sort=False):
                self._reject_uncoercible(work, name, group)
            data, failures = _validate(self.schema, work)
        _record_check_failures(failures, self.schema, self.reasons, self.nulled)
        self.corrections.extend(
            Correction("coerced_dtype", name, count, f"other value types coerced to {_dtype_name(self.schema, name)}")
            for name, count in self.to_coerce.items()
            if count
        )
        return data

    def _reject_uncoercible(self, work: pd.DataFrame, name: str, failures: pd.DataFrame) -> None:
        """Quarantine the rows of values pandera could not coerce (their values only shown if not PII)."""
        rows = failures["index"].astype(np.int64).to_numpy()
        values = failures["failure_case"]
        if self.schema.columns[name].metadata["pii"]:
            shown = [""] * len(values)
        else:
            shown = [f" {text}" for text in _format_values(values)]
        texts = [f"uncoercible value in column {name} ({_json_type(v)}{text})" for v, text in zip(values, shown)]
        self._reject(name, rows, texts)
        work.loc[rows, name] = None
        self.to_coerce[name] = max(0, self.to_coerce.get(name, 0) - len(rows))


def _dtype_name(schema: pa.DataFrameSchema, name: str) -> str:
    dtype = schema.columns[name].dtype
    if dtype == STRING:
        return "string"
    return str(dtype)


def check(
    parsed: ParsedObject,
    kind: str,
    hour: datetime,
    now: datetime,
    tolerance: timedelta = timedelta(minutes=5),
) -> ContractResult:
    """Validate parsed rows against the contract of ``kind`` for the object's ``hour``.

    Optional columns that are absent are added as nulls; unknown columns are left out of ``valid``;
    wrong types are coerced where safe; every row that breaks a rule is quarantined with all its
    reasons. If a required column is absent, every row is quarantined (``missing_required``).
    """
    schema = contract_schema(kind, _aware(hour, "hour"), _aware(now, "now"), tolerance)
    if not parsed.rows.index.equals(pd.RangeIndex(len(parsed.rows))):
        raise ValueError("parsed.rows must be indexed 0..n-1, as parse_object returns it")
    unknown, missing_required = _check_frame_columns(parsed.rows, schema)
    corrections = [
        Correction(
            "dropped_unknown_column",
            name,
            int(parsed.rows[name].notna().sum()),
            "not in the contract; left out of the valid rows",
        )
        for name in unknown
    ]
    if missing_required:
        reason = f"missing required column(s): {', '.join(missing_required)}"
        quarantined = _quarantine(parsed, np.arange(len(parsed.rows)), reason)
        return _result(kind, parsed, _empty_valid(schema), quarantined, corrections, unknown, missing_required)

    checker = _RowChecker(schema, from_json=kind == EVENTS)
    data = checker.validate(checker.prepare(parsed.rows))
    per_row = checker.reasons.joined()
    bad = per_row.index.to_numpy(dtype=np.int64)
    valid = data.drop(index=bad).reset_index(drop=True) if len(bad) else data.reset_index(drop=True)
    quarantined = _quarantine(parsed, bad, per_row)
    return _result(kind, parsed, valid, quarantined, corrections + checker.corrections, unknown, [])


def _empty_valid(schema: pa.DataFrameSchema) -> pd.DataFrame:
    """No rows, but the contract's columns and dtypes."""
    return schema.validate(pd.DataFrame({name: pd.Series([], dtype=object) for name in schema.columns}))


def _result(
    kind: str,
    parsed: ParsedObject,
    valid: pd.DataFrame,
    quarantined: pd.DataFrame,
    corrections: list[Correction],
    unknown: list[str],
    missing_required: list[str],
) -> ContractResult:
    if len(valid) + len(quarantined) != parsed.rows_in:
        raise AccountingError(
            f"row accounting broken: {len(valid)} valid + {len(quarantined)} quarantined != {parsed.rows_in} in"
        )
    return ContractResult(
        kind=kind,
        schema_version=SCHEMA_VERSIONS[kind],
        valid=valid,
        quarantined=quarantined,
        corrections=corrections,
        unknown_columns=unknown,
        missing_required=missing_required,
        rows_in=parsed.rows_in,
    )
