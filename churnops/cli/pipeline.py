"""``churnops pipeline``: compile, run locally, submit, schedule and upload the KFP pipelines.

The CLI is the one part of ``churnops`` that imports :mod:`pipelines` (the library never does).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from churnops.platform.buildinfo import git_sha
from churnops.platform.settings import get_settings
from pipelines import compile as compiling
from pipelines import local, remote
from pipelines.registry import PIPELINES

NAME = click.Choice(sorted(PIPELINES))


_BOOLEANS = {"true": True, "false": False}


def _typed(key: str, value: str, kind: str) -> Any:
    """``value`` as the pipeline parameter type ``kind`` (KFP's String, Integer, Float, Boolean)."""
    try:
        if kind == "Integer":
            return int(value)
        if kind == "Float":
            return float(value)
        if kind == "Boolean":
            return _BOOLEANS[value.strip().lower()]
    except (ValueError, KeyError) as error:
        raise click.BadParameter(f"{key}={value!r}: {key} is {kind.lower()}", param_hint="--param") from error
    if kind == "String":
        return value
    try:
        return json.loads(value)  # a list or a struct parameter
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"{key}={value!r}: {key} is {kind}, as JSON", param_hint="--param") from error


def parse_params(pairs: tuple[str, ...], name: str) -> dict[str, Any]:
    """``k=v`` pairs as arguments of pipeline ``name``, each of the type the pipeline declares for it
    (``hour=2026`` stays the string ``"2026"``); an unknown name or a value of the wrong type is refused."""
    inputs = PIPELINES[name].pipeline.component_spec.inputs or {}
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        if key not in inputs:
            raise click.BadParameter(
                f"pipeline {name} has no parameter {key!r} (it has: {', '.join(sorted(inputs))})", param_hint="--param"
            )
        params[key] = _typed(key, value, str(inputs[key].type))
    return params


param_option = click.option(
    "--param", "params", multiple=True, metavar="KEY=VALUE", help="A pipeline argument (repeatable)."
)
host_option = click.option("--host", default=None, metavar="URL", help="KFP API endpoint (default: CHURNOPS_KFP_HOST).")
image_option = click.option(
    "--components-image",
    default=None,
    metavar="IMAGE",
    help="Pin every task to this components image, e.g. a digest CI pushed (default: CHURNOPS_COMPONENTS_IMAGE).",
)


@click.group("pipeline")
def pipeline_group() -> None:
    """The KFP pipelines: ingest (hourly), training (started by Cloud Build), scoring, drift and purge (daily),
    aggregates-backfill (by hand)."""


@pipeline_group.command("compile")
@click.argument("name", type=NAME, required=False)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=compiling.DEFAULT_OUTPUT,
    show_default=True,
)
@image_option
def compile_command(name: str | None, output_dir: Path, components_image: str | None) -> None:
    """Compile NAME (default: every pipeline) to YAML in --output-dir, and check it parses strictly."""
    names = [name] if name else sorted(PIPELINES)
    paths = [compiling.compile_pipeline(each, output_dir, components_image) for each in names]
    for path in paths:
        compiling.parse_strict(path)
        click.echo(str(path))


@pipeline_group.command("run-local")
@click.argument("name", type=NAME)
@param_option
@click.option(
    "--pipeline-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where kfp.local keeps task outputs (default: <state_dir>/kfp).",
)
def run_local_command(name: str, params: tuple[str, ...], pipeline_root: Path | None) -> None:
    """Run NAME with kfp.local on the embedded local stack (start it with `churnops stack up`)."""
    settings = get_settings()
    outputs = local.run_local(name, parse_params(params, name), pipeline_root or settings.state_dir / "kfp")
    click.echo(f"{name}: succeeded")
    for key, value in sorted(outputs.items()):
        click.echo(f"  {key} = {value}")


@pipeline_group.command("submit")
@click.argument("name", type=NAME)
@param_option
@host_option
@image_option
def submit_command(name: str, params: tuple[str, ...], host: str | None, components_image: str | None) -> None:
    """Start one run of NAME on a KFP cluster."""
    run = remote.submit(name, parse_params(params, name), get_settings(), host, components_image)
    click.echo(f"run {run.id} ({run.name}) started")


@pipeline_group.command("schedule")
@click.argument("name", type=NAME, required=False)
@click.option(
    "--version",
    "version",
    default=None,
    help="The uploaded pipeline version the schedule runs (default: the code version, as upload names it).",
)
@click.option(
    "--cron",
    default=None,
    metavar="EXPR",
    help="KFP cron: SIX fields, seconds first ('0 5 * * * *' = hourly at minute 5); a five-field "
    "expression is refused. Default: the pipeline's own schedule.",
)
@param_option
@host_option
def schedule_command(
    name: str | None, version: str | None, cron: str | None, params: tuple[str, ...], host: str | None
) -> None:
    """Make NAME's one recurring run on a KFP cluster run an uploaded version (created, or replaced when it
    differs); without NAME, every pipeline KFP schedules, each on its own cron (what CI runs after upload)."""
    if cron is not None:
        try:
            remote.check_cron(cron)
        except remote.CronError as error:
            raise click.BadParameter(str(error), param_hint="--cron") from error
    if name is None and (cron or params):
        raise click.UsageError("--cron and --param need a pipeline NAME")
    if name is not None and PIPELINES[name].cron is None and cron is None:
        raise click.UsageError(f"{name} is not scheduled by KFP: {PIPELINES[name].trigger}")
    settings = get_settings()
    names = [name] if name else sorted(n for n, entry in PIPELINES.items() if entry.cron)
    for each in names:
        job = remote.schedule(each, version or git_sha(settings), cron, parse_params(params, each), settings, host)
        click.echo(f"recurring run {job.id} ({job.name}) {'created' if job.created else 'unchanged'}")


@pipeline_group.command("upload")
@click.argument("name", type=NAME, required=False)
@click.option("--version", "version", default=None, help="Version name (default: the code version).")
@host_option
@image_option
def upload_command(name: str | None, version: str | None, host: str | None, components_image: str | None) -> None:
    """Upload NAME (default: every pipeline) as pipeline version VERSION the KFP UI lists; an existing one is kept."""
    settings = get_settings()
    for each in [name] if name else sorted(PIPELINES):
        uploaded = remote.upload(each, version or git_sha(settings), settings, host, components_image)
        click.echo(
            f"pipeline version {uploaded.id} ({uploaded.name}) {'uploaded' if uploaded.created else 'already uploaded'}"
        )


HOUR_FORMATS = ["%Y-%m-%dT%H", "%Y-%m-%dT%H:%M:%S"]


@pipeline_group.command("backfill")
@click.argument("name", type=click.Choice(["ingest"]))
@click.option(
    "--from",
    "first",
    type=click.DateTime(HOUR_FORMATS),
    required=True,
    metavar="HOUR",
    help="First hour to ingest (UTC), e.g. 2026-11-01T05.",
)
@click.option(
    "--to",
    "last",
    type=click.DateTime(HOUR_FORMATS),
    required=True,
    metavar="HOUR",
    help="Last hour to ingest (UTC), included.",
)
@click.option(
    "--version", "version", default=None, help="The uploaded pipeline version to run (default: the code version)."
)
@param_option
@host_option
def backfill_command(
    name: str, first: datetime, last: datetime, version: str | None, params: tuple[str, ...], host: str | None
) -> None:
    """Run NAME once per hour from --from to --to on a KFP cluster, one after another, each with its hour's
    scheduled time (a recurring run over that range, with catch-up)."""
    settings = get_settings()
    try:
        job = remote.backfill(
            first.replace(tzinfo=timezone.utc),
            last.replace(tzinfo=timezone.utc),
            version or git_sha(settings),
            settings,
            host,
            parse_params(params, name),
        )
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--from/--to") from error
    hours = int((last - first).total_seconds() // 3600) + 1
    click.echo(f"recurring run {job.id} ({job.name}) {'created' if job.created else 'unchanged'}: {hours} hour(s)")
