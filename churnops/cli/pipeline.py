"""``churnops pipeline``: compile, run locally, submit, schedule and upload the KFP pipelines.

The CLI is the one part of ``churnops`` that imports :mod:`pipelines` (the library never does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from churnops.platform.settings import get_settings
from pipelines import compile as compiling
from pipelines import local, remote
from pipelines.registry import PIPELINES

NAME = click.Choice(sorted(PIPELINES))


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``k=v`` pairs as pipeline arguments: a value that parses as JSON (a number, true) is that, else a string."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


param_option = click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
                            help="A pipeline argument (repeatable).")
host_option = click.option("--host", default=None, metavar="URL", help="KFP API endpoint (default: CHURNOPS_KFP_HOST).")
image_option = click.option("--components-image", default=None, metavar="IMAGE",
                            help="Pin every task to this components image, e.g. a digest CI pushed "
                                 "(default: CHURNOPS_COMPONENTS_IMAGE).")


@click.group("pipeline")
def pipeline_group() -> None:
    """The KFP pipelines: ingest (hourly), training (daily), scoring (daily), drift (daily)."""


@pipeline_group.command("compile")
@click.argument("name", type=NAME, required=False)
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=compiling.DEFAULT_OUTPUT,
              show_default=True)
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
@click.option("--pipeline-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where kfp.local keeps task outputs (default: <state_dir>/kfp).")
def run_local_command(name: str, params: tuple[str, ...], pipeline_root: Path | None) -> None:
    """Run NAME with kfp.local on the embedded local stack (start it with `churnops stack up`)."""
    settings = get_settings()
    outputs = local.run_local(name, parse_params(params), pipeline_root or settings.state_dir / "kfp")
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
    run = remote.submit(name, parse_params(params), get_settings(), host, components_image)
    click.echo(f"run {run.id} ({run.name}) started")


@pipeline_group.command("schedule")
@click.argument("name", type=NAME)
@click.option("--cron", default=None, metavar="EXPR",
              help="KFP cron: SIX fields, seconds first ('0 5 * * * *' = hourly at minute 5); a five-field "
                   "expression is refused. Default: the pipeline's own schedule.")
@param_option
@host_option
@image_option
def schedule_command(name: str, cron: str | None, params: tuple[str, ...], host: str | None,
                     components_image: str | None) -> None:
    """Create a recurring run of NAME on a KFP cluster."""
    if cron is not None:
        try:
            remote.check_cron(cron)
        except remote.CronError as error:
            raise click.BadParameter(str(error), param_hint="--cron") from error
    job = remote.schedule(name, cron, parse_params(params), get_settings(), host, components_image)
    click.echo(f"recurring run {job.id} ({job.name}) created")


@pipeline_group.command("upload")
@click.argument("name", type=NAME, required=False)
@click.option("--version", "version", default=None, help="Version name (default: the code version).")
@host_option
@image_option
def upload_command(name: str | None, version: str | None, host: str | None, components_image: str | None) -> None:
    """Upload NAME (default: every pipeline) as a new pipeline version the KFP UI lists."""
    settings = get_settings()
    for each in [name] if name else sorted(PIPELINES):
        uploaded = remote.upload(each, version or settings.code_version, settings, host, components_image)
        click.echo(f"pipeline version {uploaded.id} ({uploaded.name}) uploaded")
