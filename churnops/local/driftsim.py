"""Simulated shifts for measuring the drift check: a list-price rise and an engagement drop.

The generator simulates ``hours`` hours of ``customers`` customers. A model trained at hour
``shift_hour`` saw only the data before it, so the *reference* is the drift check's reference split
(:data:`churnops.training.monitoring.REFERENCE_SPLIT`) of the training splits built from that data;
the *current* sample is the online snapshot at the end of all the data, built as
:func:`churnops.training.online.build_snapshot` builds it. Scenarios, each from ``shift_hour`` on:

- ``none``: the data as generated;
- ``price``: every customer still subscribed gets a billing record with ``monthly_charges`` and
  ``total_charges`` raised by ``price_rise`` (a list price change);
- ``engagement``: every customer is ``1 - engagement_drop`` times as active (the generator's ``Drift``).

The benchmark (``benchmarks/drift_sensitivity.py``) and the tests judge these samples with the drift
check's own comparison and rule (:func:`churnops.training.monitoring.compare`, :class:`DriftRule`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from churnops.local import datagen, rawformat
from churnops.model.spec import FeatureSpec
from churnops.training.config import TrainingConfig
from churnops.training.features import feature_spec
from churnops.training.monitoring import REFERENCE_SPLIT
from churnops.training.online import build_snapshot
from churnops.training.train import build_splits

SCENARIOS: tuple[str, ...] = ("none", "price", "engagement")
START = datetime(2026, 11, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Shift:
    """The simulation: how much data, when the shift starts and how large each shift is."""

    hours: int = 60
    customers: int = 1500
    shift_hour: int = 48
    price_rise: float = 0.15
    engagement_drop: float = 0.30

    def __post_init__(self) -> None:
        if not 0 < self.shift_hour < self.hours:
            raise ValueError(f"the shift must start inside the data, got hour {self.shift_hour} of {self.hours}")

    @property
    def moment(self) -> pd.Timestamp:
        """When the shift starts (and the model's data ends)."""
        return pd.Timestamp(START) + pd.Timedelta(hours=self.shift_hour)


def raise_prices(subscriptions: pd.DataFrame, moment: pd.Timestamp, rise: float) -> pd.DataFrame:
    """A billing record at ``moment`` for every customer still subscribed, with its charges raised by ``rise``."""
    updated = pd.to_datetime(subscriptions["updated_at"], utc=True)
    known = subscriptions[updated < moment].assign(_t=updated[updated < moment]).sort_values("_t", kind="stable")
    latest = known.drop_duplicates("customer_token", keep="last").drop(columns="_t")
    latest = latest[latest["status"] == "active"].copy()
    latest["monthly_charges"] = (latest["monthly_charges"] * (1 + rise)).round(2)
    latest["total_charges"] = (latest["total_charges"] * (1 + rise)).round(2)
    latest["updated_at"] = moment
    latest["record_id"] = [f"PRICE-{i:07d}" for i in range(len(latest))]
    return pd.concat([subscriptions, latest], ignore_index=True)


def simulate(shift: Shift, scenario: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Published-format events and subscriptions of the whole simulation, with ``scenario`` applied."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; one of {SCENARIOS}")
    drift = datagen.Drift(shift.shift_hour, share=1.0, activity_factor=1 - shift.engagement_drop)
    data = datagen.generate(
        shift.hours, shift.customers, start=START, seed=seed, drift=drift if scenario == "engagement" else None
    )
    events, subscriptions = rawformat.published_frames(data.objects)  # the customer id stands in for the token
    if scenario == "price":
        subscriptions = raise_prices(subscriptions, shift.moment, shift.price_rise)
    return events, subscriptions


def known_before(
    events: pd.DataFrame, subscriptions: pd.DataFrame, moment: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The events and records published before ``moment``: what a model trained then saw."""
    seen = pd.to_datetime(events["event_time"], utc=True) < moment
    recorded = pd.to_datetime(subscriptions["updated_at"], utc=True) < moment
    return events[seen], subscriptions[recorded]


def drift_sample(
    shift: Shift, scenario: str, seed: int, config: TrainingConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, FeatureSpec]:
    """The reference (the reference split of training at ``shift_hour``) and the current sample (the online
    snapshot at the end of the data) of one scenario and seed, and their feature spec."""
    config = config or TrainingConfig()
    spec = feature_spec(config.windows_h)
    events, subscriptions = simulate(shift, scenario, seed)
    reference = build_splits(*known_before(events, subscriptions, shift.moment), config)[REFERENCE_SPLIT]
    current, _, _ = build_snapshot(events, subscriptions, spec)
    return reference, current, spec
