"""``churnops features online`` (the snapshot the by-customer transformer serves from) and ``churnops drift check``."""

from __future__ import annotations

import click

from churnops.cli.options import FINDING_EXIT, model_option
from churnops.platform.settings import get_settings
from churnops.training.monitoring import check_drift, retrain_for
from churnops.training.online import refresh_online_features


@click.group("features")
def features_group() -> None:
    """Feature tables in the lake."""


@features_group.command("online")
@click.option("--data-commit", default=None, metavar="C", help="Lake commit id (or branch); default: main's head.")
def features_online(data_commit: str | None) -> None:
    """Build the features of every active customer at the latest cutoff and commit them to the lake."""
    snapshot = refresh_online_features(get_settings(), data_commit)
    click.echo(
        f"online features: {len(snapshot.features)} active customers ({len(snapshot.inactive)} inactive) "
        f"at cutoff {snapshot.cutoff.isoformat()}, data commit {snapshot.data_commit[:12]}, "
        f"lake commit {snapshot.commit_id[:12]} (branch features)"
    )


@click.group("drift")
def drift_group() -> None:
    """Drift monitoring: live features against a model version's training reference."""


@drift_group.command("check")
@model_option("The model version whose training features are the reference.")
@click.option(
    "--refresh/--no-refresh",
    default=True,
    show_default=True,
    help="Publish a fresh online snapshot from main's head first.",
)
@click.option("--retrain", is_flag=True, help="When the check fires, train on main's head with the report as reason.")
def drift_check(model_ref: str, refresh: bool, retrain: bool) -> None:
    """Compare the latest online snapshot with the training reference; exit 3 when drift fires."""
    settings = get_settings()
    if refresh:
        refresh_online_features(settings)
    report = check_drift(settings, model_ref)
    table = report.table()
    click.echo(table.head(15).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    click.echo(
        f"{report.model} v{report.version} vs snapshot at {report.cutoff} (data {report.data_commit[:12]}): "
        f"{report.drifted_feature_share:.0%} of features drifted (PSI past its bar, at least {report.threshold}; "
        f"fires on any feature): {'FIRED' if report.fired else 'quiet'}"
    )
    click.echo(f"report: {report.lake_uri}  MLflow run {report.mlflow_run_id}")
    if report.fired and retrain:
        result = retrain_for(settings, report)
        click.echo(
            f"retrained: run {result.parent_run_id}, gate {'passed' if result.gate.passed else 'refused'}"
            + (f", registered version {result.model_version}" if result.model_version else "")
        )
    if report.fired:
        raise SystemExit(FINDING_EXIT)
