"""``churnops demo``: the whole data-to-model path on the embedded local stack.

Each demo starts from a clean slate under ``<state_dir>/demo`` (its own bucket data, lake and
MLflow database), so it can be run again and again; the stack is stopped at the end unless
``keep`` is set.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import click
import pandas as pd

from churnops.local import datagen
from churnops.training import registry
from churnops.platform.alerts import AlertSink
from churnops.data.ingest import IngestReport, ingest_hour
from churnops.local.localstack import LocalStack
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket, storage_client
from churnops.training.train import TrainingResult, train_from_commit

log = logging.getLogger(__name__)

LATE_HOURS = 2  # the generator's late files arrive up to two hours after their hour


@dataclass
class DemoSummary:
    """What the demo did, for the closing printout."""

    ingests: list[IngestReport] = field(default_factory=list)
    alerts: Counter[str] = field(default_factory=Counter)
    training: TrainingResult | None = None


def demo_settings(settings: Settings) -> Settings:
    """The demo's own state folder (data, lake, MLflow) beside the user's."""
    return settings.model_copy(update={"state_dir": settings.state_dir / "demo"})


def ingest_history(settings: Settings, hours: int, customers: int, anomaly_rate: float, seed: int,
                   summary: DemoSummary) -> None:
    """Generate ``hours`` of activity and replay it: upload each hour's arrivals, then ingest that hour."""
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=hours + LATE_HOURS + 1)
    generated = datagen.generate(hours=hours, customers=customers, start=start, seed=seed, anomaly_rate=anomaly_rate)
    click.echo(f"generated {len(generated.objects)} raw objects for {hours} h x {customers} customers "
               f"({len(generated.anomalies)} injected anomalies)")
    client = storage_client(settings)
    ensure_bucket(client, settings.raw_bucket)
    by_arrival = datagen.objects_by_arrival(generated.objects)
    alerts = AlertSink(settings)
    for offset in range(hours + LATE_HOURS):
        hour = start + timedelta(hours=offset)
        datagen.upload(client, settings.raw_bucket, by_arrival.get(hour, []))
        report = ingest_hour(settings, hour, alerts=alerts)
        summary.ingests.append(report)
        acc = report.accounting()
        click.echo(f"  ingest {report.hour}: commit {(report.commit_id or '-')[:12]:12} rows_in={acc['rows_in']:6} "
                   f"published={acc['rows_published']:6} quarantined={acc['rows_quarantined']:4} "
                   f"duplicates={acc['duplicates_dropped']:3} objects_quarantined={acc['objects_quarantined']}")
    summary.alerts.update(alert.kind for alert in alerts.emitted)


def print_ingest_summary(summary: DemoSummary) -> None:
    """Totals over every ingest run."""
    commits = [r.commit_id for r in summary.ingests if r.commit_id]
    totals: Counter[str] = Counter()
    for report in summary.ingests:
        totals.update(report.accounting())
    click.echo("\n== data ==")
    click.echo(f"lake commits on main: {len(commits)} (latest {commits[-1] if commits else '-'})")
    click.echo(f"rows in {totals['rows_in']} = published {totals['rows_published']} + quarantined "
               f"{totals['rows_quarantined']} + duplicates dropped {totals['duplicates_dropped']}")
    click.echo(f"objects ingested {totals['objects_ingested']}, quarantined whole {totals['objects_quarantined']}")
    click.echo("alerts: " + (", ".join(f"{kind}={n}" for kind, n in sorted(summary.alerts.items())) or "none"))


def train_and_register(settings: Settings, summary: DemoSummary, seed: int) -> None:
    """Train both models on the lake's latest commit, gate, register; print runs and registry."""
    result = train_from_commit(settings, data_commit=None, seed=seed)
    summary.training = result
    click.echo("\n== training ==")
    click.echo(f"data commit {result.data_commit}; parent run {result.parent_run_id}")
    click.echo(f"feature matrices: {result.features_uri}")
    metrics = pd.DataFrame(result.metrics).sort_index()  # one column per model, side by side
    runs = pd.DataFrame([result.run_ids], index=["run_id"])
    click.echo(pd.concat([runs, metrics.round(4).astype(object)]).to_string())
    verdict = "passed" if result.gate.passed else "refused: " + "; ".join(result.gate.reasons)
    click.echo(f"gate {verdict}: {result.gate.summary}")
    click.echo("\n== registry ==")
    rows = registry.describe(registry.client_for(settings), settings.registered_model)
    click.echo(pd.DataFrame(rows).to_string(index=False) if rows else "no registered versions")
    click.echo(f"\nMLflow UI: {settings.mlflow_tracking_uri}")


def run_demo(settings: Settings, keep: bool, hours: int = 48, customers: int = 2000,
             anomaly_rate: float = 0.05, seed: int = 7) -> DemoSummary:
    """Run the demo; returns what it did."""
    settings = demo_settings(settings)
    stack = LocalStack(settings)
    stack.down()
    shutil.rmtree(settings.state_dir, ignore_errors=True)
    summary = DemoSummary()
    try:
        for status in stack.up():
            click.echo(f"{status.name:16} up  {status.url}")
        ingest_history(settings, hours, customers, anomaly_rate, seed, summary)
        print_ingest_summary(summary)
        train_and_register(settings, summary, seed)
    finally:
        if keep:
            click.echo(f"\nstack left running; MLflow UI: {settings.mlflow_tracking_uri}; "
                       "stop it with: make stack-down (or churnops stack down)")
        else:
            stack.down()
    return summary
