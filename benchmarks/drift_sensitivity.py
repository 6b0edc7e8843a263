"""How sensitive is the drift check? Simulated price rises and engagement drops against unshifted data.

For each seed, the generator simulates ``--hours`` hours of ``--customers`` customers; a model trained at
``--shift-hour`` saw the data before it, and the check compares the online snapshot at the end of the
data with that training's reference split (:mod:`churnops.local.driftsim`). Scenarios, each from
``--shift-hour`` on: ``none`` (the data as generated), ``price`` (a billing record with the charges
raised by ``--price-rise`` for every subscribed customer) and ``engagement`` (every customer
``1 - --engagement-drop`` times as active).

The check is the one ``churnops drift check`` runs (:func:`churnops.training.monitoring.compare`, then
:class:`churnops.training.monitoring.DriftRule` with the settings' ``drift_psi_threshold`` and
``drift_false_alarm_rate``); the predicted probability is left out (it needs a registered model and
does not decide the verdict). The script prints, per scenario, how often the check fired, the median
number of drifted features, the median largest PSI and the features that were drifted on any seed.

    .venv/bin/python benchmarks/drift_sensitivity.py --seeds 3
"""

from __future__ import annotations

import argparse
import os
from collections import Counter

import numpy as np

from churnops.local.driftsim import SCENARIOS, Shift, drift_sample
from churnops.platform.settings import Settings
from churnops.training.monitoring import DriftRule, compare


def judged(shift: Shift, scenario: str, seed: int, settings: Settings) -> tuple[bool, list[str], float]:
    """Whether the check fires on this seed and scenario, the drifted features and the largest feature PSI."""
    reference, current, spec = drift_sample(shift, scenario, seed)
    distributions = compare(reference, current, spec, settings.drift_bins)
    rule = DriftRule.from_settings(settings)
    return rule.fires(distributions), rule.drifted(distributions), max(d.psi for d in distributions)


def main() -> None:
    """Run every scenario on every seed and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=60)
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shift-hour", type=int, default=48)
    parser.add_argument("--price-rise", type=float, default=0.15)
    parser.add_argument("--engagement-drop", type=float, default=0.30)
    args = parser.parse_args()
    shift = Shift(args.hours, args.customers, args.shift_hour, args.price_rise, args.engagement_drop)
    settings = Settings()
    print(
        f"load average {os.getloadavg()[0]:.1f}; {args.hours} h, {args.customers} customers, {args.seeds} seeds; "
        f"trained at hour {args.shift_hour}; PSI threshold {settings.drift_psi_threshold}, "
        f"false-alarm rate {settings.drift_false_alarm_rate}"
    )
    print("| scenario | fired | median drifted features | median largest PSI | drifted on any seed |")
    print("|---|---|---|---|---|")
    for scenario in SCENARIOS:
        results = [judged(shift, scenario, seed, settings) for seed in range(args.seeds)]
        fired = sum(fire for fire, _, _ in results)
        seen = Counter(name for _, names, _ in results for name in names)
        print(
            f"| {scenario} | {fired}/{len(results)} | {np.median([len(names) for _, names, _ in results]):g} "
            f"| {np.median([top for _, _, top in results]):.2f} "
            f"| {', '.join(f'{name} ({count})' for name, count in seen.most_common()) or '-'} |"
        )


if __name__ == "__main__":
    main()
