"""Training, run comparison and model-registry commands, registered in the ``churnops`` CLI.

``train``, the ``runs`` group (``compare``) and the ``model`` group (``promote``, ``rollback``,
``show``, ``source``, ``performance``). Each command reads its settings from
:func:`churnops.platform.settings.get_settings`.
"""

from __future__ import annotations

import math

import click
import pandas as pd

from churnops.cli.options import FINDING_EXIT, model_option
from churnops.local.localstack import require_services
from churnops.model import registry
from churnops.platform.settings import get_settings
from churnops.training.evaluate import METRICS
from churnops.training.performance import check_production_performance
from churnops.training.train import train_from_commit

# Columns of `runs compare`, in order; metrics are MLflow metric names of the per-model runs.
COMPARE_METRICS: tuple[str, ...] = tuple(f"test_{m}" for m in METRICS) + ("validation_roc_auc", "validation_pr_auc")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return "-" if value is None or value == "" else str(value)


@click.command("train")
@click.option("--data-commit", default=None, metavar="C", help="Lake commit id (or branch) to train on.")
@click.option("--latest", is_flag=True, help="Train on the current head of the lake's main branch.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed for every random choice in training.")
@click.option("--actor", default=None, help="Who registers the result (default: CHURNOPS_ACTOR, the CI build, ...).")
def train_command(data_commit: str | None, latest: bool, seed: int, actor: str | None) -> None:
    """Train the baseline and XGBoost on one lake commit, log both to MLflow, gate and register the winner."""
    if (data_commit is None) == (not latest):
        raise click.UsageError("pass exactly one of --data-commit C or --latest")
    settings = get_settings()
    if actor:
        settings = settings.model_copy(update={"actor": actor})
    require_services(settings, "mlflow")
    result = train_from_commit(settings, data_commit, seed)
    click.echo(f"data commit  {result.data_commit}")
    click.echo(f"parent run   {result.parent_run_id}  (features: {result.features_uri})")
    table = pd.DataFrame(result.metrics).T.reindex(columns=list(COMPARE_METRICS))
    table.insert(0, "run_id", pd.Series(result.run_ids))
    click.echo(table.map(_fmt).rename_axis("model").reset_index().to_string(index=False))
    click.echo(f"gate: {result.gate.summary}")
    if result.reproduced_version is not None:
        click.echo(
            f"reproduces version {result.reproduced_version} (same data commit, code version, parameters "
            "and seed): nothing registered, no alias moved"
        )
    elif result.gate.passed:
        click.echo(f"gate passed: version {result.model_version} ({result.gate.winner}) is now 'candidate'")
    else:
        click.echo("gate refused the new model: " + "; ".join(result.gate.reasons))


@click.group("runs")
def runs_group() -> None:
    """Tracked training runs."""


def recent_runs(experiment: str, limit: int) -> pd.DataFrame:
    """The ``limit`` most recent per-model runs of ``experiment``, newest first, metrics as columns."""
    settings = get_settings()
    client = registry.client_for(settings)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise registry.RegistryNotFound(f"no experiment named {experiment!r} on {settings.mlflow_tracking_uri}")
    runs = client.search_runs(
        [found.experiment_id],
        filter_string="tags.model_type LIKE '%'",
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )
    rows = []
    for run in runs:
        tags = run.data.tags
        row = {
            "started": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%S"),
            "run_id": run.info.run_id[:12],
            "status": run.info.status,
            "model": tags.get("model_type", ""),
            "data_commit": tags.get("data_commit", "")[:12],
            "seed": tags.get("seed", ""),
        }
        row.update({name: run.data.metrics.get(name, math.nan) for name in COMPARE_METRICS})
        rows.append(row)
    return pd.DataFrame(rows, columns=["started", "run_id", "status", "model", "data_commit", "seed", *COMPARE_METRICS])


@runs_group.command("compare")
@click.option("--experiment", default=None, help="MLflow experiment (default: the configured one).")
@click.option("--limit", type=click.IntRange(1, 500), default=10, show_default=True, help="How many runs.")
def runs_compare(experiment: str | None, limit: int) -> None:
    """Recent per-model runs side by side: one row per run, metrics as columns."""
    name = experiment or get_settings().mlflow_experiment
    table = recent_runs(name, limit)
    if table.empty:
        click.echo(f"no training runs in experiment {name!r}")
        return
    click.echo(table.map(_fmt).to_string(index=False))


@click.group("model")
def model_group() -> None:
    """The registered churn model and its aliases (candidate -> staging -> production)."""


ACTOR_HELP = "Who makes the change (default: CHURNOPS_ACTOR, the CI build, the service account, the OS user)."


@model_group.command("promote")
@click.option("--to", "to", type=click.Choice(["staging", "production"]), required=True, help="Target alias.")
@click.option("--actor", default=None, help=ACTOR_HELP)
def model_promote(to: str, actor: str | None) -> None:
    """Move the version holding the previous alias (candidate or staging) to ``--to``."""
    settings = get_settings()
    event = registry.promote(
        registry.client_for(settings), settings.registered_model, to, actor=registry.resolve_actor(settings, actor)
    )
    previous = f" (was version {event.from_version})" if event.from_version else ""
    click.echo(f"{settings.registered_model}: version {event.version} is now {to!r}{previous}")


@model_group.command("rollback")
@click.option("--actor", default=None, help=ACTOR_HELP)
def model_rollback(actor: str | None) -> None:
    """Give 'production' back to the version that held it before the current one."""
    settings = get_settings()
    event = registry.rollback(
        registry.client_for(settings), settings.registered_model, actor=registry.resolve_actor(settings, actor)
    )
    click.echo(
        f"{settings.registered_model}: 'production' rolled back from version {event.from_version} "
        f"to version {event.version}"
    )


@model_group.command("show")
def model_show() -> None:
    """Versions of the registered model, newest first, with their aliases."""
    settings = get_settings()
    rows = registry.describe(registry.client_for(settings), settings.registered_model)
    if not rows:
        click.echo(f"no versions of {settings.registered_model!r} are registered")
        return
    click.echo(pd.DataFrame(rows).map(_fmt).to_string(index=False))


@model_group.command("source")
@click.option("--alias", default="staging", show_default=True, help="The alias whose version to name.")
def model_source(alias: str) -> None:
    """Print the storage URI and version number of the version holding ALIAS (what deploy takes)."""
    settings = get_settings()
    client = registry.client_for(settings)
    version = registry.alias_holder(client, settings.registered_model, alias)
    if version is None:
        raise registry.RegistryNotFound(f"no version of {settings.registered_model!r} holds the alias {alias!r}")
    click.echo(f"{client.get_model_version_download_uri(settings.registered_model, version)} {version}")


@model_group.command("performance")
@model_option("The registered version to judge.")
def model_performance(model_ref: str) -> None:
    """Judge a version on the labels matured since its training data (main's head); exit 3 when it degraded."""
    check = check_production_performance(get_settings(), model_ref)
    subject = f"{check.model} v{check.version} on data commit {check.data_commit[:12]}, labels since {check.since}"
    if check.performance is None:
        click.echo(f"{subject}: nothing to judge yet: {check.waiting}")
        return
    figures = check.performance
    click.echo(
        f"{subject}: {figures.cutoffs} matured cutoffs ({figures.first_cutoff} to {figures.last_cutoff}), "
        f"{figures.rows} rows, {figures.churners} churners"
    )
    click.echo(f"ROC-AUC            {figures.roc_auc:.4f}  (least {check.min_auc})")
    click.echo(f"calibration error  {figures.calibration_error:.4f}  (largest {check.max_calibration_error})")
    click.echo(f"mean probability   {figures.mean_probability:.4f}  (churn rate {figures.churn_rate:.4f})")
    click.echo(f"precision at {figures.k_share:.0%}    {figures.precision_at_k:.4f}")
    click.echo(f"MLflow run {check.mlflow_run_id}")
    if check.degraded:
        click.echo("DEGRADED: " + "; ".join(check.problems))
        raise SystemExit(FINDING_EXIT)
    click.echo("within limits")


COMMANDS: tuple[click.Command, ...] = (train_command, runs_group, model_group)
