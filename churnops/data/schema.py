"""The raw data contract's schema: the kinds of raw data, their vocabulary and the pandera schemas.

``docs/data-contract.md`` describes the contract in prose; the pandera schemas built by
:func:`contract_schema` are its executable form and the single source of truth for the columns,
which of them are required, their types, allowed values, ranges and PII policy.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytz
from pandera.engines import pandas_engine

EVENTS = "events"
SUBSCRIPTIONS = "subscriptions"
SCHEMA_VERSIONS = {EVENTS: "events:v1", SUBSCRIPTIONS: "subscriptions:v1"}
RECORD_TIME_COLUMNS = {EVENTS: "event_time", SUBSCRIPTIONS: "updated_at"}
"""Per kind, the column that places a record in time (kept inside its object's hour by the contract)."""

# Column types of the contract.
_ARROW_STRING = pd.StringDtype("pyarrow")


class _ArrowString(pandas_engine.STRING):
    """pandera's ``string[pyarrow]`` type, whose check of a column that already has the type is one answer for the
    column. pandera's own answers that with one ``True`` per value, and then builds, for every such column it
    validates, empty failure cases and a message that prints them; a column of another type is checked as pandera
    checks it."""

    def check(self, pandera_dtype: Any, data_container: Any = None) -> Any:
        try:
            if pandas_engine.Engine.dtype(pandera_dtype).type == self.type:
                return True
        except TypeError:
            return False
        return super().check(pandera_dtype, data_container)


# pandera declares its dtype dataclasses' fields behind a decorator that pylint and mypy cannot see through.
STRING = _ArrowString(  # pylint: disable=unexpected-keyword-arg,no-value-for-parameter
    storage="pyarrow"  # type: ignore[call-arg]  # pandera's @immutable(init=True) dataclass fields
)
FLOAT = pandas_engine.Engine.dtype("float64")
# No cache: pandas decides whether to cache by boxing the first values of the column, which costs more than
# it saves on columns the check has already parsed (contract.py parses the common UTC form with pyarrow).
TIMESTAMP = pandas_engine.DateTime(  # pylint: disable=unexpected-keyword-arg,no-value-for-parameter
    tz="UTC",  # type: ignore[call-arg]  # pandera's @immutable(init=True) dataclass fields
    to_datetime_kwargs={"format": "ISO8601", "cache": False},
)
DATE = pandas_engine.DateTime(  # pylint: disable=unexpected-keyword-arg,no-value-for-parameter
    to_datetime_kwargs={"format": "%Y-%m-%d"}  # type: ignore[call-arg]  # pandera's @immutable(init=True) dataclass
)

# PII policy values kept in each column's pandera metadata.
TOKENIZE = "tokenize"
DROP = "drop"

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
# ISO 3166-1 alpha-2, as the tz database's iso3166.tab lists them (through pytz, pinned in the lock).
COUNTRY_CODES: tuple[str, ...] = tuple(sorted(pytz.country_names))
COUNTRY_CODE_ERROR = "is not an ISO 3166-1 alpha-2 country code"


def _column(
    dtype: Any,
    required: bool,
    checks: list[pa.Check] | None = None,
    pii: str | None = None,
    allowed: tuple[str, ...] | None = None,
    allowed_error: str | None = None,
) -> pa.Column:
    """A contract column: required columns must exist and be non-null; optional ones may be absent.

    A value outside ``allowed`` fails with ``allowed_error`` when given (a reason that does not
    quote the value, for sets too long to list), else with the list of allowed values.
    """
    checks = list(checks or [])
    if allowed is not None:
        checks.append(pa.Check.isin(list(allowed), error=allowed_error or f"is not one of {', '.join(allowed)}"))
    return pa.Column(
        dtype,
        checks=checks,
        nullable=not required,
        required=required,
        metadata={"pii": pii, "allowed": allowed, "hide_values": allowed_error is not None},
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
    """The pandera schema of ``kind``; with ``hour`` and ``now`` it also checks the time window.

    A new schema each call: with one schema kept per object and validated chunk after chunk, an ingest's peak
    memory grew with the object (a 4M-event object: 1.023 GiB against 0.755 GiB)."""
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
            "country": _column(STRING, False, allowed=COUNTRY_CODES, allowed_error=COUNTRY_CODE_ERROR),
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
