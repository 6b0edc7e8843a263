"""The synthetic raw-data generator: layout, contract, determinism, churn signal, anomalies."""

from __future__ import annotations

import csv
import gzip
import io
import ipaddress
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from churnops.data import contract, naming, parse
from churnops.local.datagen import (
    ANOMALY_KINDS,
    CONTRACTS,
    EVENT_COLUMNS,
    EVENT_REQUIRED,
    EVENT_TYPES,
    PAYMENT_METHODS,
    PLANS,
    SUBSCRIPTION_COLUMNS,
    SUBSCRIPTION_REQUIRED,
    Anomaly,
    GeneratedData,
    RawObject,
    generate,
    objects_by_arrival,
)

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
HOURS = 6
NAME = re.compile(
    r"^activity/(?:events/dt=(\d{4}-\d{2}-\d{2})/hr=(\d{2})/(web|app)-000\.jsonl\.gz"
    r"|subscriptions/dt=(\d{4}-\d{2}-\d{2})/hr=(\d{2})/billing-000\.csv)$"
)
CUSTOMER_ID = re.compile(r"^CUST-\d{7}$")
PHONE = re.compile(r"^\+\d{1,3}-\d{1,3}-\d{3}-\d{4}$")
HOUR = timedelta(hours=1)


@pytest.fixture(name="clean", scope="module")
def fixture_clean() -> GeneratedData:
    """Six hours of 300 customers, no anomalies."""
    return generate(HOURS, 300, start=START, seed=11)


@pytest.fixture(name="dirty", scope="module")
def fixture_dirty() -> GeneratedData:
    """The same customers and hours with anomalies in half of the objects (raised to cover every kind)."""
    return generate(HOURS, 300, start=START, seed=11, anomaly_rate=0.5)


def events_of(obj: RawObject) -> list[dict]:
    """The JSON Lines rows of an event object."""
    return [json.loads(line) for line in gzip.decompress(obj.data).decode("utf-8").splitlines()]


def billing_of(obj: RawObject) -> pd.DataFrame:
    """A billing export as text cells ("" for empty fields)."""
    return pd.read_csv(io.BytesIO(obj.data), dtype=str, keep_default_na=False)


def instant(text: str) -> datetime:
    """An ISO-8601 timestamp as an aware datetime."""
    return datetime.fromisoformat(text)


def all_events(data: GeneratedData) -> pd.DataFrame:
    """Every event row of every event object, with parsed event times."""
    rows = [row for obj in data.objects if obj.name.endswith(".jsonl.gz") for row in events_of(obj)]
    frame = pd.DataFrame(rows)
    frame["event_time"] = pd.to_datetime(frame["event_time"], format="ISO8601", utc=True)
    return frame


def anomaly_objects(data: GeneratedData, kind: str) -> list[tuple[Anomaly, RawObject]]:
    """The listed anomalies of ``kind`` with the objects they name."""
    by_name = {obj.name: obj for obj in data.objects}
    return [(a, by_name[a.object_name]) for a in data.anomalies if a.kind == kind]


# --- layout and determinism -------------------------------------------------------------------


def test_three_objects_per_hour_named_by_their_hour() -> None:
    data = generate(24, 20, start=START, seed=1)
    assert len(data.objects) == 72
    for i, obj in enumerate(data.objects):
        hour = START + (i // 3) * HOUR
        match = NAME.match(obj.name)
        assert match, obj.name
        assert obj.hour == hour and obj.arrival == hour
        assert f"dt={hour:%Y-%m-%d}/hr={hour:%H}/" in obj.name
        producer = ("web", "app", "billing")[i % 3]
        assert obj.name.rsplit("/", 1)[1].startswith(f"{producer}-")
        assert obj.content_type == ("text/csv" if producer == "billing" else "application/gzip")
    assert not data.anomalies


def test_same_arguments_give_identical_bytes_and_another_seed_differs() -> None:
    first = generate(3, 50, start=START, seed=5, anomaly_rate=0.5)
    again = generate(3, 50, start=START, seed=5, anomaly_rate=0.5)
    other = generate(3, 50, start=START, seed=6, anomaly_rate=0.5)
    assert first.objects == again.objects
    assert first.anomalies == again.anomalies
    pd.testing.assert_frame_equal(first.customers, again.customers)
    assert [o.name for o in other.objects] == [o.name for o in first.objects]
    event_pairs = [(a, b) for a, b in zip(first.objects, other.objects) if a.name.endswith(".gz") and a.data]
    assert event_pairs and all(a.data != b.data for a, b in event_pairs)
    assert not first.customers.equals(other.customers)


def test_anomalies_leave_the_other_objects_byte_identical(clean: GeneratedData, dirty: GeneratedData) -> None:
    touched = {a.object_name for a in dirty.anomalies}
    assert touched
    for before, after in zip(clean.objects, dirty.objects):
        if before.name not in touched:
            assert before == after


def test_start_is_floored_to_the_hour_and_defaults_to_the_past() -> None:
    data = generate(2, 5, start=START + timedelta(minutes=42, seconds=7), seed=0)
    assert data.objects[0].hour == START

    before = datetime.now(timezone.utc)
    default = generate(2, 5, seed=0)
    after = datetime.now(timezone.utc)
    first = default.objects[0].hour
    assert first.minute == first.second == first.microsecond == 0
    assert first in {
        before.replace(minute=0, second=0, microsecond=0) - 2 * HOUR,
        after.replace(minute=0, second=0, microsecond=0) - 2 * HOUR,
    }
    assert max(obj.hour for obj in default.objects) + HOUR <= after


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hours": 0, "customers": 5},
        {"hours": 2, "customers": 0},
        {"hours": 2, "customers": 5, "anomaly_rate": 1.5},
        {"hours": 2, "customers": 5, "events_per_customer_hour": -1.0},
        {"hours": 2, "customers": 5, "seed": -3},
        {"hours": 2, "customers": 5, "start": datetime(2026, 11, 1)},  # naive
    ],
)
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate(**kwargs)


# --- the contract, on clean data --------------------------------------------------------------


def test_clean_objects_pass_the_real_contract_check_without_a_single_quarantined_row(clean: GeneratedData) -> None:
    now = START + timedelta(hours=HOURS + 1)
    checked = 0
    for obj in clean.objects:
        kind = naming.kind_of(obj.name)
        parsed = parse.parse_object(obj.name, obj.data)
        result = contract.check(parsed, kind, naming.hour_of(obj.name), now)
        assert len(parsed.malformed) == 0, obj.name
        assert len(result.quarantined) == 0, (obj.name, result.quarantined.head(3).to_dict("records"))
        assert not result.unknown_columns and not result.missing_required, obj.name
        assert not result.corrections, obj.name
        assert len(result.valid) == result.rows_in > 0
        checked += 1
    assert checked == len(clean.objects) == 3 * HOURS


def test_event_objects_follow_the_contract(clean: GeneratedData) -> None:
    seen_ids: set[str] = set()
    ipv6 = 0
    for obj in clean.objects:
        if not obj.name.endswith(".jsonl.gz"):
            continue
        producer = obj.name.rsplit("/", 1)[1].split("-")[0]
        rows = events_of(obj)
        assert rows, obj.name
        times = [instant(row["event_time"]) for row in rows]
        assert times == sorted(times)
        for row, at in zip(rows, times):
            assert list(row) == list(EVENT_COLUMNS)
            event_id = uuid.UUID(row["event_id"])
            assert event_id.version == 4 and str(event_id) == row["event_id"]
            assert row["event_id"] not in seen_ids
            seen_ids.add(row["event_id"])
            assert CUSTOMER_ID.match(row["customer_id"])
            assert obj.hour <= at < obj.hour + HOUR
            assert row["event_type"] in EVENT_TYPES
            assert isinstance(row["session_id"], str) and row["session_id"]
            assert isinstance(row["duration_s"], float) and row["duration_s"] >= 0
            if row["event_type"] == "purchase":
                assert isinstance(row["amount"], float) and row["amount"] >= 0
            else:
                assert row["amount"] is None
            assert row["device"] in (("web",) if producer == "web" else ("ios", "android"))
            assert row["page"].startswith("/")
            ipv6 += ipaddress.ip_address(row["ip_address"]).version == 6
            assert row["user_agent"]
            if row["email"] is not None:
                assert producer == "app" and row["event_type"] == "login" and "@" in row["email"]
    assert ipv6 > 0
    logins_with_email = [r for o in clean.objects if "/app-" in o.name for r in events_of(o) if r["email"]]
    assert logins_with_email


def test_billing_exports_follow_the_contract(clean: GeneratedData) -> None:
    record_ids: set[str] = set()
    for obj in clean.objects:
        if not obj.name.endswith(".csv"):
            continue
        frame = billing_of(obj)
        assert list(frame.columns) == list(SUBSCRIPTION_COLUMNS)
        assert not record_ids & set(frame["record_id"])
        record_ids |= set(frame["record_id"])
        assert frame["record_id"].is_unique
        for row in frame.to_dict("records"):
            assert CUSTOMER_ID.match(row["customer_id"])
            assert row["name"] and "@" in row["email"] and PHONE.match(row["phone"]), row
            assert row["plan"] in PLANS and row["contract"] in CONTRACTS
            assert row["payment_method"] in PAYMENT_METHODS
            assert float(row["monthly_charges"]) >= 0 and float(row["total_charges"]) >= 0
            updated = instant(row["updated_at"])
            assert obj.hour <= updated < obj.hour + HOUR
            assert datetime.strptime(row["signup_date"], "%Y-%m-%d").date() <= updated.date()
            assert row["status"] in ("active", "cancelled")
            assert (row["cancel_date"] != "") == (row["status"] == "cancelled")
            assert re.fullmatch(r"[A-Z]{2}", row["country"])


def test_first_export_lists_everyone_and_later_ones_only_changes(clean: GeneratedData) -> None:
    truth = clean.customers.set_index("customer_id")
    exports = [billing_of(obj) for obj in clean.objects if obj.name.endswith(".csv")]
    assert set(exports[0]["customer_id"]) == set(truth.index)
    plan = dict(zip(exports[0]["customer_id"], exports[0]["plan"]))
    cancellations = {}
    for hour_index, export in enumerate(exports[1:], start=1):
        assert len(export) < len(truth) / 4
        for row in export.to_dict("records"):
            if row["status"] == "cancelled":
                cancellations[row["customer_id"]] = instant(row["cancel_date"])
                assert row["updated_at"] == row["cancel_date"]
            else:
                assert row["plan"] != plan[row["customer_id"]]  # an active row is a plan change
            plan[row["customer_id"]] = row["plan"]
        hour = START + hour_index * HOUR
        churning = {c for c, t in truth["churn_time"].dropna().items() if hour <= t < hour + HOUR}
        assert churning <= set(export["customer_id"])
    first_hour = {c for c, s in zip(exports[0]["customer_id"], exports[0]["status"]) if s == "cancelled"}
    cancelled = set(cancellations) | first_hour
    assert cancelled == set(truth["churn_time"].dropna().index)
    for customer, at in cancellations.items():
        assert pd.Timestamp(at) == truth.at[customer, "churn_time"]


# --- churn model ------------------------------------------------------------------------------


def test_churn_rate_and_its_drivers() -> None:
    truth = generate(1, 4000, start=START, seed=2, events_per_customer_hour=0).customers
    churned = truth["churn_time"].notna()
    assert 0.22 <= churned.mean() <= 0.32
    assert set(truth.columns) == {
        "customer_id",
        "plan",
        "contract",
        "payment_method",
        "monthly_charges",
        "signup_date",
        "country",
        "churn_probability",
        "churn_time",
        "activity",
        "support",
    }
    by_contract = truth.groupby("contract")["churn_probability"].mean()
    assert by_contract["monthly"] > by_contract["annual"] > by_contract["two_year"]
    by_payment = truth.groupby("payment_method")["churn_probability"].mean()
    assert by_payment["invoice"] > by_payment["card"] and by_payment["bank_transfer"] > by_payment["card"]
    # Noise: the drivers do not decide churn on their own.
    assert 0.02 < churned[truth["contract"] == "two_year"].mean() < churned[truth["contract"] == "monthly"].mean() < 0.8
    span = (truth.loc[churned, "churn_time"] - pd.Timestamp(START)) / pd.Timedelta(hours=1)
    assert span.between(0, 1, inclusive="left").all()


def test_churners_fade_before_cancelling_and_go_silent_after(clean: GeneratedData) -> None:
    events = all_events(clean)
    truth = clean.customers.set_index("customer_id")
    churn_time = events["customer_id"].map(truth["churn_time"])
    assert not (events["event_time"] >= churn_time).any()

    end = pd.Timestamp(START) + HOURS * HOUR
    counts = events.groupby("customer_id").size().reindex(truth.index, fill_value=0)
    stayers = truth["churn_time"].isna()
    stayer_rate = counts[stayers].sum() / (stayers.sum() * HOURS)

    window_start = (truth.loc[~stayers, "churn_time"] - 6 * HOUR).clip(lower=pd.Timestamp(START))
    window_hours = (truth.loc[~stayers, "churn_time"] - window_start) / pd.Timedelta(hours=1)
    in_window = events[churn_time.notna()]
    in_window = in_window[in_window["event_time"] >= in_window["customer_id"].map(window_start)]
    churner_rate = len(in_window) / window_hours.sum()
    assert churner_rate < 0.8 * stayer_rate

    trouble = events["event_type"].isin(["support_contact", "error"])
    from_stayers = events["customer_id"].map(stayers).astype(bool)
    assert trouble[in_window.index].mean() > trouble[from_stayers].mean()
    assert end > events["event_time"].max()


# --- anomalies --------------------------------------------------------------------------------


def test_every_kind_is_injected_once_per_object(dirty: GeneratedData) -> None:
    assert {a.kind for a in dirty.anomalies} == set(ANOMALY_KINDS)
    names = [a.object_name for a in dirty.anomalies]
    assert len(names) == len(set(names))
    assert set(names) <= {obj.name for obj in dirty.objects}
    assert len(names) >= round(0.5 * len(dirty.objects))


def test_anomaly_rate_zero_and_one() -> None:
    assert not generate(2, 30, start=START, seed=4, anomaly_rate=0.0).anomalies
    every = generate(2, 30, start=START, seed=4, anomaly_rate=1.0)
    assert len(every.anomalies) == len(every.objects)


def _check_missing_column(want_required: bool) -> Callable[[Anomaly, RawObject], None]:
    def check(anomaly: Anomaly, obj: RawObject) -> None:
        if obj.name.endswith(".csv"):
            frame = billing_of(obj)
            expected, required_names = SUBSCRIPTION_COLUMNS, SUBSCRIPTION_REQUIRED
        else:
            frame = pd.DataFrame(events_of(obj))
            expected, required_names = EVENT_COLUMNS, EVENT_REQUIRED
        missing = set(expected) - set(frame.columns)
        assert len(missing) == 1 and set(frame.columns) < set(expected)
        assert (missing.pop() in required_names) == want_required
        assert anomaly.rows == len(frame) > 0

    return check


def _check_extra_column(anomaly: Anomaly, obj: RawObject) -> None:
    if obj.name.endswith(".csv"):
        frame, expected = billing_of(obj), SUBSCRIPTION_COLUMNS
    else:
        frame, expected = pd.DataFrame(events_of(obj)), EVENT_COLUMNS
    extra = set(frame.columns) - set(expected)
    assert len(extra) == 1 and set(expected) < set(frame.columns)
    assert frame[extra.pop()].notna().all() and anomaly.rows == len(frame)


def _is_number_text(value: object) -> bool:
    try:
        float(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def _check_wrong_type(anomaly: Anomaly, obj: RawObject) -> None:
    rows = events_of(obj)
    strings = [r for r in rows if isinstance(r["duration_s"], str) or isinstance(r["amount"], str)]
    assert all(_is_number_text(r["duration_s"]) or _is_number_text(r["amount"]) for r in strings)
    assert len(strings) == anomaly.rows > 0


def _not_a_number(value: object) -> bool:
    try:
        float(str(value))
    except ValueError:
        return True
    return False


def _check_uncoercible(anomaly: Anomaly, obj: RawObject) -> None:
    if obj.name.endswith(".csv"):
        values = list(billing_of(obj)["monthly_charges"])
    else:
        values = [r["duration_s"] for r in events_of(obj)]
    assert sum(_not_a_number(v) for v in values) == anomaly.rows > 0


def _check_malformed(anomaly: Anomaly, obj: RawObject) -> None:
    if obj.name.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(obj.data.decode("utf-8"))))
        bad = sum(len(row) != len(rows[0]) for row in rows[1:])
        with pytest.raises(pd.errors.ParserError):
            pd.read_csv(io.BytesIO(obj.data))
    else:
        bad = 0
        for line in gzip.decompress(obj.data).splitlines():
            try:
                json.loads(line)
            except json.JSONDecodeError:
                bad += 1
    assert bad == anomaly.rows > 0


def _check_duplicates(anomaly: Anomaly, obj: RawObject, data: GeneratedData) -> None:
    earlier = set()
    for other in data.objects:
        if other.name.endswith(".jsonl.gz") and other.hour < obj.hour and other.name != obj.name:
            try:
                earlier |= {r.get("event_id") for r in events_of(other)}
            except (EOFError, OSError, json.JSONDecodeError):
                continue  # an object broken by another anomaly
    ids = [r["event_id"] for r in events_of(obj)]
    repeated = len(ids) - len(set(ids))
    resent = len(set(ids) & earlier)
    assert repeated > 0 and resent > 0
    assert repeated + resent == anomaly.rows


def _check_out_of_range(anomaly: Anomaly, obj: RawObject) -> None:
    now = datetime.now(timezone.utc)
    bad = 0
    if obj.name.endswith(".csv"):
        for row in billing_of(obj).to_dict("records"):
            updated = instant(row["updated_at"])
            bad += (
                float(row["monthly_charges"]) < 0
                or float(row["total_charges"]) < 0
                or not obj.hour <= updated < obj.hour + HOUR
                or datetime.strptime(row["signup_date"], "%Y-%m-%d").date() > updated.date()
            )
    else:
        for row in events_of(obj):
            at = instant(row["event_time"])
            bad += (
                row["duration_s"] < 0
                or (row["amount"] is not None and row["amount"] < 0)
                or not obj.hour - timedelta(minutes=5) <= at < obj.hour + HOUR + timedelta(minutes=5)
                or at > now
            )
    assert bad == anomaly.rows > 0


def _check_corrupt(anomaly: Anomaly, obj: RawObject) -> None:
    assert obj.name.endswith(".jsonl.gz") and obj.data[:2] == b"\x1f\x8b"
    with pytest.raises((EOFError, OSError)):
        gzip.decompress(obj.data)
    assert anomaly.rows == 0


def _check_empty(anomaly: Anomaly, obj: RawObject) -> None:
    assert obj.data == b"" and anomaly.rows == 0


def _check_late(anomaly: Anomaly, obj: RawObject, data: GeneratedData) -> None:
    assert obj.hour + HOUR <= obj.arrival <= obj.hour + 2 * HOUR
    assert obj.arrival <= max(o.hour for o in data.objects)
    assert anomaly.rows == 0
    rows = len(events_of(obj)) if obj.name.endswith(".gz") else len(billing_of(obj))
    assert rows > 0  # the content itself is intact


CHECKS: dict[str, Callable[..., None]] = {
    "missing_optional_column": _check_missing_column(want_required=False),
    "missing_required_column": _check_missing_column(want_required=True),
    "extra_column": _check_extra_column,
    "wrong_type": _check_wrong_type,
    "uncoercible_value": _check_uncoercible,
    "malformed_row": _check_malformed,
    "out_of_range": _check_out_of_range,
    "corrupt_file": _check_corrupt,
    "empty_file": _check_empty,
}


@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_each_anomaly_is_in_the_bytes_as_listed(kind: str, dirty: GeneratedData) -> None:
    found = anomaly_objects(dirty, kind)
    assert found
    for anomaly, obj in found:
        if kind == "duplicate_events":
            _check_duplicates(anomaly, obj, dirty)
        elif kind == "late_file":
            _check_late(anomaly, obj, dirty)
        else:
            CHECKS[kind](anomaly, obj)
        if kind != "late_file":
            assert obj.arrival == obj.hour


def test_anomalies_spread_over_a_day_of_objects() -> None:
    data = generate(24, 60, start=START, seed=9, anomaly_rate=0.25)
    assert len(data.anomalies) == 18  # 25% of 72 objects
    assert {a.kind for a in data.anomalies} == set(ANOMALY_KINDS)
    assert all(a.kind != "corrupt_file" or a.object_name.endswith(".jsonl.gz") for a in data.anomalies)
    assert all(a.kind != "wrong_type" or a.object_name.endswith(".jsonl.gz") for a in data.anomalies)


def test_objects_by_arrival_replays_late_files_when_they_land(dirty: GeneratedData) -> None:
    grouped = objects_by_arrival(dirty.objects)
    assert list(grouped) == sorted(grouped)
    assert sum(len(group) for group in grouped.values()) == len(dirty.objects)
    late_anomaly, late = anomaly_objects(dirty, "late_file")[0]
    assert late in grouped[late.arrival] and late not in grouped[late.hour]
    for arrival, group in grouped.items():
        assert [o.name for o in group] == sorted(o.name for o in group)
        assert all(o.arrival == arrival for o in group)
    assert late_anomaly.object_name == late.name
    assert np.all(np.diff([a.timestamp() for a in grouped]) > 0)
