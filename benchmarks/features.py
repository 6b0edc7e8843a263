"""Feature-build throughput next to a plain pandas groupby over the same events.

Builds synthetic published-format tables with numpy (default: 100,000 customers, 10,000,000 events
over 48 hours; string columns as pandas categoricals, as training reads them from the lake), then
times

* ``build_features`` at one cutoff (every feature of the spec: windows 1h/6h/24h), and
* ``events.groupby(["customer_token", "event_type"]).size()`` (count per customer and event type),

and prints both throughputs, their ratio and the peak resident memory.

Run: ``.venv/bin/python benchmarks/features.py [--customers N] [--events N] [--repeat R]``
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import pandas as pd

from churnops.data.schema import CONTRACTS, PAYMENT_METHODS, PLANS
from churnops.training.features import EVENT_TYPES, build_features

START = pd.Timestamp("2026-11-01", tz="UTC")
HOURS = 48


def synthetic_tables(customers: int, events: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Published-format events and subscriptions (one record per customer), built with numpy."""
    rng = np.random.default_rng(seed)
    tokens = pd.Index([f"tok_{i:08x}" for i in range(customers)])
    customer = rng.integers(0, customers, events)
    sessions_per_customer = 10
    session_code = customer * sessions_per_customer + rng.integers(0, sessions_per_customer, events)
    kind = rng.choice(len(EVENT_TYPES), events, p=[0.35, 0.1, 0.08, 0.15, 0.1, 0.05, 0.02, 0.12, 0.03])
    offset_ns = rng.integers(0, HOURS * 3_600_000_000_000, events)
    purchase = kind == EVENT_TYPES.index("purchase")
    event_frame = pd.DataFrame(
        {
            "event_id": pd.RangeIndex(events),
            "customer_token": pd.Categorical.from_codes(customer, categories=tokens),
            "event_time": pd.DatetimeIndex(START.value + offset_ns, tz="UTC"),
            "event_type": pd.Categorical.from_codes(kind, categories=list(EVENT_TYPES)),
            "session_id": pd.Categorical.from_codes(session_code, categories=pd.RangeIndex(customers * 10).astype(str)),
            "duration_s": np.where(rng.random(events) < 0.7, rng.exponential(30.0, events), np.nan),
            "amount": np.where(purchase, rng.uniform(5, 100, events), np.nan),
        }
    )
    subscriptions = pd.DataFrame(
        {
            "record_id": [f"r{i}" for i in range(customers)],
            "customer_token": tokens,
            "plan": rng.choice(list(PLANS), customers),
            "contract": rng.choice(list(CONTRACTS), customers),
            "payment_method": rng.choice(list(PAYMENT_METHODS), customers),
            "monthly_charges": rng.uniform(10, 100, customers),
            "total_charges": rng.uniform(10, 5000, customers),
            "signup_date": START - pd.to_timedelta(rng.integers(1, 1000, customers), unit="D"),
            "status": "active",
            "cancel_date": pd.NaT,
            "updated_at": START,
            "country": rng.choice(["DE", "FR", "US", "GB"], customers),
        }
    )
    subscriptions["cancel_date"] = pd.to_datetime(subscriptions["cancel_date"], utc=True)
    return event_frame, subscriptions


def best_of(repeat: int, func) -> float:  # type: ignore[no-untyped-def]
    """Smallest wall-clock time of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    """Parse arguments, build the tables, time both and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average at start: {_load()} (1, 5, 15 min; {os.cpu_count()} cores)")

    started = time.perf_counter()
    events, subscriptions = synthetic_tables(args.customers, args.events)
    print(f"built {len(events):,} events for {args.customers:,} customers in {time.perf_counter() - started:.1f}s")
    cutoff = START + pd.Timedelta(hours=HOURS)

    features_s = best_of(args.repeat, lambda: build_features(events, subscriptions, cutoff))
    groupby_s = best_of(args.repeat, lambda: events.groupby(["customer_token", "event_type"], observed=True).size())
    features = build_features(events, subscriptions, cutoff)

    rows = [
        ("build_features (all features, 1 cutoff)", features_s),
        ("pandas groupby size (customer x type)", groupby_s),
    ]
    print(f"{'operation':44} {'seconds':>8} {'M events/s':>11}")
    for name, seconds in rows:
        print(f"{name:44} {seconds:8.3f} {len(events) / seconds / 1e6:11.2f}")
    print(f"feature matrix: {features.shape[0]:,} rows x {features.shape[1] - 2} features")
    print(
        f"ratio build_features / groupby: {features_s / groupby_s:.2f}x the time   target <= 2.0 (against a groupby "
        "of hourly pre-aggregates; the features are built from raw events, so this groupby is of the raw events)"
    )
    print(
        f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB   "
        f"target < 8 GiB for a 100M-event history (this run: {len(events):,} events)"
    )
    print(f"load average at end: {_load()}")


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
