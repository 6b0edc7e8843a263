"""The data contract check: parsing raw objects, coercing, correcting and quarantining rows."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import pytz
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnops.data import contract, naming, parse, schema
from churnops.data.contract import ContractResult
from churnops.data.parse import ParsedObject, UnreadableObject

HOUR = datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
NOW = HOUR + timedelta(hours=2)
EVENTS_NAME = "activity/events/dt=2024-05-01/hr=10/web-000.jsonl.gz"
SUBS_NAME = "activity/subscriptions/dt=2024-05-01/hr=10/billing-000.csv"
DOC = Path(__file__).resolve().parents[3] / "docs" / "data-contract.md"


def event(**changes: Any) -> dict[str, Any]:
    """A valid event with the required columns, changed by ``changes`` (``None`` removes a key)."""
    record: dict[str, Any] = {
        "event_id": "e-1",
        "customer_id": "CUST-0000001",
        "event_time": "2024-05-01T10:15:00.123Z",
        "event_type": "page_view",
        "session_id": "s-1",
        "duration_s": 12.5,
        "amount": None,
        "device": "web",
        "page": "/home",
        "ip_address": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
        "email": None,
    }
    record.update(changes)
    return record


def subscription(**changes: str) -> dict[str, str]:
    """A valid billing-export row (all values are text, as in CSV)."""
    record = {
        "record_id": "r-1",
        "customer_id": "CUST-0000001",
        "name": "Jane Doe",
        "email": "jane@example.com",
        "phone": "+1-555-123-4567",
        "plan": "standard",
        "contract": "monthly",
        "payment_method": "card",
        "monthly_charges": "29.99",
        "total_charges": "119.96",
        "signup_date": "2024-01-15",
        "status": "active",
        "cancel_date": "",
        "updated_at": "2024-05-01T10:20:00Z",
        "country": "DE",
    }
    record.update(changes)
    return record


def jsonl(*lines: dict[str, Any] | bytes) -> bytes:
    """A gzip JSON Lines object; dicts are encoded, bytes are written as they are."""
    encoded = [line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines]
    return gzip.compress(b"\n".join(encoded) + b"\n", mtime=0)  # the same bytes at every collection


def csv_object(rows: list[dict[str, str]], header: list[str] | None = None) -> bytes:
    """A CSV object with a header row."""
    header = header or list(rows[0])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[row.get(name, "") for name in header] for row in rows])
    return buffer.getvalue().encode()


def accounted(result: ContractResult) -> ContractResult:
    """Every row is either valid or quarantined."""
    assert result.rows_in == len(result.valid) + len(result.quarantined)
    return result


def check_events(data: bytes, now: datetime = NOW) -> ContractResult:
    """Parse and check an events object of HOUR."""
    return accounted(contract.check(parse.parse_object(EVENTS_NAME, data), schema.EVENTS, HOUR, now))


def check_subscriptions(data: bytes) -> ContractResult:
    """Parse and check a subscriptions object of HOUR."""
    return accounted(contract.check(parse.parse_object(SUBS_NAME, data), schema.SUBSCRIPTIONS, HOUR, NOW))


def reasons_by_event(result: ContractResult) -> dict[str, str]:
    """event_id -> reason of each quarantined row."""
    return dict(zip(result.quarantined["event_id"], result.quarantined["_reason"]))


def corrections(result: ContractResult, kind: str) -> dict[str, contract.Correction]:
    """column -> correction of one kind."""
    return {c.column: c for c in result.corrections if c.kind == kind}


# -- object names ---------------------------------------------------------------------------------


def test_kind_and_hour_come_from_the_object_name() -> None:
    assert naming.kind_of(EVENTS_NAME) == "events"
    assert naming.kind_of(SUBS_NAME) == "subscriptions"
    assert naming.hour_of(SUBS_NAME) == HOUR
    assert naming.hour_of("gs://raw/activity/events/dt=2024-12-31/hr=23/app-7.jsonl.gz") == datetime(
        2024, 12, 31, 23, tzinfo=timezone.utc
    )


@pytest.mark.parametrize(
    "name",
    [
        "activity/clicks/dt=2024-05-01/hr=10/x.jsonl.gz",
        "activity/events/dt=2024-05-01/x.jsonl.gz",
        "activity/events/dt=2024-05-01/hr=10/x.csv",
        "activity/subscriptions/dt=2024-05-01/hr=10/x.jsonl.gz",
        "activity/events/dt=2024-02-30/hr=10/x.jsonl.gz",
        "activity/events/dt=2024-05-01/hr=24/x.jsonl.gz",
    ],
)
def test_other_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError):
        naming.hour_of(name)


# -- the schemas are the documented contract ------------------------------------------------------


DOCUMENTED_POLICY = {"tokenized": schema.TOKENIZE, "dropped": schema.DROP}


def documented_columns(version: str) -> list[tuple[str, bool, set[str], str | None]]:
    """(column, required, allowed values, PII policy or None) from the table under ``## `version` `` in the doc."""
    section = DOC.read_text().split(f"## `{version}`", 1)[1].split("\n## ", 1)[0]
    columns = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            allowed = re.match(r"one of `([^`]*)`", cells[4])
            values = {value.strip() for value in allowed.group(1).split(",")} if allowed else set()
            if cells[4].startswith("an ISO 3166-1 alpha-2 code"):
                values = set(pytz.country_names)
            policy = re.match(r"\*\*(\w+)\*\*", cells[3])  # "kept", or "**tokenized** ..." / "**dropped**"
            columns.append(
                (cells[0].strip("`"), cells[2] == "yes", values, DOCUMENTED_POLICY[policy.group(1)] if policy else None)
            )
    return columns


@pytest.mark.parametrize("kind", [schema.EVENTS, schema.SUBSCRIPTIONS])
def test_schemas_match_the_documented_contract(kind: str) -> None:
    documented = documented_columns(schema.SCHEMA_VERSIONS[kind])
    assert schema.CONTRACT_COLUMNS[kind] == [name for name, _, _, _ in documented]
    assert schema.REQUIRED_COLUMNS[kind] == [name for name, required, _, _ in documented if required]
    assert schema.PII_COLUMNS[kind] == {name: policy for name, _, _, policy in documented if policy}
    contract_schema = schema.contract_schema(kind)
    for name, _, values, _ in documented:
        assert set(contract_schema.columns[name].metadata["allowed"] or ()) == values, name


# -- valid data -----------------------------------------------------------------------------------


def test_valid_events_get_the_contract_columns_and_dtypes() -> None:
    result = check_events(jsonl(event(), event(event_id="e-2", event_time="2024-05-01T12:30:00+02:00")))
    assert result.schema_version == "events:v1"
    assert result.quarantined.empty and len(result.valid) == 2
    assert list(result.valid.columns) == schema.CONTRACT_COLUMNS["events"]
    dtypes = result.valid.dtypes
    assert all(isinstance(dtypes[c], pd.StringDtype) for c in ("event_id", "customer_id", "event_type", "device"))
    assert dtypes["duration_s"] == "float64" and dtypes["amount"] == "float64"
    assert isinstance(dtypes["event_time"], pd.DatetimeTZDtype) and str(dtypes["event_time"].tz) == "UTC"
    assert result.valid["event_time"].tolist() == [
        pd.Timestamp("2024-05-01T10:15:00.123Z"),
        pd.Timestamp("2024-05-01T10:30:00Z"),
    ]
    assert not result.corrections and not result.unknown_columns and not result.missing_required


def test_valid_subscriptions_get_the_contract_columns_and_dtypes() -> None:
    result = check_subscriptions(
        csv_object(
            [subscription(), subscription(record_id="r-2", status="cancelled", cancel_date="2024-05-01T10:20:00Z")]
        )
    )
    assert result.quarantined.empty and len(result.valid) == 2
    assert list(result.valid.columns) == schema.CONTRACT_COLUMNS["subscriptions"]
    assert result.valid["monthly_charges"].dtype == "float64"
    assert result.valid["monthly_charges"].tolist() == [29.99, 29.99]
    assert result.valid["signup_date"].dtype == "datetime64[ns]"
    assert result.valid["signup_date"].iloc[0] == pd.Timestamp("2024-01-15")
    assert str(result.valid["updated_at"].dtype.tz) == "UTC"
    assert result.valid["cancel_date"].isna().tolist() == [True, False]
    assert not result.corrections


# -- column-level policy --------------------------------------------------------------------------


def test_a_missing_optional_column_is_added_with_nulls() -> None:
    rows = [{k: v for k, v in event(event_id=f"e-{i}").items() if k != "session_id"} for i in range(3)]
    result = check_events(jsonl(*rows))
    assert len(result.valid) == 3 and result.valid["session_id"].isna().all()
    correction = corrections(result, "added_missing_optional_column")["session_id"]
    assert correction.rows == 3


def test_a_missing_required_column_quarantines_the_whole_object() -> None:
    rows = [{k: v for k, v in event(event_id=f"e-{i}").items() if k != "event_type"} for i in range(3)]
    result = check_events(jsonl(*rows, b"{not json"))
    assert result.missing_required == ["event_type"]
    assert result.valid.empty and list(result.valid.columns) == schema.CONTRACT_COLUMNS["events"]
    assert len(result.quarantined) == 4 and result.rows_in == 4
    parsed_rows = result.quarantined[result.quarantined["_raw"].isna()]
    assert (parsed_rows["_reason"] == "missing required column(s): event_type").all()
    assert parsed_rows["event_id"].tolist() == ["e-0", "e-1", "e-2"]


def test_unknown_columns_are_listed_and_left_out_of_valid() -> None:
    result = check_events(jsonl(event(experiment="B"), event(event_id="e-2")))
    assert result.unknown_columns == ["experiment"]
    assert "experiment" not in result.valid.columns and len(result.valid) == 2
    assert corrections(result, "dropped_unknown_column")["experiment"].rows == 1


def test_quarantined_rows_keep_unknown_columns_and_raw_text() -> None:
    result = check_events(jsonl(event(experiment={"arm": "B"}, amount=-3, device="tv")))
    row = result.quarantined.iloc[0]
    assert row["experiment"] == '{"arm":"B"}' and row["amount"] == "-3" and row["device"] == "tv"
    assert row["_line"] == 1


# -- types ----------------------------------------------------------------------------------------


def test_values_of_a_coercible_type_are_coerced_and_counted() -> None:
    result = check_events(
        jsonl(
            event(amount="12.5", duration_s=3),
            event(event_id="e-2", amount=4, duration_s="7"),
            event(event_id=1234, customer_id="CUST-0000002"),
        )
    )
    assert result.quarantined.empty
    assert result.valid["amount"].tolist()[:2] == [12.5, 4.0]
    assert result.valid["duration_s"].tolist() == [3.0, 7.0, 12.5]
    assert result.valid["event_id"].tolist() == ["e-1", "e-2", "1234"]
    coerced = corrections(result, "coerced_dtype")
    assert (coerced["amount"].rows, coerced["duration_s"].rows, coerced["event_id"].rows) == (2, 2, 1)


def test_an_uncoercible_value_quarantines_its_row_and_names_column_and_type() -> None:
    result = check_events(jsonl(event(duration_s="abc"), event(event_id="e-2"), event(event_id="e-3", page=[1, 2])))
    assert result.valid["event_id"].tolist() == ["e-2"]
    reasons = reasons_by_event(result)
    assert reasons["e-1"] == "uncoercible value in column duration_s (string 'abc')"
    assert reasons["e-3"] == "uncoercible value in column page (array)"
    assert "coerced_dtype" not in {c.kind for c in result.corrections}


def test_uncoercible_dates_and_timestamps_are_quarantined() -> None:
    result = check_subscriptions(
        csv_object(
            [
                subscription(signup_date="15/01/2024"),
                subscription(record_id="r-2", updated_at="yesterday"),
                subscription(record_id="r-3", monthly_charges="twelve"),
            ]
        )
    )
    assert result.valid.empty
    reasons = dict(zip(result.quarantined["record_id"], result.quarantined["_reason"]))
    assert reasons["r-1"].startswith("uncoercible value in column signup_date (string")
    assert reasons["r-2"].startswith("uncoercible value in column updated_at (string")
    assert reasons["r-3"].startswith("uncoercible value in column monthly_charges (string")
    assert not any("null in required column" in reason for reason in reasons.values())


def test_reasons_for_pii_columns_never_contain_the_value() -> None:
    secret = "jane.secret@example.com"
    result = check_events(jsonl(event(email={"address": secret}), event(event_id="e-2", customer_id=["CUST-0009999"])))
    reasons = reasons_by_event(result)
    assert reasons == {
        "e-1": "uncoercible value in column email (object)",
        "e-2": "uncoercible value in column customer_id (array)",
    }
    assert not any(secret in reason or "CUST-0009999" in reason for reason in reasons.values())


# -- row rules ------------------------------------------------------------------------------------


def test_null_or_blank_in_a_required_column_quarantines_the_row() -> None:
    result = check_events(
        jsonl(event(event_type=None), event(event_id="e-2", customer_id="   "), event(event_id="e-3"))
    )
    reasons = reasons_by_event(result)
    assert reasons == {
        "e-1": "null in required column event_type",
        "e-2": "null in required column customer_id",
    }
    assert result.valid["event_id"].tolist() == ["e-3"]


def test_values_outside_the_allowed_set_are_quarantined_and_case_is_normalised() -> None:
    result = check_events(
        jsonl(event(device="tv"), event(event_id="e-2", device="Web", event_type=" PURCHASE "), event(event_id="e-3"))
    )
    assert reasons_by_event(result) == {"e-1": "device: 'tv' is not one of web, ios, android"}
    valid = result.valid.set_index("event_id")
    assert valid.loc["e-2", "device"] == "web" and valid.loc["e-2", "event_type"] == "purchase"
    normalised = [(c.column, c.rows, c.detail) for c in result.corrections if c.kind == "normalised_value"]
    assert ("event_type", 1, "surrounding whitespace stripped") in normalised
    assert ("event_type", 1, "lower-cased to an allowed value") in normalised
    assert ("device", 1, "lower-cased to an allowed value") in normalised


def test_a_country_must_be_an_iso_code_and_the_reason_never_quotes_it() -> None:
    result = check_subscriptions(
        csv_object(
            [
                subscription(country="someone@example.com"),
                subscription(record_id="r-2", country=" de "),
                subscription(record_id="r-3", country="XX"),
                subscription(record_id="r-4", country=""),
            ]
        )
    )
    reasons = dict(zip(result.quarantined["record_id"], result.quarantined["_reason"], strict=True))
    assert reasons == {
        "r-1": "country is not an ISO 3166-1 alpha-2 country code",
        "r-3": "country is not an ISO 3166-1 alpha-2 country code",
    }
    valid = result.valid.set_index("record_id")
    assert valid.loc["r-2", "country"] == "DE" and pd.isna(valid.loc["r-4", "country"])
    normalised = [(c.column, c.rows, c.detail) for c in result.corrections if c.kind == "normalised_value"]
    assert ("country", 1, "upper-cased to an allowed value") in normalised
    assert len(schema.COUNTRY_CODES) > 240 and {"DE", "GB", "US", "IN"} <= set(schema.COUNTRY_CODES)


def test_negative_amounts_durations_and_charges_are_quarantined() -> None:
    events = check_events(jsonl(event(amount=-0.01), event(event_id="e-2", duration_s=-5), event(event_id="e-3")))
    assert reasons_by_event(events) == {"e-1": "amount: -0.01 is negative", "e-2": "duration_s: -5.0 is negative"}
    subs = check_subscriptions(csv_object([subscription(monthly_charges="-1"), subscription(record_id="r-2")]))
    assert subs.quarantined["_reason"].tolist() == ["monthly_charges: -1.0 is negative"]
    assert subs.valid["record_id"].tolist() == ["r-2"]


def test_record_times_must_fall_inside_the_hour_with_tolerance() -> None:
    times = {
        "early-ok": "2024-05-01T09:56:00Z",
        "late-ok": "2024-05-01T11:04:59Z",
        "too-early": "2024-05-01T07:00:00Z",
        "too-late": "2024-05-01T11:05:00Z",
    }
    result = check_events(jsonl(*(event(event_id=key, event_time=value) for key, value in times.items())))
    assert sorted(result.valid["event_id"]) == ["early-ok", "late-ok"]
    reasons = reasons_by_event(result)
    assert set(reasons) == {"too-early", "too-late"}
    assert all("is outside the object's hour" in reason for reason in reasons.values())


def test_record_times_in_the_future_are_quarantined() -> None:
    now = HOUR + timedelta(minutes=30)
    result = check_events(jsonl(event(event_time="2024-05-01T10:45:00Z"), event(event_id="e-2")), now=now)
    assert reasons_by_event(result) == {"e-1": "event_time is later than now (2024-05-01 10:30:00+00:00)"}


def test_cross_column_rules_of_subscriptions() -> None:
    result = check_subscriptions(
        csv_object(
            [
                subscription(signup_date="2024-06-01"),
                subscription(record_id="r-2", status="cancelled", cancel_date=""),
                subscription(record_id="r-3", status="Cancelled", cancel_date="2024-05-01T10:10:00Z"),
            ]
        )
    )
    reasons = dict(zip(result.quarantined["record_id"], result.quarantined["_reason"]))
    assert reasons == {
        "r-1": "signup_date is after updated_at",
        "r-2": "status is cancelled but cancel_date is empty",
    }
    assert result.valid["status"].tolist() == ["cancelled"]


def test_every_problem_of_a_row_is_reported() -> None:
    result = check_events(jsonl(event(amount="-2", device="tv", event_type=None, duration_s="x", event_time="bad")))
    reason = result.quarantined["_reason"].iloc[0]
    for part in (
        "uncoercible value in column duration_s (string 'x')",
        "uncoercible value in column event_time (string 'bad')",
        "null in required column event_type",
        "amount: -2.0 is negative",
        "device: 'tv' is not one of web, ios, android",
    ):
        assert part in reason
    assert "null in required column event_time" not in reason
    assert reason.count("; ") == 4


def test_duplicates_are_kept() -> None:
    result = check_events(jsonl(event(), event()))
    assert len(result.valid) == 2


# -- malformed lines and unreadable objects --------------------------------------------------------


def test_malformed_json_lines_are_quarantined_with_their_line() -> None:
    data = jsonl(event(), b'{"event_id": "e-2", "customer', b"[1, 2]", event(event_id="e-4"))
    parsed = parse.parse_object(EVENTS_NAME, data)
    assert parsed.rows_in == 4 and len(parsed.rows) == 2
    assert list(parsed.malformed.columns) == ["_line", "_raw", "_reason"]
    result = accounted(contract.check(parsed, schema.EVENTS, HOUR, NOW))
    assert result.valid["event_id"].tolist() == ["e-1", "e-4"]
    quarantined = result.quarantined
    assert quarantined["_line"].tolist() == [2, 3]
    assert quarantined["_raw"].tolist() == ['{"event_id": "e-2", "customer', "[1, 2]"]
    assert quarantined["_reason"].iloc[0].startswith("not valid JSON")
    assert quarantined["_reason"].iloc[1] == "line is a JSON array, not an object"


def test_blank_lines_are_skipped_and_line_numbers_stay_true() -> None:
    data = gzip.compress(json.dumps(event()).encode() + b"\n\n" + json.dumps(event(event_id="e-2", amount=-1)).encode())
    result = check_events(data)
    assert result.rows_in == 2 and result.quarantined["_line"].tolist() == [3]


def test_csv_rows_with_the_wrong_field_count_are_quarantined() -> None:
    good = csv_object([subscription(), subscription(record_id="r-2", name='Doe, "Jane"\nJr.')]).decode()
    header, first, *second = good.splitlines()
    text = "\n".join([header, first, "r-x,CUST-1,too,few", *second, first + ",extra"]) + "\n"
    parsed = parse.parse_object(SUBS_NAME, text.encode())
    assert parsed.rows_in == 4
    result = accounted(contract.check(parsed, schema.SUBSCRIPTIONS, HOUR, NOW))
    assert result.valid["record_id"].tolist() == ["r-1", "r-2"]
    assert result.valid["name"].iloc[1] == 'Doe, "Jane"\nJr.'
    assert result.quarantined["_line"].tolist() == [3, 6]
    assert result.quarantined["_raw"].iloc[0] == "r-x,CUST-1,too,few"
    assert result.quarantined["_reason"].tolist() == [
        "has 4 fields, the header has 15",
        "has 16 fields, the header has 15",
    ]


def test_csv_rows_with_broken_quoting_are_quarantined() -> None:
    header, first = csv_object([subscription()]).decode().splitlines()
    broken = first.replace("r-1,", 'r-2,"CUST"x', 1)
    result = check_subscriptions(f"{header}\n{broken}\n{first}\n".encode())
    assert result.valid["record_id"].tolist() == ["r-1"]
    assert result.quarantined["_line"].tolist() == [2]
    assert result.quarantined["_reason"].iloc[0].startswith("not valid CSV")


def test_a_header_only_csv_has_no_rows() -> None:
    result = check_subscriptions(",".join(schema.CONTRACT_COLUMNS["subscriptions"]).encode() + b"\n")
    assert result.rows_in == 0 and result.valid.empty and result.quarantined.empty


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        (EVENTS_NAME, jsonl(event())[:-12], "not a valid gzip stream"),
        (EVENTS_NAME, b"this is not gzip", "not a valid gzip stream"),
        (EVENTS_NAME, b"", "empty object"),
        (EVENTS_NAME, gzip.compress(b"", mtime=0), "empty object"),
        (EVENTS_NAME, gzip.compress(b"hello world\nthis is text", mtime=0), "not JSON Lines"),
        (EVENTS_NAME, gzip.compress(json.dumps(event()).encode() + b"\n\xff\xfe\n", mtime=0), "not valid UTF-8"),
        (SUBS_NAME, b"", "empty object"),
        (SUBS_NAME, b"\n \n", "empty object"),
        (SUBS_NAME, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xff", "not valid UTF-8"),
        (SUBS_NAME, b"record_id,record_id\n1,2\n", "not CSV: duplicate column names"),
    ],
)
def test_unreadable_objects_raise_with_a_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableObject) as raised:
        parse.parse_object(name, data)
    assert raised.value.reason.startswith(reason)


def test_check_needs_timezone_aware_times() -> None:
    parsed = parse.parse_object(EVENTS_NAME, jsonl(event()))
    with pytest.raises(ValueError, match="timezone-aware"):
        contract.check(parsed, schema.EVENTS, HOUR.replace(tzinfo=None), NOW)


# -- any input is accounted for -------------------------------------------------------------------

json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(["web", " Web", "purchase", "2024-05-01T10:30:00Z", "2024-05-01T13:00:00Z", "12.5", ""]),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.dictionaries(st.sampled_from(schema.CONTRACT_COLUMNS["events"] + ["extra"]), json_values),
        min_size=1,
        max_size=6,
    )
)
def test_any_json_rows_are_accounted_for(rows: list[dict[str, Any]]) -> None:
    filled = [event(**row) for row in rows]
    parsed = ParsedObject(rows=pd.DataFrame(filled, dtype=object), malformed=pd.DataFrame(), rows_in=len(filled))
    result = accounted(contract.check(parsed, schema.EVENTS, HOUR, NOW))
    assert list(result.valid.columns) == schema.CONTRACT_COLUMNS["events"]
    assert (result.quarantined["_reason"].str.len() > 0).all()


def _both_paths(data: bytes) -> tuple[ContractResult, ContractResult]:
    """The check on the pyarrow fast path and on the line-by-line path of the same object."""
    text = gzip.decompress(data)
    fast = parse._parse_jsonl_arrow(text, schema.EVENTS)  # pylint: disable=protected-access
    assert fast is not None, "a well-formed object must take the fast path"
    slow = parse._parse_jsonl(text)  # pylint: disable=protected-access
    return (contract.check(fast, schema.EVENTS, HOUR, NOW), contract.check(slow, schema.EVENTS, HOUR, NOW))


@pytest.mark.parametrize(
    "rows",
    [
        [event(event_id=f"e-{i}", duration_s=float(i), device=" Web ") for i in range(5)],
        [{k: v for k, v in event(event_id=f"e-{i}").items() if k not in ("session_id", "email")} for i in range(3)],
        [event(event_id="e-1", event_type="teleport"), event(event_id="e-2", duration_s=-1.0), event(event_id="e-3")],
        [{**event(event_id="e-1"), "extra": "x"}, {k: v for k, v in event(event_id="e-2").items() if k != "device"}],
    ],
    ids=["normalised", "absent-columns", "bad-values", "ragged"],
)
def test_fast_and_line_by_line_parsing_give_the_same_result(rows: list[dict[str, Any]]) -> None:
    fast, slow = _both_paths(jsonl(*rows))
    pd.testing.assert_frame_equal(fast.valid.reset_index(drop=True), slow.valid.reset_index(drop=True))
    assert list(fast.quarantined["_reason"]) == list(slow.quarantined["_reason"])
    assert (fast.unknown_columns, fast.missing_required) == (slow.unknown_columns, slow.missing_required)
    assert sorted(map(repr, fast.corrections)) == sorted(map(repr, slow.corrections))


def test_objects_the_fast_path_cannot_read_exactly_fall_back() -> None:
    blank_line = gzip.decompress(jsonl(event(event_id="e-1"), b"", event(event_id="e-2")))
    text_number = gzip.decompress(jsonl(event(event_id="e-1", duration_s="12.5")))
    for text in (blank_line, text_number):
        assert parse._parse_jsonl_arrow(text, schema.EVENTS) is None  # pylint: disable=protected-access
    assert check_events(jsonl(event(event_id="e-1"), b"", event(event_id="e-2"))).valid["event_id"].tolist() == [
        "e-1",
        "e-2",
    ]


# -- hostile input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (json.dumps(event(event_id="e-1")).encode().replace(b'"/home"', b'"/h\xffme"') + b"\n", 1),
        (
            json.dumps(event(event_id="e-1")).encode()
            + b"\n"
            + json.dumps(event(event_id="e-2")).encode().replace(b'"page"', b'"pa\xc3ge"')
            + b"\n",
            2,
        ),
        (
            json.dumps(event(event_id="e-1")).encode()
            + b"\n"
            + json.dumps(event(event_id="e-2")).encode()
            + b"\n\xed\xa0\x80\n",
            3,
        ),
    ],
    ids=["in-a-value", "in-a-key", "a-line-of-its-own"],
)
def test_both_parse_paths_find_invalid_utf8_unreadable(text: bytes, line: int) -> None:
    reasons = []
    with pytest.raises(UnreadableObject) as fast:
        parse._parse_jsonl_arrow(text, schema.EVENTS)  # pylint: disable=protected-access
    reasons.append(fast.value.reason)
    with pytest.raises(UnreadableObject) as slow:
        parse._parse_jsonl(text)  # pylint: disable=protected-access
    reasons.append(slow.value.reason)
    assert reasons == [f"not valid UTF-8 text (line {line})"] * 2
    with pytest.raises(UnreadableObject, match="not valid UTF-8"):
        parse.parse_object(EVENTS_NAME, gzip.compress(text))


def test_a_csv_without_a_header_row_is_unreadable_and_its_values_are_not_named() -> None:
    rows = [subscription(record_id=f"r-{i}", customer_id=f"CUST-000000{i}") for i in range(3)]
    data = csv_object(rows).split(b"\n", 1)[1]  # the header row is missing: the first row would be the header
    with pytest.raises(UnreadableObject) as raised:
        parse.parse_object(SUBS_NAME, data)
    assert raised.value.reason == "no header row: none of the 15 fields of the first row is a contract column"
    for value in ("CUST-0000000", "Jane Doe", "jane@example.com", "+1-555-123-4567"):
        assert value not in str(raised.value)


def test_duplicate_unknown_header_names_are_counted_not_shown() -> None:
    header = ["record_id", "record_id", "jane@example.com", "jane@example.com"]
    with pytest.raises(UnreadableObject) as raised:
        parse.parse_object(SUBS_NAME, (",".join(header) + "\n1,2,3,4\n").encode())
    assert raised.value.reason == "not CSV: duplicate column names in the header: record_id, 1 other name(s)"


@pytest.mark.parametrize("order", ["offset-first", "naive-first"])
def test_naive_timestamps_are_utc_value_by_value(order: str) -> None:
    times = {
        "e-offset": ("2024-05-01T12:15:00+02:00", "2024-05-01T10:15:00Z"),
        "e-naive": ("2024-05-01T10:20:00", "2024-05-01T10:20:00Z"),
        "e-space": ("2024-05-01 10:25:00.250", "2024-05-01T10:25:00.250Z"),
        "e-west": ("2024-05-01T05:30:00-05:00", "2024-05-01T10:30:00Z"),
        "e-zulu": ("2024-05-01T10:35:00Z", "2024-05-01T10:35:00Z"),
    }
    ids = list(times) if order == "offset-first" else list(reversed(times))
    result = check_events(jsonl(*[event(event_id=i, event_time=times[i][0]) for i in ids]))
    assert result.quarantined.empty
    parsed = dict(zip(result.valid["event_id"], result.valid["event_time"]))
    assert parsed == {i: pd.Timestamp(utc) for i, (_, utc) in times.items()}


def test_naive_and_offset_times_mix_in_a_csv_too() -> None:
    rows = [
        subscription(record_id="r-1", updated_at="2024-05-01T12:20:00+02:00"),
        subscription(record_id="r-2", updated_at="2024-05-01T10:40:00"),
        subscription(record_id="r-3", status="cancelled", updated_at="2024-05-01T10:50:00", cancel_date="2024-05-01"),
    ]
    result = check_subscriptions(csv_object(rows))
    assert result.quarantined.empty
    valid = result.valid.set_index("record_id")
    assert valid.loc["r-1", "updated_at"] == pd.Timestamp("2024-05-01T10:20:00Z")
    assert valid.loc["r-2", "updated_at"] == pd.Timestamp("2024-05-01T10:40:00Z")
    assert valid.loc["r-3", "cancel_date"] == pd.Timestamp("2024-05-01T00:00:00Z")


def test_content_encoding_gzip_is_undone_before_parsing() -> None:
    events = jsonl(event(event_id="e-1"), event(event_id="e-2"))
    parsed = parse.parse_object(EVENTS_NAME, gzip.compress(events), content_encoding="gzip")
    assert parsed.rows["event_id"].tolist() == ["e-1", "e-2"]
    subs = csv_object([subscription()])
    assert parse.parse_object(SUBS_NAME, gzip.compress(subs), "GZIP").rows["record_id"].tolist() == ["r-1"]
    assert parse.parse_object(SUBS_NAME, subs, "identity").rows_in == 1
    with pytest.raises(UnreadableObject, match="stored with Content-Encoding gzip but not a valid gzip stream"):
        parse.parse_object(SUBS_NAME, subs, "gzip")
    with pytest.raises(UnreadableObject, match="unsupported Content-Encoding 'br'"):
        parse.parse_object(SUBS_NAME, subs, "br")


def test_record_hours_read_times_as_the_check_does() -> None:
    """The id index files ids under the hour of the checked record time and looks raw rows up with
    record_hours: both must give the same hour for every valid row, whatever its offset or form."""
    times = [
        "2024-05-01T12:15:00+02:00",
        "2024-05-01T10:20:00",
        "2024-05-01 10:59:59.999",
        "2024-05-01T05:30:00-05:00",
        "2024-05-01T11:02:00Z",
        " 2024-05-01T09:58:00Z ",
        "2024-05-01T11:04:59+00:00",
    ]
    parsed = parse.parse_object(
        EVENTS_NAME, jsonl(*[event(event_id=f"e-{i}", event_time=t) for i, t in enumerate(times)])
    )
    hours = dict(zip(parsed.rows["event_id"], contract.record_hours(parsed.rows, schema.EVENTS)))
    result = check_events(jsonl(*[event(event_id=f"e-{i}", event_time=t) for i, t in enumerate(times)]))
    assert result.quarantined.empty
    assert hours == dict(zip(result.valid["event_id"], result.valid["event_time"].dt.floor("h")))
    assert sorted(set(hours.values())) == [pd.Timestamp(f"2024-05-01T{h}:00Z") for h in ("09", "10", "11")]


def test_record_hours_are_missing_where_there_is_no_time() -> None:
    parsed = parse.parse_object(
        EVENTS_NAME,
        jsonl(
            event(event_id="a", event_time="yesterday"),
            event(event_id="b", event_time=None),
            event(event_id="c", event_time=12),
            event(event_id="d", event_time="2024-05-01T10:61:00Z"),
            event(event_id="e", event_time="2024-02-30T10:00:00Z"),
        ),
    )
    assert contract.record_hours(parsed.rows, schema.EVENTS).isna().all()
    rows = parse.parse_object(SUBS_NAME, csv_object([subscription()])).rows
    assert contract.record_hours(rows.drop(columns="updated_at"), schema.SUBSCRIPTIONS).isna().all()
    assert contract.record_hours(rows, schema.SUBSCRIPTIONS).tolist() == [pd.Timestamp("2024-05-01T10:00Z")]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(-64, 64), st.sampled_from(["Z", "+00:00", "", "+05:30", "-08:00"]), st.integers(0, 999)),
        min_size=1,
        max_size=20,
    )
)
def test_record_hours_match_the_checked_time_of_every_valid_row(offsets: list[tuple[int, str, int]]) -> None:
    records = []
    for i, (minutes, zone, millis) in enumerate(offsets):
        utc = HOUR + timedelta(minutes=minutes, milliseconds=millis)
        shift = {"Z": 0, "+00:00": 0, "": 0, "+05:30": 330, "-08:00": -480}[zone]
        local = (utc + timedelta(minutes=shift)).replace(tzinfo=None).isoformat(timespec="milliseconds")
        records.append(event(event_id=f"e-{i}", event_time=f"{local}{zone}"))
    parsed = parse.parse_object(EVENTS_NAME, jsonl(*records))
    hours = dict(zip(parsed.rows["event_id"], contract.record_hours(parsed.rows, schema.EVENTS)))
    result = check_events(jsonl(*records))
    assert {i: hours[i] for i in result.valid["event_id"]} == dict(
        zip(result.valid["event_id"], result.valid["event_time"].dt.floor("h"))
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offsets=st.lists(st.integers(min_value=-299_999_999_999, max_value=3_899_999_999_999), min_size=1, max_size=20),
    digits=st.lists(st.integers(min_value=0, max_value=9), min_size=20, max_size=20),
    suffixes=st.lists(st.sampled_from(["Z", "+00:00"]), min_size=20, max_size=20),
    impossible=st.booleans(),
)
def test_utc_times_read_by_pyarrow_equal_pandas_reading(
    offsets: list[int], digits: list[int], suffixes: list[str], impossible: bool
) -> None:
    """The common UTC form is parsed by pyarrow when every value of a column has it; the result is
    what pandas' ISO 8601 parser gives, to the nanosecond, and one impossible date sends the column
    back to pandas, which quarantines that row only."""
    start = pd.Timestamp(HOUR)
    texts = []
    for i, offset in enumerate(offsets):
        moment = start + pd.Timedelta(offset, unit="ns")
        fraction = f"{moment.nanosecond + moment.microsecond * 1000:09d}"[: digits[i]]
        texts.append(moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits[i] else "") + suffixes[i])
    rows = [event(event_id=f"e-{i}", event_time=text) for i, text in enumerate(texts)]
    if impossible:
        rows.append(event(event_id="bad", event_time="2024-02-30T10:00:00Z"))
    result = check_events(jsonl(*rows))
    expected = pd.to_datetime(pd.Series(texts), format="ISO8601", utc=True)
    assert result.valid["event_id"].tolist() == [f"e-{i}" for i in range(len(texts))]
    assert result.valid["event_time"].tolist() == expected.tolist()
    assert result.quarantined["event_id"].tolist() == (["bad"] if impossible else [])


_EDGE_TEXT = st.text(
    alphabet=st.sampled_from(["a", "Z", "é", "中", " ", "\t", "\n", "\x1c", "\x85", "\u00a0", "\u2003", "\u3000", "-"]),
    max_size=6,
)


@given(st.lists(st.one_of(st.none(), _EDGE_TEXT), max_size=12), st.booleans(), st.booleans())
def test_strings_are_normalised_as_when_every_value_is_trimmed(
    values: list[str | None], large: bool, sliced: bool
) -> None:
    """A column is trimmed only when one of its values starts or ends with a byte pyarrow's trim may strip;
    the values and corrections are those of trimming every column (ASCII and Unicode whitespace, nulls,
    large or sliced Arrow text)."""
    arrow_type = pa.large_string() if large else pa.string()
    array = pa.array(["  x  ", *values] if sliced else values, type=arrow_type)
    if sliced:
        array = array.slice(1)
    column = pd.Series(pd.arrays.ArrowStringArray(array))
    fast, fast_corrections = contract._normalise_strings(column, "device", None)  # pylint: disable=protected-access
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(contract, "_may_need_trimming", lambda raw: True)
        full, full_corrections = contract._normalise_strings(column, "device", None)  # pylint: disable=protected-access
    assert fast.tolist() == full.tolist() and fast_corrections == full_corrections


def test_a_chunk_with_nothing_to_quarantine_gives_the_quarantine_frame_of_one_that_has() -> None:
    """The empty quarantine of a clean chunk has the columns, order and dtypes of a quarantine with rows."""
    clean = check_events(jsonl(event(), event(event_id="e-2", extra="x")))
    dirty = check_events(jsonl(event(), event(event_id="e-2", extra="x", device=7)))
    assert clean.quarantined.empty and len(dirty.quarantined) == 1
    pd.testing.assert_frame_equal(clean.quarantined, dirty.quarantined.iloc[:0], check_index_type=False)
    clean.quarantined["_reason"] = "changed"  # a copy: the next chunk's empty quarantine is untouched
    assert check_events(jsonl(event())).quarantined.columns.equals(clean.quarantined.columns.drop("extra"))


@pytest.mark.parametrize("kind", sorted(schema.CONTRACT_COLUMNS))
def test_a_chunk_without_rows_checks_to_no_row_in_the_contracts_columns(kind: str) -> None:
    """A chunk with the contract's columns and no row (what :func:`contract.prepare` checks to set the check up
    before an ingest's first object arrives) gives no valid and no quarantined row, nothing missing or corrected,
    and a valid frame of the contract's columns."""
    now = datetime(2026, 3, 1, 12, 30, tzinfo=timezone.utc)
    result = contract.check(parse.no_rows(schema.CONTRACT_COLUMNS[kind]), kind, now, now)
    assert result.valid.empty and result.quarantined.empty
    assert not result.missing_required and not result.corrections and not result.unknown_columns
    assert list(result.valid.columns) == list(schema.CONTRACT_COLUMNS[kind])
    contract.prepare(kind)
