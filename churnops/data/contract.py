"""Checking parsed raw objects against the data contract.

:func:`check` normalises, coerces and validates the rows read by
:func:`churnops.data.parse.parse_object` against the pandera schema of their kind
(:mod:`churnops.data.schema`; ``coerce=True``, ``lazy=True``) and splits them into ``valid`` rows
with proper dtypes and ``quarantined`` rows that keep their raw values and every reason they
failed. No row is dropped: ``rows_in == len(valid) + len(quarantined)``. Pure: no I/O.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pyarrow_compute
from pandera.engines import pandas_engine

from churnops.data.parse import ParsedObject, json_type, no_rows
from churnops.data.schema import (
    CONTRACT_COLUMNS,
    EVENTS,
    FLOAT,
    RECORD_TIME_COLUMNS,
    SCHEMA_VERSIONS,
    STRING,
    TIMESTAMP,
    contract_schema,
)
from churnops.errors import DataContractError

_QUARANTINE_COLUMNS = ["_raw", "_reason", "_line"]
_UTC_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?(?:Z|\+00:00)$"
_NAIVE_TIMESTAMP = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d+)?)?)?)?"
_MAX_VALUE_CHARS = 60


class AccountingError(DataContractError):
    """rows_in differs from rows_published + rows_quarantined + duplicates_dropped: nothing is published."""


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


def arrow_call(name: str, *args: Any, options: Any = None) -> Any:
    """pyarrow's compute function ``name`` on ``args`` (its generated module-level wrappers are
    invisible to static analysis, so they are called by name)."""
    return pyarrow_compute.call_function(name, list(args), options)


def _count(mask: Any) -> int:
    """How many values of a boolean Arrow array are true (nulls count as false)."""
    return int(arrow_call("sum", mask).as_py() or 0)


def _present(values: Any) -> int:
    """How many values of an Arrow array are not null."""
    return len(values) - int(values.null_count)


def _bytes_trimmed() -> np.ndarray:
    """For each byte value, whether a text may start or end with it and still be changed by pyarrow's
    ``utf8_trim_whitespace``: the ASCII characters it strips (asked of pyarrow itself), and every byte of a
    multi-byte character (the text is then trimmed to find out)."""
    ascii_trimmed = [
        arrow_call("utf8_trim_whitespace", pyarrow.array([chr(code)])).to_pylist() == [""] for code in range(128)
    ]
    return np.array(ascii_trimmed + [True] * 128, dtype=bool)


_BYTES_TRIMMED = _bytes_trimmed()


def _may_need_trimming(raw: Any) -> bool:
    """Whether a value of ``raw`` (Arrow text) may start or end with whitespace ``utf8_trim_whitespace`` strips,
    read from each value's first and last byte (false: trimming would change nothing)."""
    if isinstance(raw, pyarrow.ChunkedArray):
        return any(_may_need_trimming(chunk) for chunk in raw.chunks)
    offset_type = np.int64 if pyarrow.types.is_large_string(raw.type) else np.int32
    buffers = raw.buffers()
    if len(raw) == 0 or buffers[2] is None or buffers[2].size == 0:
        return False
    offsets: np.ndarray = np.frombuffer(buffers[1], dtype=offset_type)[raw.offset : raw.offset + len(raw) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8)
    # The byte at each value's start and the one before its end. An empty value (or a null's slot) reads a
    # neighbour's byte instead: at worst the values are trimmed to find out.
    first = data[np.minimum(offsets[:-1], len(data) - 1)]
    last = data[offsets[1:] - 1]  # -1 (an empty first value) reads the last byte
    return bool(_BYTES_TRIMMED[first].any() or _BYTES_TRIMMED[last].any())


def _normalise_strings(
    text: pd.Series, name: str, allowed: tuple[str, ...] | None
) -> tuple[pd.Series, list[Correction]]:
    """Strip surrounding whitespace, fix the letter case of allowed values, turn empty strings into nulls.

    Done with pyarrow's compute functions on the column's Arrow data (the ones pandas' ``str``
    methods call for Arrow strings), without a pandas round trip per step; a column none of whose values
    starts or ends with whitespace (:func:`_may_need_trimming`) is not trimmed.
    """
    if isinstance(text.array, pd.arrays.ArrowStringArray):
        raw = pyarrow.array(text.array)
    else:
        raw = pyarrow.array(text.to_numpy(), type=pyarrow.string(), from_pandas=True)
    corrections: list[Correction] = []
    stripped = arrow_call("utf8_trim_whitespace", raw) if _may_need_trimming(raw) else raw
    empty = pyarrow_compute.fill_null(arrow_call("equal", stripped, ""), False)
    if stripped is not raw:
        changed = pyarrow_compute.fill_null(arrow_call("not_equal", stripped, raw), False)
        strip_count = _count(arrow_call("and", changed, arrow_call("invert", empty)))
        if strip_count:
            corrections.append(Correction("normalised_value", name, strip_count, "surrounding whitespace stripped"))
    allowed_values = (
        None if allowed is None else pyarrow_compute.SetLookupOptions(pyarrow.array(allowed, type=pyarrow.string()))
    )
    # Only a value outside the set can be fixed by its letter case (the set is all lower or all upper case).
    if allowed is not None and _count(arrow_call("is_in", stripped, options=allowed_values)) < _present(stripped):
        lower = all(value == value.lower() for value in allowed)
        cased = arrow_call("utf8_lower" if lower else "utf8_upper", stripped)
        fixable = arrow_call(
            "and",
            pyarrow_compute.fill_null(arrow_call("not_equal", cased, stripped), False),
            arrow_call("is_in", cased, options=allowed_values),
        )
        fixed = _count(fixable)
        if fixed:
            stripped = arrow_call("if_else", fixable, cased, stripped)
            detail = f"{'lower' if lower else 'upper'}-cased to an allowed value"
            corrections.append(Correction("normalised_value", name, fixed, detail))
    if _count(empty):
        stripped = arrow_call("if_else", empty, pyarrow.scalar(None, pyarrow.string()), stripped)
    return pd.Series(pd.arrays.ArrowStringArray(stripped), index=text.index, name=text.name), corrections


def _normalise_column(column: pd.Series, name: str, col: pa.Column, from_json: bool) -> _Normalised:
    """Normalise strings and sort out values whose Python type can never be coerced to the column's type."""
    allowed = col.metadata["allowed"]
    expected = _expected_raw_type(col.dtype, from_json)
    present = column.notna()
    inferred = pd.api.types.infer_dtype(column, skipna=True)
    no_rejects = pd.Series([], dtype=object)
    if inferred in ("string", "empty"):  # the common case: text only
        text, fixed = _normalise_strings(column, name, allowed)
        return _Normalised(text, fixed, no_rejects, int(present.sum()) if expected is float else 0)
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
    rejected_types = column[rejected].map(json_type)
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
    """Reasons never show PII values, nor a value outside a set too long to list (it may be anything,
    an e-mail address in ``country``); a failing time is left to the row's own raw value."""
    return (
        bool(col.metadata["pii"])
        or bool(col.metadata.get("hide_values"))
        or isinstance(col.dtype, pandas_engine.DateTime)
    )


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


@functools.lru_cache(maxsize=64)
def _no_quarantine(columns: tuple[str, ...]) -> pd.DataFrame:
    """What :func:`_quarantine` gives for no row and no malformed line of rows with ``columns``."""
    raw = pd.DataFrame({name: pd.Series([], dtype=object) for name in columns})
    raw["_raw"] = None
    raw["_reason"] = np.array([], dtype=object)
    raw["_line"] = np.array([], dtype=np.int64)
    return raw[[name for name in columns if name not in _QUARANTINE_COLUMNS] + _QUARANTINE_COLUMNS]


def _quarantine(parsed: ParsedObject, rows: np.ndarray, reasons: pd.Series | str) -> pd.DataFrame:
    """Raw rows (as text) plus ``_raw``/``_reason``/``_line``, with the malformed lines, by line."""
    if rows.size == 0 and parsed.malformed.empty:  # the common case, a chunk with nothing to quarantine
        return _no_quarantine(tuple(parsed.rows.columns)).copy()
    if len(rows):
        raw = parsed.rows.iloc[rows]
        raw = pd.DataFrame({name: _as_raw_text(raw[name]) for name in raw.columns}, index=raw.index)
    else:  # what the above gives for no rows (text columns, all empty), without its cost per column
        raw = pd.DataFrame({name: pd.Series([], dtype=object) for name in parsed.rows.columns})
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


def _utc_times(column: pd.Series) -> tuple[pd.Series, np.ndarray] | None:
    """The values of a text column in the common form, a UTC time to the second or finer
    (``2026-11-01T05:00:00.123Z``, ``...+00:00``), parsed by pyarrow: (times, mask of the values parsed).

    Only that form is taken (pyarrow's ISO 8601 cast rejects impossible dates and times outside
    the nanosecond range); every other value is left to :func:`pandas.to_datetime`, which reads
    the contract's other forms (per-value offsets, naive values as UTC). None when nothing can
    be taken this way (not text, no such value, or a value pyarrow refuses).
    """
    if not isinstance(column.array, pd.arrays.ArrowStringArray) or column.empty:
        return None
    text = pyarrow.array(column.array)
    matched = arrow_call("match_substring_regex", text, options=pyarrow_compute.MatchSubstringOptions(_UTC_TIMESTAMP))
    mask = pyarrow_compute.fill_null(matched, False)
    if not _count(mask):
        return None
    try:
        parsed = pyarrow_compute.cast(arrow_call("if_else", mask, text, None), pyarrow.timestamp("ns", tz="UTC"))
    except pyarrow.ArrowInvalid:  # e.g. February 30th: the caller's pandas path reports it
        return None
    times = pd.Series(parsed.to_pandas(), index=column.index).astype("datetime64[ns, UTC]")
    return times, mask.to_numpy(zero_copy_only=False)


@dataclass
class RecordTimes:
    """A chunk's record-time column read once, for the index lookup before the check and for the check
    itself (:func:`read_record_times`): normalised as :func:`check` normalises it, and the values in the
    common UTC form parsed (:func:`_utc_times`)."""

    name: str
    rows: int
    normalised: _Normalised
    fast: tuple[pd.Series, np.ndarray] | None

    def hours(self) -> pd.Series:
        """The UTC hour of each row's record time (see :func:`record_hours`)."""
        column = self.normalised.column
        hours = pd.Series(pd.NaT, index=column.index, dtype="datetime64[ns, UTC]")
        rest = column.notna().to_numpy(dtype=bool)
        if self.fast is not None:
            times, done = self.fast
            if done.all():
                return times.dt.floor("h")
            hours[done] = times[done].dt.floor("h")
            rest &= ~done
        if rest.any():
            times = pd.to_datetime(
                _naive_as_utc(column[rest]), format="ISO8601", utc=True, errors="coerce", cache=False
            )
            hours[rest] = times.dt.floor("h")
        return hours


def read_record_times(rows: pd.DataFrame, kind: str) -> RecordTimes | None:
    """The record-time column of parsed rows read once (None when the rows lack it)."""
    name = RECORD_TIME_COLUMNS[kind]
    if name not in rows.columns:
        return None
    normalised = _normalise_column(rows[name], name, contract_schema(kind).columns[name], kind == EVENTS)
    return RecordTimes(name, len(rows), normalised, _utc_times(normalised.column))


def record_hours(rows: pd.DataFrame, kind: str) -> pd.Series:
    """The UTC hour of each parsed row's record time, read as :func:`check` reads it (per-value
    offsets, naive values as UTC); NaT where the value is absent or not a timestamp."""
    times = read_record_times(rows, kind)
    if times is None:
        return pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns, UTC]")
    return times.hours()


class _RowChecker:
    """Accumulates the reasons and corrections of one ``check`` call."""

    def __init__(self, schema: pa.DataFrameSchema, from_json: bool, times: RecordTimes | None = None) -> None:
        self.schema = schema
        self.from_json = from_json
        self.times = times
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
            if self.times is not None and name == self.times.name:  # read before the check, from these rows
                normalised = self.times.normalised
                work[name] = self._times(normalised.column, self.times.fast)
            else:
                normalised = _normalise_column(rows[name], name, col, self.from_json)
                is_time = col.dtype == TIMESTAMP
                work[name] = (
                    self._times(normalised.column, _utc_times(normalised.column)) if is_time else normalised.column
                )
            self.corrections.extend(normalised.corrections)
            self.to_coerce[name] = normalised.to_coerce
            self._reject(
                name,
                normalised.rejected.index,
                [f"uncoercible value in column {name} ({type_name})" for type_name in normalised.rejected],
            )
        return work

    @staticmethod
    def _times(column: pd.Series, fast: tuple[pd.Series, np.ndarray] | None) -> pd.Series:
        """A timestamp column as pandera is to coerce it: parsed already when every value has the
        common UTC form (``fast``, what :func:`_utc_times` gives for it; pandera then has nothing to
        parse), else the text with naive values made explicitly UTC."""
        if fast is not None and fast[1].sum() == column.notna().sum():
            return fast[0]
        return _naive_as_utc(column)

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
        texts = [f"uncoercible value in column {name} ({json_type(v)}{text})" for v, text in zip(values, shown)]
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
    times: RecordTimes | None = None,
) -> ContractResult:
    """Validate parsed rows against the contract of ``kind`` for the object's ``hour``.

    Optional columns that are absent are added as nulls; unknown columns are left out of ``valid``;
    wrong types are coerced where safe; every row that breaks a rule is quarantined with all its
    reasons. If a required column is absent, every row is quarantined (``missing_required``).
    ``times``: the record times :func:`read_record_times` read from ``parsed.rows``, if it did (they
    are not read again).
    """
    schema = contract_schema(kind, _aware(hour, "hour"), _aware(now, "now"), tolerance)
    if not parsed.rows.index.equals(pd.RangeIndex(len(parsed.rows))):
        raise ValueError("parsed.rows must be indexed 0..n-1, as parse_object returns it")
    if times is not None and (times.rows != len(parsed.rows) or times.name != RECORD_TIME_COLUMNS[kind]):
        raise ValueError("times must be the record times read from parsed.rows")
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

    checker = _RowChecker(schema, from_json=kind == EVENTS, times=times)
    data = checker.validate(checker.prepare(parsed.rows))
    per_row = checker.reasons.joined()
    bad = per_row.index.to_numpy(dtype=np.int64)
    valid = data.drop(index=bad).reset_index(drop=True) if len(bad) else data.reset_index(drop=True)
    quarantined = _quarantine(parsed, bad, per_row)
    return _result(kind, parsed, valid, quarantined, corrections + checker.corrections, unknown, [])


def prepare(kind: str) -> None:
    """Check a chunk of ``kind`` with no row: what the first check in a process sets up once (pandera registers its
    pandas backends when first used, and imports its data-synthesis strategies with them: about 0.15 s) is then
    done, while the caller waits for something else (the ingest: its first object's download)."""
    moment = datetime.now(timezone.utc)
    check(no_rows(CONTRACT_COLUMNS[kind]), kind, moment, moment)


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
