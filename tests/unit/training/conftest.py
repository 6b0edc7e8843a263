"""Published-format frames built by hand, as the ingest stage writes them to the lake."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

T0 = pd.Timestamp("2026-11-01 00:00", tz="UTC")


def at(hours: float) -> pd.Timestamp:
    """``hours`` after T0."""
    return T0 + pd.Timedelta(hours=hours)


def event(
    token: str,
    hours: float,
    kind: str = "page_view",
    session: str | None = "s1",
    duration: float | None = None,
    amount: float | None = None,
) -> dict[str, Any]:
    """One event row (published columns the features read)."""
    return {
        "customer_token": token,
        "event_time": at(hours),
        "event_type": kind,
        "session_id": session,
        "duration_s": duration,
        "amount": amount,
    }


def events_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """An events table in published format (every column, lake dtypes)."""
    frame = pd.DataFrame(
        rows, columns=["customer_token", "event_time", "event_type", "session_id", "duration_s", "amount"]
    )
    frame.insert(0, "event_id", [f"e{i}" for i in range(len(frame))])
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    frame["duration_s"] = frame["duration_s"].astype("float64")
    frame["amount"] = frame["amount"].astype("float64")
    frame["device"] = "web"
    frame["page"] = None
    frame["_source_object"] = "activity/events/x.jsonl.gz"
    frame["_source_generation"] = np.int64(1)
    return frame


RECORD_DEFAULTS: dict[str, Any] = {
    "plan": "basic",
    "contract": "monthly",
    "payment_method": "card",
    "monthly_charges": 20.0,
    "total_charges": 100.0,
    "signup_date": "2026-10-31",
    "status": "active",
    "country": "DE",
}


def record(token: str, hours: float = 0, cancel_hours: float | None = None, **columns: Any) -> dict[str, Any]:
    """One subscription record, known from ``hours`` after T0 (its ``updated_at``); ``columns`` override defaults."""
    row = {"customer_token": token, **RECORD_DEFAULTS, **columns}
    row["signup_date"] = pd.Timestamp(row["signup_date"]).date()
    row["cancel_date"] = at(cancel_hours) if cancel_hours is not None else pd.NaT
    row["updated_at"] = at(hours)
    return row


def subscriptions_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A subscriptions table in published format."""
    frame = pd.DataFrame(rows)
    frame.insert(0, "record_id", [f"r{i:06d}" for i in range(len(frame))])  # ids sort in row order (ties in time)
    frame["cancel_date"] = pd.to_datetime(frame["cancel_date"], utc=True)
    frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True)
    frame["_source_object"] = "activity/subscriptions/x.csv"
    frame["_source_generation"] = np.int64(1)
    return frame


def synthetic_lake(customers: int = 120, hours: int = 30, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A small random lake where churners go quiet before cancelling and monthly contracts churn more."""
    rng = np.random.default_rng(seed)
    contracts = rng.choice(["monthly", "annual", "two_year"], customers, p=[0.5, 0.3, 0.2])
    risk = np.where(contracts == "monthly", 0.5, 0.1)
    churn_at = np.where(rng.random(customers) < risk, rng.uniform(8, hours, customers), np.inf)
    subs, events = [], []
    for i in range(customers):
        token = f"tok_{i:04d}"
        subs.append(
            record(
                token,
                0,
                contract=str(contracts[i]),
                plan=str(rng.choice(["basic", "premium"])),
                payment_method=None if i % 9 == 0 else "card",
                country=str(rng.choice(["DE", "FR", "US"])),
            )
        )
        if np.isfinite(churn_at[i]):
            subs.append(
                record(token, churn_at[i], contract=str(contracts[i]), status="cancelled", cancel_hours=churn_at[i])
            )
        end = min(hours, churn_at[i])
        times = np.sort(rng.uniform(0, end, rng.poisson(3 * end)))
        times = times[rng.random(times.size) > np.clip((times - (end - 6)) / 6, 0, 1) * np.isfinite(churn_at[i])]
        for t in times:
            kind = str(rng.choice(["page_view", "login", "search", "purchase", "support_contact", "error"]))
            events.append(
                event(
                    token,
                    float(t),
                    kind,
                    session=f"s{i}-{int(t)}",
                    duration=float(rng.uniform(1, 60)),
                    amount=9.99 if kind == "purchase" else None,
                )
            )
    return events_frame(events), subscriptions_frame(subs)


@pytest.fixture(scope="session")
def lake() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, subscriptions) of :func:`synthetic_lake` with default arguments."""
    return synthetic_lake()
