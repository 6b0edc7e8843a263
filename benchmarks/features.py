"""Feature-build time next to a plain pandas groupby of the same data: from raw events, and from hourly pre-aggregates.

1. Raw events: synthetic published-format tables built with numpy (default: 100,000 customers, 10,000,000 events
   over 48 hours; string columns as pandas categoricals, as training reads them from the lake); times
   ``build_features`` at one cutoff (every feature of the spec: windows 1h/6h/24h) against
   ``events.groupby(["customer_token", "event_type"]).size()``.
2. Hourly pre-aggregates of a long history (default: 100,000 customers, 30 days, 100,000,000 events; each hour a
   tenth of the customers active, in one or two sessions), in a child process of its own: the events are generated
   and aggregated a day at a time (:func:`churnops.data.aggregates.hourly_aggregates`, as each ingest commit
   does), then ``build_features`` from the aggregates (``HourlyActivity``) at the cutoff after the last hour is timed
   against a pandas groupby of the same aggregates (sum of every count per customer), and the child's peak resident
   memory is printed: the memory of features over that history.

Each side is timed as the best of several calls, the two sides' calls interleaved (A B A B ...) so a change of the
shared machine's load during the run falls on both.

Run: ``.venv/bin/python benchmarks/features.py [--customers N] [--events N] [--history-events N] [--days D]
[--repeat N] [--history-repeat N] [--skip-raw]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
from common import load_average, peak_memory

from churnops.data.aggregates import TYPE_COLUMNS, hourly_aggregates
from churnops.data.schema import CONTRACTS, PAYMENT_METHODS, PLANS
from churnops.training.features import EVENT_TYPES, HourlyActivity, build_features

START = pd.Timestamp("2026-11-01", tz="UTC")
HOURS = 48
HOUR_NS = 3_600_000_000_000
KIND_SHARES = [0.35, 0.1, 0.08, 0.15, 0.1, 0.05, 0.02, 0.12, 0.03]
ACTIVE_SHARE = 0.1  # of the customers, active in any one hour of the long history


def synthetic_tables(customers: int, events: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Published-format events and subscriptions (one record per customer), built with numpy."""
    rng = np.random.default_rng(seed)
    tokens = pd.Index([f"tok_{i:08x}" for i in range(customers)])
    customer = rng.integers(0, customers, events)
    sessions_per_customer = 10
    session_code = customer * sessions_per_customer + rng.integers(0, sessions_per_customer, events)
    kind = rng.choice(len(EVENT_TYPES), events, p=KIND_SHARES)
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
    return event_frame, subscriptions_table(tokens, rng)


def subscriptions_table(tokens: pd.Index, rng: np.random.Generator) -> pd.DataFrame:
    """One active subscription record per customer, known from START."""
    customers = len(tokens)
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
    return subscriptions


def day_of_events(rng: np.random.Generator, tokens: pa.Array, day: int, events: int) -> pa.Table:
    """One day (24 hours from START + ``day`` days) of published-format events as arrow: each hour ACTIVE_SHARE
    of the customers, each in one or two sessions of that hour."""
    customers = len(tokens)
    active = int(customers * ACTIVE_SHARE)
    per_active = events / (24 * active)
    who, hours = [], []
    for hour_of_day in range(24):
        chosen = rng.choice(customers, active, replace=False)
        counts = rng.poisson(max(per_active - 1, 0), active) + 1
        who.append(np.repeat(chosen, counts))
        hours.append(np.full(int(counts.sum()), day * 24 + hour_of_day, dtype=np.int64))
    customer, hour = np.concatenate(who), np.concatenate(hours)
    n = customer.size
    kind = rng.choice(len(EVENT_TYPES), n, p=KIND_SHARES)
    session_key = (hour * customers + customer) * 2 + (rng.random(n) < 0.3)
    unique_keys, session_code = np.unique(session_key, return_inverse=True)
    session_names = pa.array([f"s{key:x}" for key in unique_keys.tolist()])
    purchase = kind == EVENT_TYPES.index("purchase")
    return pa.table(
        {
            "customer_token": pa.DictionaryArray.from_arrays(pa.array(customer.astype(np.int32)), tokens),
            "event_time": pa.array(
                START.value + hour * HOUR_NS + rng.integers(0, HOUR_NS, n), pa.timestamp("ns", "UTC")
            ),
            "event_type": pa.DictionaryArray.from_arrays(pa.array(kind.astype(np.int8)), pa.array(EVENT_TYPES)),
            "session_id": pa.DictionaryArray.from_arrays(pa.array(session_code.astype(np.int32)), session_names),
            "duration_s": np.where(rng.random(n) < 0.7, rng.exponential(30.0, n), np.nan),
            "amount": np.where(purchase, rng.uniform(5, 100, n), np.nan),
        }
    )


def best_of(repeat: int, *funcs: Callable[[], object]) -> list[float]:
    """Per function, the smallest wall-clock time of ``repeat`` calls, the calls interleaved (A B A B ...) so a
    change of the machine's load in the meantime falls on every function alike."""
    times: list[list[float]] = [[] for _ in funcs]
    for _ in range(repeat):
        for func, taken in zip(funcs, times):
            started = time.perf_counter()
            func()
            taken.append(time.perf_counter() - started)
    return [min(taken) for taken in times]


def main() -> None:
    """Parse arguments, build the tables, time both and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed calls of each side (raw events)")
    parser.add_argument(
        "--history-repeat", type=int, default=7, help="timed calls of each side (pre-aggregates; each call is short)"
    )
    parser.add_argument("--history-customers", type=int, default=100_000)
    parser.add_argument("--history-events", type=int, default=100_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--skip-raw", action="store_true", help="only the pre-aggregates part")
    args = parser.parse_args()
    print(f"load average at start: {load_average()} (1, 5, 15 min; {os.cpu_count()} cores)")
    if not args.skip_raw:
        raw_events(args)
    # a process of its own, so its peak memory is the history's alone
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        lines = pool.apply(history, (args.history_customers, args.history_events, args.days, args.history_repeat))
    print("\n".join(lines))
    print(f"load average at end: {load_average()}")


def raw_events(args: argparse.Namespace) -> None:
    """Part 1: features from raw events against a groupby of the same events."""
    started = time.perf_counter()
    events, subscriptions = synthetic_tables(args.customers, args.events)
    print(f"built {len(events):,} events for {args.customers:,} customers in {time.perf_counter() - started:.1f}s")
    cutoff = START + pd.Timedelta(hours=HOURS)

    features_s, groupby_s = best_of(
        args.repeat,
        lambda: build_features(events, subscriptions, cutoff),
        lambda: events.groupby(["customer_token", "event_type"], observed=True).size(),
    )
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
        f"ratio build_features / groupby (raw events): {features_s / groupby_s:.2f}x the time (no target: the raw path)"
    )
    print(f"peak resident memory: {peak_memory() / 2**30:.2f} GiB")


def history(customers: int, events: int, days: int, repeat: int) -> list[str]:
    """Part 2 (in a child process): features from the hourly pre-aggregates of a long history; the printed lines."""
    rng = np.random.default_rng(1)
    tokens = pd.Index([f"tok_{i:08x}" for i in range(customers)])
    started = time.perf_counter()
    parts = [hourly_aggregates(day_of_events(rng, pa.array(tokens), day, events // days)) for day in range(days)]
    table = pa.concat_tables(parts)
    del parts
    activity = HourlyActivity(table)
    subscriptions = subscriptions_table(tokens, rng)
    built_s = time.perf_counter() - started
    frame = table.select(["customer_token", "events", *TYPE_COLUMNS]).to_pandas(strings_to_categorical=True)
    cutoff = START + pd.Timedelta(days=days)
    features_s, groupby_s = best_of(
        repeat,
        lambda: build_features(activity, subscriptions, cutoff),
        lambda: frame.groupby("customer_token", observed=True).sum(),
    )
    features = build_features(activity, subscriptions, cutoff)
    peak = peak_memory() / 2**30
    return [
        f"history: {activity.events:,} events of {customers:,} customers over {days} days, aggregated a day at a "
        f"time into {table.num_rows:,} hourly rows ({table.nbytes / 2**30:.2f} GiB in memory) in {built_s:.1f}s",
        f"{'operation':44} {'seconds':>8} {'M rows/s':>11}",
        f"{'build_features from pre-aggregates':44} {features_s:8.3f} {table.num_rows / features_s / 1e6:11.2f}",
        f"{'pandas groupby sum of the pre-aggregates':44} {groupby_s:8.3f} {table.num_rows / groupby_s / 1e6:11.2f}",
        f"feature matrix: {features.shape[0]:,} rows x {features.shape[1] - 2} features",
        f"ratio build_features / groupby (pre-aggregates): {features_s / groupby_s:.2f}x the time   target <= 2.0",
        f"peak resident memory of the history's process: {peak:.2f} GiB   target < 8 GiB for a 100M-event history "
        f"(this run: {activity.events:,} events)",
    ]


if __name__ == "__main__":
    main()
