"""Customer features and churn labels at a cutoff, built from the published lake tables.

A *cutoff* is a point in time (UTC). The population at a cutoff is judged only by the subscription
records known then (``updated_at`` before the cutoff): every customer whose latest known record says
``active`` and who has no known cancellation taking effect after that record and by the cutoff.
Features use only data strictly before the cutoff; the label says whether the customer's
subscription ended by ``cutoff + horizon`` by a cancellation not yet in effect (or not yet known)
at the cutoff. Windows and the horizon are in hours (the generated data compresses
a customer lifecycle into hours).

A training set stacks several cutoffs and is split by time: the earliest cutoffs train, the next
ones validate, the latest ones test, with a gap of one label horizon between them
(:func:`split_by_time`).

The work is vectorised: events become integer codes and int64 times once, each window is a boolean
mask, and per-customer aggregates are ``numpy.bincount`` over customer codes. From hourly pre-aggregates
(:class:`HourlyActivity`) the customer tokens are looked up in the customer universe once (arrow's
``index_in``), and what only a window reads (counts per type, durations, amounts, session ids) is read for
the rows of the widest window alone, its (customer, session id) pairs grouped once for every window: a window's
sessions are the pairs whose latest hour falls in it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnops.data import aggregates, schema
from churnops.data.contract import arrow_call
from churnops.errors import ChurnopsError, DataContractError
from churnops.model.spec import FeatureSpec
from churnops.platform.settings import TRAINING_DEFAULTS


class UnusableTable(DataContractError, ValueError):
    """A published table lacks a column the features need, or holds values they cannot use."""


class InsufficientData(ChurnopsError, ValueError):
    """The published data cannot make a training set: too short a span, too few cutoffs, one class only."""


EVENT_TYPES = schema.EVENT_TYPES  # one count feature per type the contract allows
DEFAULT_WINDOWS_HOURS: tuple[int, ...] = tuple(TRAINING_DEFAULTS["feature_windows_hours"])
DEFAULT_HORIZON_HOURS: int = TRAINING_DEFAULTS["label_horizon_hours"]
GHOST_AFTER_HOURS: float = TRAINING_DEFAULTS["ghost_after_hours"]

EVENT_COLUMNS: tuple[str, ...] = (
    "customer_token",
    "event_time",
    "event_type",
    "session_id",
    "duration_s",
    "amount",
)
SUBSCRIPTION_COLUMNS: tuple[str, ...] = (
    "customer_token",
    "plan",
    "contract",
    "payment_method",
    "monthly_charges",
    "total_charges",
    "signup_date",
    "status",
    "cancel_date",
    "updated_at",
    "country",
)
# ``country`` stays in the lake but is no model input: it has no bearing on churn here, and its one-hot columns,
# a few churners each for the smaller countries, were fitted to noise (tests/unit/training/test_behaviour.py).
# ``contract`` is an ordered commitment and enters as ``contract_months`` alone: beside its one-hot columns the
# two encodings were collinear, and on a few hundred customers the fit ranked two-year contracts riskier than annual.
CATEGORICAL_FEATURES: tuple[str, ...] = ("plan", "payment_method")
SUBSCRIPTION_NUMERIC: tuple[str, ...] = (
    "tenure_h",
    "monthly_charges",
    "total_charges",
    "hours_since_change",
    "subscription_changes",
    "plan_direction",
    "contract_months",
)
# What makes a record a change of the subscription (a record repeating the previous one is not).
CHANGE_COLUMNS: tuple[str, ...] = ("plan", "contract", "payment_method", "monthly_charges")
PLAN_TIERS: dict[str, int] = {plan: tier for tier, plan in enumerate(schema.PLANS)}  # basic < standard < premium
# The commitment a contract makes, in months: the contract as the ordered quantity it is.
CONTRACT_MONTHS: dict[str, float] = {"monthly": 1.0, "annual": 12.0, "two_year": 24.0}
# Events per hour added to both sides of an activity ratio, so a quiet customer's ratio stays finite and near 1.
ACTIVITY_PRIOR_PER_H = 0.1
KEY_COLUMNS: tuple[str, ...] = ("customer_token", "cutoff")
LABEL = "churned"
SPLITS: tuple[str, ...] = ("train", "validation", "test")

_HOUR = np.int64(3_600_000_000_000)  # nanoseconds


def _check_windows(windows_h: Sequence[int]) -> tuple[int, ...]:
    windows = tuple(int(w) for w in windows_h)
    if not windows or any(w <= 0 for w in windows) or len(set(windows)) != len(windows):
        raise ValueError(f"feature windows must be distinct positive hours, got {list(windows_h)}")
    return tuple(sorted(windows))


def window_feature_names(window_h: int) -> list[str]:
    """The names of the features computed over one window of ``window_h`` hours."""
    suffix = f"_{window_h}h"
    return [
        f"events{suffix}",
        *(f"n_{kind}{suffix}" for kind in EVENT_TYPES),
        f"sessions{suffix}",
        f"mean_duration_s{suffix}",
        f"spend{suffix}",
    ]


def trend_feature_names(windows_h: Sequence[int]) -> list[str]:
    """Activity-trend features: event rate of each window minus that of the next longer window."""
    windows = sorted(windows_h)
    return [f"rate_change_{short}h_{long}h" for short, long in zip(windows, windows[1:])]


def relative_activity_names(windows_h: Sequence[int]) -> list[str]:
    """Activity relative to the customer's own baseline: one ratio per window (see :func:`build_features`)."""
    return [f"relative_activity_{window}h" for window in sorted(windows_h)]


def feature_spec(windows_h: Sequence[int] = DEFAULT_WINDOWS_HOURS) -> FeatureSpec:
    """The feature spec for the given windows (hours)."""
    windows = _check_windows(windows_h)
    numeric = ["recency_h", *SUBSCRIPTION_NUMERIC]
    for window in windows:
        numeric.extend(window_feature_names(window))
    numeric.extend(trend_feature_names(windows))
    numeric.extend(relative_activity_names(windows))
    return FeatureSpec(numeric=tuple(numeric), categorical=CATEGORICAL_FEATURES, windows_h=windows)


FEATURE_SPEC = feature_spec()


# --------------------------------------------------------------------------------------------
# Input preparation


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UnusableTable(f"{table} table is missing required columns: {missing}")


def to_utc(value: datetime | str | pd.Timestamp) -> pd.Timestamp:
    """A UTC timestamp; a naive value is taken to be UTC already."""
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        raise ValueError("cutoff must be a point in time, got NaT")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _utc_ns(values: pd.Series, column: str) -> np.ndarray:
    """Nanoseconds since the epoch (int64; NaT becomes the int64 minimum) for a time-like column."""
    try:
        # a column of datetimes already needs no parsing: the format cache would only iterate over its values
        stamps = pd.to_datetime(values, utc=True, cache=not pd.api.types.is_datetime64_any_dtype(values))
    except (ValueError, TypeError) as exc:
        raise UnusableTable(f"column {column!r} holds values that are not timestamps: {exc}") from exc
    nanoseconds: np.ndarray = stamps.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
    return nanoseconds


_NAT = np.iinfo(np.int64).min


def _rows(values: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """``values[selected]``, without a copy when every row is selected (a cutoff after the data)."""
    chosen: np.ndarray = values if selected.all() else values[selected]
    return chosen


@dataclass(frozen=True)
class _Subscriptions:
    """Subscription records as arrays; each customer's records in the order they were known (``updated_at``,
    ties by generation and record id). The order across customers is not meaningful."""

    tokens: pd.Index  # the customer universe, sorted; codes index into it
    frame: pd.DataFrame  # the records, with integer ``_code``, ``_updated_ns``, ``_cancel_ns`` and ``_active``
    first_seen_ns: np.ndarray  # per code: ``updated_at`` of the customer's first record


def _prepare_subscriptions(subscriptions: pd.DataFrame) -> _Subscriptions:
    _require_columns(subscriptions, SUBSCRIPTION_COLUMNS, "subscriptions")
    frame = subscriptions.loc[:, [c for c in subscriptions.columns if not c.startswith("_")]]
    frame.index = pd.RangeIndex(len(frame))
    if frame["customer_token"].isna().any():
        raise UnusableTable("subscriptions table has rows without a customer_token")
    frame["_updated_ns"] = _utc_ns(frame["updated_at"], "updated_at")
    if (frame["_updated_ns"] == _NAT).any():
        raise UnusableTable("subscriptions table has rows without updated_at")
    cancel_ns = _utc_ns(frame["cancel_date"], "cancel_date")
    cancelled = frame["status"].isin(["cancelled"]).to_numpy()
    # A cancellation takes effect at cancel_date, or at updated_at when the date is missing.
    frame["_cancel_ns"] = np.where(cancelled, np.where(cancel_ns == _NAT, frame["_updated_ns"], cancel_ns), _NAT)
    frame["_signup_ns"] = _utc_ns(frame["signup_date"], "signup_date")
    frame["_active"] = frame["status"].isin(["active"]).to_numpy()
    codes, tokens = _sorted_codes(frame["customer_token"].astype(str))
    frame["_code"] = codes
    # Only the order of a customer's own records matters: only customers with several records are sorted, and
    # only their records can be changes. They come after the others.
    several = np.bincount(codes, minlength=len(tokens))[codes] > 1
    order = ["_updated_ns"]
    for tie_breaker in ("_source_generation", "record_id"):
        if tie_breaker in subscriptions.columns:
            frame[tie_breaker] = subscriptions[tie_breaker].reset_index(drop=True)
            order.append(tie_breaker)
    histories = frame[several].sort_values(order, kind="mergesort").index.to_numpy()
    if len(histories):
        frame = frame.take(np.concatenate([np.flatnonzero(~several), histories])).reset_index(drop=True)
    is_change, plan_step = _record_changes(frame.iloc[len(frame) - len(histories) :])
    frame["_is_change"] = np.concatenate([np.zeros(len(frame) - len(histories), dtype=bool), is_change])
    frame["_plan_step"] = np.concatenate([np.zeros(len(frame) - len(histories)), plan_step])
    first = ~frame.duplicated("_code", keep="first").to_numpy()
    first_seen = np.full(len(tokens), _NAT, dtype=np.int64)
    first_seen[frame["_code"].to_numpy()[first]] = frame["_updated_ns"].to_numpy()[first]
    return _Subscriptions(tokens=pd.Index(tokens), frame=frame, first_seen_ns=first_seen)


def _sorted_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(values, sort=True)`` for strings: the distinct values sorted by arrow (code point order, as
    Python sorts), not as Python objects."""
    codes, uniques = pd.factorize(values)
    order = arrow_call("sort_indices", pa.array(uniques, pa.string())).to_numpy().astype(np.int64)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    sorted_codes: np.ndarray = rank[codes]
    return sorted_codes, uniques[order]


def _record_changes(records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per record of ``records`` (each customer's in the order they were known): whether it changes the
    subscription, and the direction of its plan step (-1, 0 or 1)."""
    # A record is a change when it differs from the customer's previous record (the first one seen is not).
    first = ~records.duplicated("_code", keep="first").to_numpy()
    changed = np.zeros(len(records), dtype=bool)
    for name in CHANGE_COLUMNS:
        values = records[name].astype(object).where(records[name].notna(), None).astype(str)
        changed |= (values != values.groupby(records["_code"]).shift(1)).to_numpy()
    tier = records["plan"].astype(object).map(PLAN_TIERS).astype("float64")
    step = np.sign((tier - tier.groupby(records["_code"]).shift(1)).fillna(0.0)).to_numpy()
    return changed & ~first, np.where(first, 0.0, step)


@dataclass(frozen=True)
class HourlyActivity:
    """The events as their hourly pre-aggregates (:mod:`churnops.data.aggregates`), e.g. every ``aggregates/`` file
    of a lake commit in one table. Every function here that takes the events takes these in their place and gives
    the same result (sums in another order: equal to a few units in the last place), for cutoffs on an hour
    boundary; another cutoff raises ``ValueError`` (the raw events answer it)."""

    table: pa.Table

    @property
    def events(self) -> int:
        """How many events the rows aggregate."""
        return int(arrow_call("sum", self.table.column("events")).as_py() or 0)


Activity: TypeAlias = pd.DataFrame | HourlyActivity  # the events, raw or as hourly pre-aggregates


@dataclass(frozen=True)
class _Events:
    """Events of known customers as numpy arrays."""

    customer: np.ndarray  # int64 code into the subscription universe
    kind: np.ndarray  # int64 code into EVENT_TYPES, -1 for another type
    time_ns: np.ndarray  # int64 nanoseconds since the epoch
    session: np.ndarray  # int64 code, -1 when missing
    n_sessions: int
    duration: np.ndarray  # float64, NaN when missing
    amount: np.ndarray  # float64, 0 when missing

    # What the features read of any activity (see _Hourly): the time a row is selected by, the earliest and
    # the latest event time of a row, events per customer of selected rows and the window blocks.
    @property
    def stamp_ns(self) -> np.ndarray:
        """Per row: the time that places it before a cutoff and in a window."""
        return self.time_ns

    @property
    def earliest_ns(self) -> np.ndarray:
        """Per row: its earliest event time."""
        return self.time_ns

    @property
    def latest_ns(self) -> np.ndarray:
        """Per row: its latest event time."""
        return self.time_ns

    def check_cutoff(self, cutoff_ns: np.int64) -> None:
        """Any cutoff will do for the raw events."""

    def count(self, selected: np.ndarray, n_customers: int) -> np.ndarray:
        """Events per customer code among the selected rows."""
        counts: np.ndarray = np.bincount(self.customer[selected], minlength=n_customers)
        return counts

    def blocks(self, before: np.ndarray, starts: Sequence[np.int64], n_customers: int) -> list[Block]:
        """Per window start: :func:`_window_block` of the rows before the cutoff and from that start on."""
        return [_window_block(self, before & (self.time_ns >= start), n_customers) for start in starts]


Block: TypeAlias = list[np.ndarray]  # per-customer aggregates of one window: one array per window_feature_names
_WINDOW_SUMS: tuple[str, ...] = ("duration_sum", "duration_n", "amount_sum")  # aggregates columns a window sums


@dataclass(frozen=True)
class _Hourly:
    """Hourly pre-aggregates of known customers: one row per customer, hour and file. What every cutoff reads of
    every row as numpy arrays; what only a window's rows give (types, durations, amounts, sessions) stays in
    arrow and is read for those rows alone."""

    customer: np.ndarray  # int64 code into the subscription universe
    stamp_ns: np.ndarray  # int64: the hour (its start) the row aggregates
    events: np.ndarray  # int64: events in the row
    earliest_ns: np.ndarray  # int64: first event time in the row
    latest_ns: np.ndarray  # int64: last event time in the row
    windowed: pa.Table  # per row: TYPE_COLUMNS, _WINDOW_SUMS, sessions

    def check_cutoff(self, cutoff_ns: np.int64) -> None:
        """Hourly rows answer for a cutoff on an hour boundary only (windows are whole hours)."""
        if int(cutoff_ns) % int(_HOUR):
            raise ValueError(
                f"features from hourly pre-aggregates need a cutoff on an hour boundary, got "
                f"{pd.Timestamp(int(cutoff_ns), tz='UTC')}: use the raw events"
            )

    def count(self, selected: np.ndarray, n_customers: int) -> np.ndarray:
        """Events per customer code among the selected rows."""
        counts = np.zeros(n_customers, dtype=np.int64)
        # in integers (``add.at`` of matching types): faster here than ``bincount``, which sums in float64
        np.add.at(counts, _rows(self.customer, selected), _rows(self.events, selected))
        return counts

    def blocks(self, before: np.ndarray, starts: Sequence[np.int64], n_customers: int) -> list[Block]:
        """Per window start: the per-customer aggregates of the rows before the cutoff and from that start on,
        columns as :func:`window_feature_names`. The rows of the widest window are read once."""
        widest = before & (self.stamp_ns >= min(starts))
        customer, stamp_ns = self.customer[widest], self.stamp_ns[widest]
        rows = self.windowed.filter(pa.array(widest))
        names = [*aggregates.TYPE_COLUMNS, *_WINDOW_SUMS]
        # one row per summed column, the rows in table order (the order floating-point sums are added in)
        numbers = np.vstack([self.events[widest], *(rows.column(name).to_numpy() for name in names)], dtype=np.float64)
        pair_customer, pair_latest_ns = _session_pairs(customer, stamp_ns, rows.column("sessions"))
        blocks = []
        for start in starts:
            chosen = stamp_ns >= start
            chosen_customer = _rows(customer, chosen)
            chosen_numbers = numbers if chosen.all() else numbers[:, chosen]
            sums = [np.bincount(chosen_customer, weights=row, minlength=n_customers) for row in chosen_numbers]
            *counts, duration_sum, duration_n, spend = sums
            sessions = np.bincount(pair_customer[pair_latest_ns >= start], minlength=n_customers).astype(np.float64)
            blocks.append([*counts, sessions, _mean(duration_sum, duration_n), spend])
        return blocks


def _session_pairs(
    customer: np.ndarray, stamp_ns: np.ndarray, sessions: pa.ChunkedArray
) -> tuple[np.ndarray, np.ndarray]:
    """Every distinct (customer, session) pair listed in the rows of ``sessions`` (per row a list of ids; a row's
    customer and hour in ``customer`` and ``stamp_ns``): its customer code and the latest hour that lists it. The
    sessions of a window starting at ``start`` are the pairs whose latest hour is ``start`` or later."""
    listed = sessions.combine_chunks()
    row: np.ndarray = arrow_call("list_parent_indices", listed).to_numpy()
    listings = pa.table(
        {"customer": customer[row], "session": arrow_call("list_flatten", listed), "hour": stamp_ns[row]}
    ).drop_null()  # a missing session id is no session
    pairs = listings.group_by(["customer", "session"], use_threads=False).aggregate([("hour", "max")])
    pair_customer: np.ndarray = pairs.column("customer").to_numpy()
    latest_ns: np.ndarray = pairs.column("hour_max").to_numpy()
    return pair_customer, latest_ns


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``total / count``, NaN where the count is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean: np.ndarray = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean


def _codes_in(values: pd.Series, universe: pd.Index) -> np.ndarray:
    """Position of each value in ``universe`` (-1 when absent); fast for categorical input."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        category_codes = universe.get_indexer(values.cat.categories.astype(str))
        codes = values.cat.codes.to_numpy()
        return np.where(codes >= 0, category_codes[codes], -1).astype(np.int64)
    indexes: np.ndarray = universe.get_indexer(values.astype(str)).astype(np.int64)
    return indexes


def _prepare_events(events: pd.DataFrame, universe: pd.Index) -> _Events:
    _require_columns(events, EVENT_COLUMNS, "events")
    customer = _codes_in(events["customer_token"], universe)
    time_ns = _utc_ns(events["event_time"], "event_time")
    keep = (customer >= 0) & (time_ns != _NAT)
    kind = pd.Categorical(events["event_type"], categories=EVENT_TYPES).codes.astype(np.int64)
    if isinstance(events["session_id"].dtype, pd.CategoricalDtype):
        session = events["session_id"].cat.codes.to_numpy().astype(np.int64)
        n_sessions = len(events["session_id"].cat.categories)
    else:
        session, uniques = pd.factorize(events["session_id"], use_na_sentinel=True)
        session = session.astype(np.int64)
        n_sessions = len(uniques)
    duration = pd.to_numeric(events["duration_s"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    amount = pd.to_numeric(events["amount"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if not keep.all():
        customer, kind, time_ns, session = customer[keep], kind[keep], time_ns[keep], session[keep]
        duration, amount = duration[keep], amount[keep]
    return _Events(
        customer=customer,
        kind=kind,
        time_ns=time_ns,
        session=session,
        n_sessions=max(n_sessions, 1),
        duration=duration,
        amount=np.nan_to_num(amount, nan=0.0),
    )


def _prepare_hourly(activity: HourlyActivity, universe: pd.Index) -> _Hourly:
    table = activity.table
    missing = [name for name in aggregates.AGGREGATE_SCHEMA.names if name not in table.column_names]
    if missing:
        raise UnusableTable(f"aggregates table is missing required columns: {missing}")
    tokens = table.column("customer_token")
    if pa.types.is_dictionary(tokens.type):
        tokens = tokens.cast(tokens.type.value_type)
    # the position of each token in the universe; a token outside it (or a missing one) is null: its rows are left out
    value_set = pa.array(universe.to_numpy(), tokens.type)
    codes = arrow_call("index_in", tokens, options=pc.SetLookupOptions(value_set))
    if codes.null_count:
        known = arrow_call("is_valid", codes)
        table, codes = table.filter(known), codes.filter(known)
    customer: np.ndarray = codes.cast(pa.int64()).to_numpy()

    def stamps(name: str) -> np.ndarray:
        values: np.ndarray = table.column(name).to_numpy().astype("datetime64[ns]", copy=False).view(np.int64)
        return values

    return _Hourly(
        customer=customer,
        stamp_ns=stamps("hour"),
        events=table.column("events").cast(pa.int64()).to_numpy(),
        earliest_ns=stamps("first_time"),
        latest_ns=stamps("last_time"),
        windowed=table.select([*aggregates.TYPE_COLUMNS, *_WINDOW_SUMS, "sessions"]),
    )


def _prepare_activity(events: Activity, universe: pd.Index) -> _Events | _Hourly:
    if isinstance(events, HourlyActivity):
        return _prepare_hourly(events, universe)
    return _prepare_events(events, universe)


# --------------------------------------------------------------------------------------------
# Population, features and labels at one cutoff


def _latest_row(codes: np.ndarray, selected: np.ndarray, n_customers: int) -> np.ndarray:
    """Per customer code: the position of its last record among the ``selected`` ones (-1 when there is none)."""
    latest = np.full(n_customers, -1, dtype=np.int64)
    np.maximum.at(latest, codes[selected], np.flatnonzero(selected))
    return latest


def _state_at(subs: _Subscriptions, cutoff_ns: np.int64) -> pd.DataFrame:
    """Each customer active at the cutoff, by the records known then (``updated_at`` before it): the latest
    known record, with the subscription's change history (``_changes``, ``_changed_ns``, ``_plan_direction``).

    A customer is active when the latest known record says ``active`` and no known cancellation takes
    effect after that record and by the cutoff. A cancellation recorded after the cutoff (even one
    dated before it) was not known then, and a customer who cancelled and came back is active again.
    """
    frame = subs.frame
    n_customers = len(subs.tokens)
    codes = frame["_code"].to_numpy()
    updated = frame["_updated_ns"].to_numpy()
    cancel = frame["_cancel_ns"].to_numpy()
    known = updated < cutoff_ns
    latest = _latest_row(codes, known, n_customers)
    rows = latest[latest >= 0]  # in code order, which is token order
    in_effect = known & (cancel != _NAT) & (cancel <= cutoff_ns)
    last_cancel = np.full(n_customers, _NAT, dtype=np.int64)
    np.maximum.at(last_cancel, codes[in_effect], cancel[in_effect])
    rows = rows[frame["_active"].to_numpy()[rows] & (last_cancel[codes[rows]] <= updated[rows])]
    active = codes[rows]
    changes = known & frame["_is_change"].to_numpy()
    changed = _latest_row(codes, changes, n_customers)[active]
    plan_step = frame["_plan_step"].to_numpy()
    stepped = _latest_row(codes, known & (plan_step != 0), n_customers)[active]
    state = frame.take(rows)
    state.index = pd.RangeIndex(len(state))
    state["_changes"] = np.bincount(codes[changes], minlength=n_customers)[active]
    state["_changed_ns"] = np.where(changed >= 0, updated[changed], _NAT)
    state["_plan_direction"] = np.where(stepped >= 0, plan_step[stepped], 0.0)
    return state


def _window_block(ev: _Events, window: np.ndarray, n_customers: int) -> Block:
    """Per-customer aggregates of the events selected by mask ``window``: columns as :func:`window_feature_names`."""
    customer = ev.customer[window]
    n_types = len(EVENT_TYPES)
    total = np.bincount(customer, minlength=n_customers).astype(np.float64)
    kind = ev.kind[window]
    typed = kind >= 0
    per_type = np.bincount(customer[typed] * n_types + kind[typed], minlength=n_customers * n_types)
    per_type = per_type.reshape(n_customers, n_types).astype(np.float64)
    session = ev.session[window]
    has_session = session >= 0
    pairs = pd.unique(customer[has_session] * np.int64(ev.n_sessions) + session[has_session])
    sessions = np.bincount(pairs // ev.n_sessions, minlength=n_customers).astype(np.float64)
    duration = ev.duration[window]
    timed = ~np.isnan(duration)
    duration_sum = np.bincount(customer[timed], weights=duration[timed], minlength=n_customers)
    duration_n = np.bincount(customer[timed], minlength=n_customers)
    spend = np.bincount(customer, weights=ev.amount[window], minlength=n_customers)
    return [total, *per_type.T, sessions, _mean(duration_sum, duration_n), spend]


def _observed_hours(ev: _Events | _Hourly, subs: _Subscriptions, before: np.ndarray, cutoff_ns: np.int64) -> np.ndarray:
    """Per customer code: hours from the customer's first record or event (the earlier) to the cutoff, at least 1."""
    first_ns = subs.first_seen_ns.copy()
    first_ns[first_ns == _NAT] = cutoff_ns
    np.minimum.at(first_ns, _rows(ev.customer, before), _rows(ev.earliest_ns, before))
    return np.maximum((cutoff_ns - first_ns) / float(_HOUR), 1.0)


def _latest_event_ns(ev: _Events | _Hourly, before: np.ndarray, n_customers: int) -> np.ndarray:
    """Per customer code: the latest event time of the rows selected by ``before`` (``_NAT`` when there is none)."""
    latest = np.full(n_customers, _NAT, dtype=np.int64)
    np.maximum.at(latest, _rows(ev.customer, before), _rows(ev.latest_ns, before))
    return latest


def _last_heard_ns(ev: _Events | _Hourly, subs: _Subscriptions, state: pd.DataFrame, cutoff_ns: np.int64) -> np.ndarray:
    """Per state row: the latest event or known record of the customer before the cutoff (int64 ns)."""
    ev.check_cutoff(cutoff_ns)
    events_ns = _latest_event_ns(ev, ev.stamp_ns < cutoff_ns, len(subs.tokens))[state["_code"].to_numpy()]
    latest: np.ndarray = np.maximum(events_ns, state["_updated_ns"].to_numpy())
    return latest


def _population(
    ev: _Events | _Hourly | None, subs: _Subscriptions, cutoff_ns: np.int64, ghost_after_h: float | None
) -> pd.DataFrame:
    """:func:`_state_at` without the ghosts: customers silent (no event, no record) for more than
    ``ghost_after_h`` hours before the cutoff. ``None`` keeps everyone."""
    state = _state_at(subs, cutoff_ns)
    if ghost_after_h is None or ev is None:
        return state
    silent_since = _last_heard_ns(ev, subs, state, cutoff_ns)
    heard = cutoff_ns - silent_since <= np.int64(round(ghost_after_h * _HOUR))
    return state[heard].reset_index(drop=True)


def _subscription_columns(state: pd.DataFrame, cutoff_ns: np.int64) -> dict[str, np.ndarray]:
    """The numeric columns read from the subscription records (``SUBSCRIPTION_NUMERIC``), one value per state row."""
    columns: dict[str, np.ndarray] = {}
    signup_ns = state["_signup_ns"].to_numpy()
    known_signup = signup_ns != _NAT
    tenure_h = (cutoff_ns - np.where(known_signup, signup_ns, cutoff_ns)) / _HOUR
    columns["tenure_h"] = np.where(known_signup, np.clip(tenure_h, 0, None), np.nan)
    columns["monthly_charges"] = pd.to_numeric(state["monthly_charges"], errors="coerce").to_numpy(np.float64)
    columns["total_charges"] = pd.to_numeric(state["total_charges"], errors="coerce").to_numpy(np.float64)
    # Since the latest change of the subscription; with none on record, since signup (as signed up, as far as
    # the records show). Not since the customer's first record: that is where the data begins, not a change.
    changed_ns = state["_changed_ns"].to_numpy()
    has_change = changed_ns != _NAT
    since_change = (cutoff_ns - np.where(has_change, changed_ns, cutoff_ns)) / _HOUR
    columns["hours_since_change"] = np.where(has_change, since_change, columns["tenure_h"]).astype(np.float64)
    columns["subscription_changes"] = state["_changes"].to_numpy().astype(np.float64)
    columns["plan_direction"] = state["_plan_direction"].to_numpy().astype(np.float64)
    columns["contract_months"] = state["contract"].astype(object).map(CONTRACT_MONTHS).to_numpy(np.float64)
    return columns


def _features_at(
    ev: _Events | _Hourly,
    subs: _Subscriptions,
    cutoff: pd.Timestamp,
    windows: tuple[int, ...],
    ghost_after_h: float | None,
) -> pd.DataFrame:
    cutoff_ns = np.int64(cutoff.value)
    ev.check_cutoff(cutoff_ns)
    state = _population(ev, subs, cutoff_ns, ghost_after_h)
    n_customers = len(subs.tokens)
    rows = state["_code"].to_numpy()
    before = ev.stamp_ns < cutoff_ns  # strictly before the cutoff

    columns: dict[str, Any] = {"customer_token": state["customer_token"].astype(str).to_numpy(), "cutoff": cutoff}
    last_seen = _latest_event_ns(ev, before, n_customers)[rows]
    # the difference in integer nanoseconds: as float64 an event 1 ns before the cutoff would read as 0 h
    since_last_ns = np.where(last_seen != _NAT, (cutoff_ns - last_seen).astype(np.float64), np.nan)
    columns["recency_h"] = since_last_ns / float(_HOUR)
    columns.update(_subscription_columns(state, cutoff_ns))
    starts = [cutoff_ns - np.int64(window) * _HOUR for window in windows]
    for window, block in zip(windows, ev.blocks(before, starts, n_customers)):
        for name, values in zip(window_feature_names(window), block):
            columns[name] = values[rows].astype(np.float64, copy=False)  # a sum over no rows is int64
    for short, long in zip(windows, windows[1:]):
        short_rate = columns[f"events_{short}h"] / short
        columns[f"rate_change_{short}h_{long}h"] = short_rate - columns[f"events_{long}h"] / long
    history_h = _observed_hours(ev, subs, before, cutoff_ns)[rows]
    baseline_rate = ev.count(before, n_customers)[rows] / history_h
    for window, name in zip(windows, relative_activity_names(windows)):
        window_rate = columns[f"events_{window}h"] / np.minimum(window, history_h)
        columns[name] = (window_rate + ACTIVITY_PRIOR_PER_H) / (baseline_rate + ACTIVITY_PRIOR_PER_H)
    for name in CATEGORICAL_FEATURES:
        values = state[name].to_numpy(dtype=object, copy=True)
        values[pd.isna(values)] = None
        columns[name] = values
    return pd.DataFrame(columns, columns=[*KEY_COLUMNS, *feature_spec(windows).columns])


def _labels_at(
    subs: _Subscriptions,
    cutoff: pd.Timestamp,
    horizon_h: float,
    ev: _Events | _Hourly | None,
    ghost_after_h: float | None,
) -> pd.Series:
    """1 for a customer of the population whose subscription ends by ``cutoff + horizon``: a cancellation taking
    effect after the cutoff, or one recorded after it (a backdated cancellation nobody knew of at the cutoff)."""
    cutoff_ns = np.int64(cutoff.value)
    end_ns = cutoff_ns + np.int64(round(horizon_h * _HOUR))
    state = _population(ev, subs, cutoff_ns, ghost_after_h)
    frame = subs.frame
    cancel = frame["_cancel_ns"]
    unknown_at_cutoff = (cancel > cutoff_ns) | (frame["_updated_ns"] >= cutoff_ns)
    churned = frame.loc[(cancel != _NAT) & (cancel <= end_ns) & unknown_at_cutoff, "_code"]
    labels = state["_code"].isin(churned).astype(np.int64).to_numpy()
    return pd.Series(labels, index=pd.Index(state["customer_token"].astype(str), name="customer_token"), name=LABEL)


def _check_horizon(horizon_h: float) -> float:
    if not horizon_h > 0:
        raise ValueError(f"label horizon must be a positive number of hours, got {horizon_h}")
    return float(horizon_h)


def build_features(
    events: Activity,
    subscriptions: pd.DataFrame,
    cutoff: datetime | str | pd.Timestamp,
    windows: Sequence[int] = DEFAULT_WINDOWS_HOURS,
    ghost_after_h: float | None = None,
) -> pd.DataFrame:
    """One row per customer active at ``cutoff``: keys (``customer_token``, ``cutoff``) + spec columns.

    Only events and subscription records strictly before the cutoff contribute. Rows are sorted by
    ``customer_token``. With ``ghost_after_h``, customers silent for longer (see :func:`ghost_customers`)
    are left out.
    """
    windows_h = _check_windows(windows)
    subs = _prepare_subscriptions(subscriptions)
    return _features_at(_prepare_activity(events, subs.tokens), subs, to_utc(cutoff), windows_h, ghost_after_h)


def build_labels(
    subscriptions: pd.DataFrame,
    cutoff: datetime | str | pd.Timestamp,
    horizon: float = DEFAULT_HORIZON_HOURS,
    events: Activity | None = None,
    ghost_after_h: float | None = None,
) -> pd.Series:
    """1 if a customer active at ``cutoff`` cancels within ``(cutoff, cutoff + horizon hours]``, else 0.

    Indexed by ``customer_token`` in the same order as :func:`build_features` (given the same ``events``
    and ``ghost_after_h``: ghosts have no label).
    """
    subs = _prepare_subscriptions(subscriptions)
    prepared = _prepare_activity(events, subs.tokens) if events is not None else None
    return _labels_at(subs, to_utc(cutoff), _check_horizon(horizon), prepared, ghost_after_h)


def build_training_set(  # pylint: disable=too-many-arguments,too-many-positional-arguments  # the stage's inputs
    events: Activity,
    subscriptions: pd.DataFrame,
    cutoffs: Iterable[datetime | str | pd.Timestamp],
    horizon: float = DEFAULT_HORIZON_HOURS,
    windows: Sequence[int] = DEFAULT_WINDOWS_HOURS,
    ghost_after_h: float | None = GHOST_AFTER_HOURS,
) -> pd.DataFrame:
    """Features plus the ``churned`` label at every cutoff, stacked and sorted by (cutoff, customer).

    Ghosts (customers silent for more than ``ghost_after_h`` hours with no cancellation, by default
    ``GHOST_AFTER_HOURS``) are left out: their label would say "stayed" for a customer who may be gone.
    """
    windows_h = _check_windows(windows)
    horizon_h = _check_horizon(horizon)
    stamps = sorted({to_utc(c) for c in cutoffs})
    if not stamps:
        raise ValueError("at least one cutoff is needed")
    subs = _prepare_subscriptions(subscriptions)
    prepared = _prepare_activity(events, subs.tokens)
    parts = []
    for cutoff in stamps:
        features = _features_at(prepared, subs, cutoff, windows_h, ghost_after_h)
        features[LABEL] = _labels_at(subs, cutoff, horizon_h, prepared, ghost_after_h).to_numpy()
        parts.append(features)
    return pd.concat(parts, ignore_index=True)


def ghost_customers(
    events: Activity,
    subscriptions: pd.DataFrame,
    cutoff: datetime | str | pd.Timestamp,
    ghost_after_h: float = GHOST_AFTER_HOURS,
) -> pd.DataFrame:
    """Customers active at ``cutoff`` by their records, but silent for more than ``ghost_after_h`` hours:
    no event and no subscription record since. With no cancellation on record they may be gone (a lost
    billing export); they are left out of labels and scoring until heard of again.

    Columns: ``customer_token``, ``last_heard`` (UTC), ``silent_h``; sorted by token.
    """
    subs = _prepare_subscriptions(subscriptions)
    cutoff_ns = np.int64(to_utc(cutoff).value)
    state = _state_at(subs, cutoff_ns)
    last_heard = _last_heard_ns(_prepare_activity(events, subs.tokens), subs, state, cutoff_ns)
    silent_h = (cutoff_ns - last_heard) / float(_HOUR)
    ghost = silent_h > ghost_after_h
    return pd.DataFrame(
        {
            "customer_token": state["customer_token"].astype(str).to_numpy()[ghost],
            "last_heard": pd.to_datetime(last_heard[ghost], utc=True),
            "silent_h": silent_h[ghost],
        }
    )


def _event_times(events: Activity) -> np.ndarray:
    """The earliest and latest event times of hourly pre-aggregates' rows, or every event's time."""
    if isinstance(events, HourlyActivity):
        times = [events.table.column(name).cast(pa.timestamp("ns", tz="UTC")) for name in ("first_time", "last_time")]
        return np.concatenate([time.cast(pa.int64()).fill_null(_NAT).to_numpy() for time in times])
    return _utc_ns(events["event_time"], "event_time")


def data_span(events: Activity, subscriptions: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last timestamp seen in the tables (events' times and records' ``updated_at``)."""
    stamps = np.concatenate([_event_times(events), _utc_ns(subscriptions["updated_at"], "updated_at")])
    stamps = stamps[stamps != _NAT]
    if stamps.size == 0:
        raise InsufficientData("the tables hold no timestamps: nothing to train on")
    return pd.Timestamp(int(stamps.min()), tz="UTC"), pd.Timestamp(int(stamps.max()), tz="UTC")


def choose_cutoffs(
    events: Activity,
    subscriptions: pd.DataFrame,
    horizon: float = DEFAULT_HORIZON_HOURS,
    step_h: int = TRAINING_DEFAULTS["cutoff_step_hours"],
    min_history_h: int = TRAINING_DEFAULTS["min_history_hours"],
) -> list[pd.Timestamp]:
    """Hourly-aligned cutoffs every ``step_h`` hours whose label horizon lies fully inside the data.

    The first cutoff leaves ``min_history_h`` hours of history; the last is the end of the data
    (rounded up to the hour) minus the horizon.
    """
    if step_h <= 0 or min_history_h < 0:
        raise ValueError("cutoff step must be positive and minimum history non-negative")
    start, end = data_span(events, subscriptions)
    first = start.floor("h") + pd.Timedelta(hours=min_history_h)
    last = end.ceil("h") - pd.Timedelta(hours=_check_horizon(horizon))
    if last < first:
        raise InsufficientData(
            f"data spans {start} to {end}: too short for {min_history_h}h of history plus a {horizon}h horizon"
        )
    count = int((last - first) // pd.Timedelta(hours=step_h)) + 1
    return [last - pd.Timedelta(hours=step_h * i) for i in reversed(range(count))]


def _purged_blocks(
    cutoffs: list[pd.Timestamp], n_val: int, n_test: int, horizon: pd.Timedelta
) -> dict[str, list[pd.Timestamp]]:
    """The latest ``n_test`` cutoffs test, the latest ``n_val`` whose label window ends before the first test
    cutoff validate, and every cutoff whose label window ends before the first validation cutoff trains."""
    test = cutoffs[-n_test:]
    validation = [c for c in cutoffs if c + horizon < test[0]][-n_val:]
    train = [c for c in cutoffs if validation and c + horizon < validation[0]]
    return {"train": train, "validation": validation, "test": test}


def split_by_time(
    frame: pd.DataFrame,
    fractions: tuple[float, float, float] = TRAINING_DEFAULTS["split_fractions"],
    horizon_h: float = DEFAULT_HORIZON_HOURS,
) -> dict[str, pd.DataFrame]:
    """Split a stacked training set by cutoff, purged and embargoed: train, then validation, then test.

    A cutoff's label looks ``horizon_h`` hours ahead, so the last training cutoff plus the horizon
    falls before the first validation cutoff, and the last validation cutoff plus the horizon
    before the first test cutoff: no label window of an earlier split reaches into a later one.
    The cutoffs in those gaps are left out. ``fractions`` (train, validation, test) set the shares
    of the cutoffs kept; each split gets at least one. Too few cutoffs for that is refused
    (:class:`InsufficientData`), never split with an overlap.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions):
        raise ValueError(f"split fractions must be three positive numbers, got {fractions}")
    horizon = pd.Timedelta(hours=_check_horizon(horizon_h))
    cutoffs = list(pd.Series(frame["cutoff"].unique()).sort_values())
    total = sum(fractions)
    blocks: dict[str, list[pd.Timestamp]] | None = None
    # The shares apply to the kept cutoffs: the most kept cutoffs for which the shares hold.
    for kept in range(len(cutoffs), 2, -1):
        n_test = max(1, round(kept * fractions[2] / total))
        n_val = max(1, round(kept * fractions[1] / total))
        candidate = _purged_blocks(cutoffs, n_val, n_test, horizon)
        if len(candidate["validation"]) == n_val and candidate["train"]:
            blocks = candidate
            if sum(len(block) for block in candidate.values()) >= kept:
                break
    if blocks is None:
        span = f"{cutoffs[0]} to {cutoffs[-1]}" if cutoffs else "no cutoffs"
        raise InsufficientData(
            f"{len(cutoffs)} cutoff(s) ({span}) cannot be split into train, validation and test by time with a "
            f"{horizon_h:g}h label horizon: the last training cutoff plus the horizon must fall before the first "
            f"validation cutoff, and the last validation cutoff plus the horizon before the first test cutoff; "
            f"this needs cutoffs spanning more than {2 * horizon_h:g}h (use more data or a shorter horizon)"
        )
    return {name: frame[frame["cutoff"].isin(values)].reset_index(drop=True) for name, values in blocks.items()}


def held_out_customers(tokens: pd.Series, share: float) -> np.ndarray:
    """Which rows belong to the customers held out of training: a stable ``share`` of customers by id.

    A customer is held out when the first 8 bytes of sha256 of its token, as a fraction of 2**64,
    are below ``share``: the same customers at every cutoff, in every training, on every machine.
    """
    if not 0 <= share < 1:
        raise ValueError(f"held-out share must be in [0, 1), got {share}")
    unique = pd.unique(tokens.astype(str))
    fraction = np.array([int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "big") / 2**64 for t in unique])
    chosen = set(unique[fraction < share].tolist())
    selected: np.ndarray = tokens.astype(str).isin(chosen).to_numpy()
    return selected
