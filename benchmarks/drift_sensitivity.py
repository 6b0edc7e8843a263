"""How sensitive is the drift check? Simulated price rises and engagement drops against unshifted data.

For each seed, the generator simulates ``--hours`` hours of ``--customers`` customers. The reference is
the training split's feature matrix (training's own cutoffs and split); the current sample is the
features at the latest cutoff, as the online snapshot builds them. Scenarios, each from hour
``--shift-hour`` on:

- ``none``: the data as generated;
- ``price``: every customer still subscribed gets a billing record with ``monthly_charges`` and
  ``total_charges`` raised by ``--price-rise`` (a list price change);
- ``engagement``: every customer is ``1 - --engagement-drop`` times as active (the generator's ``Drift``).

The check is the one ``churnops drift check`` runs (:func:`churnops.training.monitoring.compare`, PSI per
feature, ``drift_psi_threshold`` and ``drift_share`` from the settings' defaults); the script prints,
per scenario, how often it fired and the median share of drifted features. The predicted probability
is left out (it needs a registered model).

    .venv/bin/python benchmarks/drift_sensitivity.py --seeds 3
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from churnops.local import datagen, rawformat
from churnops.platform.settings import Settings
from churnops.training.features import build_features, feature_spec
from churnops.training.monitoring import compare
from churnops.training.online import latest_cutoff
from churnops.training.train import TrainingConfig, build_splits

START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def frames(data: datagen.GeneratedData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The generated objects as published-format frames (the customer id stands in for the token)."""
    return rawformat.published_frames(data.objects)


def raise_prices(subs: pd.DataFrame, at_hour: int, rise: float) -> pd.DataFrame:
    """A billing record at ``at_hour`` for every customer still subscribed, with its charges raised by ``rise``."""
    moment = pd.Timestamp(START) + pd.Timedelta(hours=at_hour)
    known = subs[subs["updated_at"] < moment].sort_values("updated_at", kind="stable")
    latest = known.drop_duplicates("customer_token", keep="last")
    latest = latest[latest["status"] == "active"].copy()
    latest["monthly_charges"] = (latest["monthly_charges"] * (1 + rise)).round(2)
    latest["total_charges"] = (latest["total_charges"] * (1 + rise)).round(2)
    latest["updated_at"] = moment
    latest["record_id"] = [f"PRICE-{i:07d}" for i in range(len(latest))]
    return pd.concat([subs, latest], ignore_index=True)


def drifted(args: argparse.Namespace, seed: int, scenario: str, settings: Settings) -> tuple[bool, float]:
    """Whether the check fires on this seed and scenario, and the share of drifted features."""
    drift = datagen.Drift(args.shift_hour, share=1.0, activity_factor=1 - args.engagement_drop)
    data = datagen.generate(
        args.hours, args.customers, start=START, seed=seed, drift=drift if scenario == "engagement" else None
    )
    events, subs = frames(data)
    if scenario == "price":
        subs = raise_prices(subs, args.shift_hour, args.price_rise)
    config = TrainingConfig()
    spec = feature_spec(config.windows_h)
    reference = build_splits(events, subs, config)["train"]
    current = build_features(events, subs, latest_cutoff(events, subs), spec.windows_h)
    distributions = compare(reference, current, spec, settings.drift_bins)
    share = float(np.mean([d.psi >= settings.drift_psi_threshold for d in distributions]))
    return share >= settings.drift_share, share


def main() -> None:
    """Run every scenario on every seed and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shift-hour", type=int, default=36)
    parser.add_argument("--price-rise", type=float, default=0.15)
    parser.add_argument("--engagement-drop", type=float, default=0.30)
    args = parser.parse_args()
    settings = Settings()
    print(f"load average {os.getloadavg()[0]:.1f}; {args.hours} h, {args.customers} customers, {args.seeds} seeds")
    print("| scenario | fired | median share of drifted features |")
    print("|---|---|---|")
    for scenario in ("none", "price", "engagement"):
        results = [drifted(args, seed, scenario, settings) for seed in range(args.seeds)]
        fired = sum(fire for fire, _ in results)
        print(f"| {scenario} | {fired}/{len(results)} | {np.median([share for _, share in results]):.2f} |")


if __name__ == "__main__":
    main()
