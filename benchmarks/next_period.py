"""Do the recorded test metrics hold on the period that follows? Train on N hours, score the next P hours.

On a temporary embedded stack (fake GCS, MLflow, the embedded lake), the script

1. generates ``N + P + horizon`` hours of activity (``churnops.local.datagen``, no anomalies) and
   ingests the first ``N`` hours with the real ingest stage: commit A;
2. trains on commit A in process (``train_from_commit``: the purged split, both candidates, the
   gate), which records each candidate's test metrics in MLflow and registers the gate's winner;
3. ingests the remaining hours: commit B, and builds features and labels at every hourly cutoff of
   the next period (from the end of commit A's data to ``P`` hours later), each label window fully
   inside commit B's data;
4. scores those rows with each candidate's logged model and with the registered version, and
   prints the recorded validation and test ROC-AUC next to the next-period ones, the gap, and the
   behavioural checks' figures each model's run recorded (the gate refuses a winner that fails one).

``--unconstrained`` fits XGBoost without the declared monotone constraints, for comparison.

Run: ``.venv/bin/python benchmarks/next_period.py [--hours 48] [--next 12] [--customers 2000] [--seed 0]
[--unconstrained]``.
Every process competes for the same cores; the figures depend on the data, not on the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# pylint: disable=wrong-import-position  # the environment above must precede mlflow's import
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from churnops.data.ingest import ingest_hour  # noqa: E402
from churnops.data.versioning import open_repository  # noqa: E402
from churnops.local import datagen  # noqa: E402
from churnops.local.localstack import LocalStack  # noqa: E402
from churnops.model import registry  # noqa: E402
from churnops.model.predict import decision_rule_of  # noqa: E402
from churnops.model.scoring import load_model  # noqa: E402
from churnops.platform.settings import Settings  # noqa: E402
from churnops.platform.storage import ensure_bucket, storage_client  # noqa: E402
from churnops.training import evaluate  # noqa: E402
from churnops.training.behaviour import METRIC_PREFIX  # noqa: E402
from churnops.training.features import LABEL, build_training_set, feature_spec  # noqa: E402
from churnops.training.train import TrainingConfig, load_tables, train_from_commit  # noqa: E402


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ingest(settings: Settings, first: datetime, hours: range) -> str:
    """Run the ingest stage for each hour; return main's head."""
    for offset in hours:
        ingest_hour(settings, first + timedelta(hours=offset), lookback=0)
    return open_repository(settings).resolve("main")


def next_period_rows(
    settings: Settings, commit: str, start: pd.Timestamp, hours: int, config: TrainingConfig
) -> pd.DataFrame:
    """Features and labels at every hourly cutoff in ``[start, start + hours)`` from the tables at ``commit``."""
    events, subscriptions = load_tables(open_repository(settings), commit)
    cutoffs = [start + pd.Timedelta(hours=h) for h in range(hours)]
    return build_training_set(events, subscriptions, cutoffs, horizon=config.horizon_h, windows=config.windows_h)


def registered_report(settings: Settings, version: str, rows: pd.DataFrame, config: TrainingConfig) -> str:
    """The registered version (the winner refit on every labelled cutoff) on the next period: ranking,
    calibration against always predicting the base rate, and its decision rule's labels."""
    uri = f"models:/{settings.registered_model}/{version}"
    rule = decision_rule_of(mlflow.models.get_model_info(uri).metadata)
    scores = evaluate.churn_probability(load_model(uri).pipeline, rows[feature_spec(config.windows_h).columns])
    now = evaluate.classification_metrics(rows[LABEL], scores, rule.threshold, config.capacity_share)
    base_rate = float(rows[LABEL].mean())
    constant = evaluate.classification_metrics(rows[LABEL], np.full(len(rows), base_rate))["brier"]
    return (
        f"registered version {version} (the winner refit on every labelled cutoff), next period: ROC-AUC "
        f"{now['roc_auc']:.3f}, ECE {now['calibration_error']:.3f}, Brier {now['brier']:.4f} (the base rate "
        f"always: {constant:.4f}); mean probability {scores.mean():.3f} vs churn rate {base_rate:.3f}; rule "
        f"{rule.describe()}: {(scores >= rule.threshold).mean():.1%} of rows labelled, precision "
        f"{now['precision']:.3f}, recall {now['recall']:.3f}"
    )


def behaviour_summary(recorded: dict[str, float]) -> str:
    """The behavioural checks' figures a model's run recorded (``validation_behaviour_<check>``), by name."""
    prefix = f"validation_{METRIC_PREFIX}"
    figures = {key.removeprefix(prefix): value for key, value in recorded.items() if key.startswith(prefix)}
    return ", ".join(f"{name} {value:.3f}" for name, value in sorted(figures.items()))


def main() -> None:
    """Train on the first hours, score the next period, print both sets of figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=48, help="hours to train on")
    parser.add_argument("--next", type=int, default=12, help="hours of cutoffs in the next period")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0, help="the generator's seed (training uses 42)")
    parser.add_argument(
        "--unconstrained", action="store_true", help="fit XGBoost without the declared monotone constraints"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(state_dir=Path(tmp), gcs_port=free_port(), mlflow_port=free_port(), raw_bucket="bench-raw")
        config = TrainingConfig.from_settings(settings)
        if args.unconstrained:
            config = dataclasses.replace(config, monotone_directions={})
        total = args.hours + args.next + config.horizon_h
        stack = LocalStack(settings)
        stack.up()
        try:
            first = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=total + 3)
            generated = datagen.generate(hours=total, customers=args.customers, start=first, seed=args.seed)
            client = storage_client(settings)
            ensure_bucket(client, settings.raw_bucket)
            datagen.upload(client, settings.raw_bucket, generated.objects)
            trained_on = ingest(settings, first, range(args.hours))
            result = train_from_commit(settings, trained_on, seed=42, config=config)
            later = ingest(settings, first, range(args.hours, total + 2))  # the generator's late files too
            start = pd.Timestamp(first + timedelta(hours=args.hours))
            rows = next_period_rows(settings, later, start, args.next, config)
            spec = feature_spec(config.windows_h)
            mlflow_client = registry.client_for(settings)
            print(
                f"trained on {args.hours} h x {args.customers} customers (commit {trained_on[:12]}); next period: "
                f"{args.next} hourly cutoffs from {start:%Y-%m-%d %H:%M}, {len(rows)} rows, "
                f"{int(rows[LABEL].sum())} churners; gate: {result.gate.summary}"
            )
            print(
                f"{'model':<22}{'val ROC-AUC':>13}{'test ROC-AUC':>14}{'next ROC-AUC':>14}{'gap':>9}{'test ECE':>10}"
                f"{'next ECE':>10}{'next Brier':>12}{'next P@k':>10}{'next lift@k':>13}  behaviour (validation)"
            )
            for name, run_id in sorted(result.run_ids.items()):
                recorded = mlflow_client.get_run(run_id).data.metrics
                (logged,) = mlflow_client.search_logged_models(
                    experiment_ids=[result.experiment_id], filter_string=f"source_run_id = '{run_id}'"
                )
                model = load_model(logged.model_uri).pipeline
                scores = evaluate.churn_probability(model, rows[spec.columns])
                now = evaluate.classification_metrics(rows[LABEL], scores, capacity_share=config.capacity_share)
                label = name + (" (winner)" if name == result.gate.winner and result.gate.passed else "")
                print(
                    f"{label:<22}{recorded['validation_roc_auc']:>13.3f}{recorded['test_roc_auc']:>14.3f}"
                    f"{now['roc_auc']:>14.3f}{now['roc_auc'] - recorded['test_roc_auc']:>+9.3f}"
                    f"{recorded['test_calibration_error']:>10.3f}{now['calibration_error']:>10.3f}{now['brier']:>12.4f}"
                    f"{now['precision_at_k']:>10.3f}{now['lift_at_k']:>13.2f}  {behaviour_summary(recorded)}"
                )
            if result.model_version is not None:
                print(registered_report(settings, result.model_version, rows, config))
            mlflow.end_run()
        finally:
            stack.down()


if __name__ == "__main__":
    main()
