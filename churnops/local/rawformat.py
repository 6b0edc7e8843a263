"""The producers' file formats for generated data: JSON Lines and CSV text rendered with Arrow kernels, and
clean generated objects read back as published-format frames (for tests and benchmarks that skip ingest)."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from pyarrow import csv as pa_csv

# pyarrow.compute creates these functions when it is imported, so pylint cannot see them.
from pyarrow.compute import binary_join_element_wise, if_else, match_substring_regex  # pylint: disable=no-name-in-module

from churnops.data import naming, schema

_NEEDS_JSON_ESCAPE = r'["\\\x00-\x1f]'  # RE2 syntax: text that JSON must escape


def _text(value: str) -> pa.Scalar:
    """An Arrow large_string scalar (the type every JSON fragment has)."""
    return pa.scalar(value, pa.large_string())


def _json_values(column: pd.Series) -> pa.Array:
    """Each value of ``column`` as JSON text (an Arrow large_string array); missing values are ``null``."""
    values = column.to_numpy()
    if values.dtype.kind == "f":
        text = pc.cast(pa.array(values, from_pandas=True), pa.large_string())
        # Keep a decimal point on whole numbers ("35.0", as Python writes floats).
        whole = binary_join_element_wise(text, _text(".0"), _text(""))
        text = if_else(match_substring_regex(text, r"[.en]"), text, whole)
        return pc.fill_null(text, _text("null"))
    try:
        strings = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all text: an anomaly mixed in other types
        strings = None
    if strings is not None and match_substring_regex(strings, _NEEDS_JSON_ESCAPE).true_count == 0:
        return pc.fill_null(binary_join_element_wise(_text('"'), strings, _text('"'), _text("")), _text("null"))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    encoded = [json.dumps(u.item() if isinstance(u, np.generic) else u) for u in uniques] + ["null"]
    return pa.array(encoded, type=pa.large_string()).take(pa.array(codes % len(encoded)))  # -1 -> "null"


def jsonl(frame: pd.DataFrame) -> bytes:
    """JSON Lines text (UTF-8), one object per row, keys in column order."""
    if frame.empty:
        return b""
    parts: list[pa.Array | pa.Scalar] = []
    for i, column in enumerate(frame.columns):
        key = ("{" if i == 0 else ",") + json.dumps(str(column)) + ":"
        parts += [_text(key), _json_values(frame[column])]
    parts.append(_text("}\n"))
    lines = binary_join_element_wise(*parts, _text(""))
    # The lines are contiguous in the array's data buffer: that buffer is the file.
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    data: bytes = lines.buffers()[2].to_pybytes()  # pyarrow is untyped: declare what it returns
    return data[offsets[0] : offsets[-1]]


def csv_text(frame: pd.DataFrame) -> bytes:
    """CSV text (UTF-8) with a header row; missing values are empty fields."""
    columns = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind == "O" and pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
            values = np.array([None if pd.isna(v) else str(v) for v in values], dtype=object)  # mixed types
        columns[str(name)] = pa.array(values, from_pandas=True)
    header = (",".join(columns) + "\n").encode("utf-8")  # column names never need quoting
    table = pa.table(columns)
    try:  # quote nothing, as billing exports usually do ...
        return header + _write_csv_body(table, "none")
    except pa.ArrowInvalid:  # ... unless a value holds a comma, quote or line break
        return header + _write_csv_body(table, "needed")


def _write_csv_body(table: pa.Table, quoting: str) -> bytes:
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style=quoting))
    body: bytes = sink.getvalue().to_pybytes()
    return body


class _Object(Protocol):
    """What :func:`published_frames` reads of an object: its name and bytes (read-only, as a frozen RawObject's)."""

    @property
    def name(self) -> str:
        """The object's name in the raw bucket."""

    @property
    def data(self) -> bytes:
        """The object's bytes."""


def published_frames(objects: Iterable[_Object]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean generated objects (no anomalies) as published-format events and subscriptions frames.

    The ingest stage is skipped (its own tests cover it): ``customer_id`` stands in for the token.
    """
    events, subscriptions = [], []
    for obj in objects:
        if naming.kind_of(obj.name) == schema.EVENTS:
            events.append(pa_json.read_json(io.BytesIO(gzip.decompress(obj.data))).to_pandas())
        else:
            subscriptions.append(pd.read_csv(io.BytesIO(obj.data), dtype=str, keep_default_na=False, na_values=[""]))
    event_frame = pd.concat(events, ignore_index=True).rename(columns={"customer_id": "customer_token"})
    event_frame["event_time"] = pd.to_datetime(event_frame["event_time"], utc=True)
    subs = pd.concat(subscriptions, ignore_index=True).rename(columns={"customer_id": "customer_token"})
    for column in ("monthly_charges", "total_charges"):
        subs[column] = subs[column].astype("float64")
    for column in ("cancel_date", "updated_at"):
        subs[column] = pd.to_datetime(subs[column], utc=True)
    return event_frame, subs
