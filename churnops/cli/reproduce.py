"""``churnops reproduce``: retrain a registered model from its recorded lineage and compare."""

from __future__ import annotations

import json
import math

import click

from churnops.cli.options import FINDING_EXIT
from churnops.local.localstack import require_services
from churnops.platform.settings import get_settings
from churnops.training.reproduce import DIFFERENT, Check, reproduce


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.6f}"


def _line(check: Check) -> str:
    return (
        f"  {check.name:28} {_number(check.original):>10} {_number(check.reproduced):>10} "
        f"{check.difference:+.2e}  {check.verdict}"
    )


@click.command("reproduce")
@click.argument("ref", metavar="MODEL@ALIAS|MODEL@VERSION|RUN_ID")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=1e-9,
    show_default=True,
    help="Largest absolute difference reported as 'within tolerance'.",
)
@click.option(
    "--current-settings",
    is_flag=True,
    help="Take every settings-backed parameter (windows, horizon, cutoff step, minimum history, the gate's settings, "
    "calibration, decision rule, retention terms) from the current settings, not the record.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def reproduce_command(ref: str, tolerance: float, current_settings: bool, as_json: bool) -> None:
    """Retrain a model version (or run) from its data commit, parameters and seed, and compare.

    Registers nothing. Exits 3 when a metric, the test predictions or the feature matrices differ
    beyond the tolerance (2 when it cannot reproduce: no such version, data commit gone, ...).
    """
    settings = get_settings()
    require_services(settings, "mlflow")
    report = reproduce(settings, ref, tolerance=tolerance, current_settings=current_settings)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        version = f" (version {report.version})" if report.version else ""
        click.echo(
            f"reproduced {report.model_type} run {report.source_run_id}{version} on data commit {report.data_commit}"
        )
        click.echo(f"new run {report.run_id} (tag reproduces={report.source_run_id}); nothing registered")
        click.echo(f"  {'metric':28} {'original':>10} {'reproduced':>10} {'difference':>9}  verdict")
        for check in [*report.metrics, report.predictions]:
            click.echo(_line(check))
        click.echo(f"  feature matrices rebuilt from the lake: {report.features}")
        click.echo(f"verdict: {report.verdict}")
        for cause in report.causes:
            click.echo(f"differs from the original: {cause}")
        if report.verdict == DIFFERENT and not report.causes:
            click.echo("differs from the original: nothing recorded differs (non-deterministic code?)")
    if report.verdict == DIFFERENT:
        raise SystemExit(FINDING_EXIT)


COMMANDS: tuple[click.Command, ...] = (reproduce_command,)
