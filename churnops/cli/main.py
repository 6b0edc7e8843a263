"""``churnops``: the operations a person runs by hand.

Every command reads its configuration from :func:`churnops.platform.settings.get_settings` and logs
through :func:`churnops.platform.logs.setup_logging`.

Errors: a :class:`churnops.errors.ChurnopsError` (bad data, a missing commit, a service that is not
running, a setting that makes no sense, and MLflow's exceptions as the registry's domain errors:
:func:`churnops.model.registry.domain_error`) is printed as one line, ``Error: <Type>: <message>``,
and the command exits with status 2; ``--debug`` prints its traceback as well. Any other exception is
a bug and keeps its traceback (exit status 1).
"""

from __future__ import annotations

import io
import json
import traceback
from datetime import datetime, timezone
from typing import Any

import click
import pyarrow.parquet as pq
from mlflow.exceptions import MlflowException

from churnops.cli import demo
from churnops.cli import privacy as cli_privacy
from churnops.cli import reproduce as cli_reproduce
from churnops.cli import serve as cli_serve
from churnops.cli import training as cli_training
from churnops.cli.auth import auth_group
from churnops.cli.canary import canary_group
from churnops.cli.deploy import deploy_command
from churnops.cli.online import drift_group, features_group
from churnops.cli.pipeline import pipeline_group
from churnops.data import backfill, ingest
from churnops.data.versioning import open_repository
from churnops.data.versioning.uri import read_uri
from churnops.errors import ChurnopsError, ConfigurationError
from churnops.local import datagen
from churnops.local.localstack import LocalStack, require_services
from churnops.model import registry
from churnops.platform.logs import Scrubber, setup_logging
from churnops.platform.settings import DEFAULT_SCRUB_IDENTIFIERS, get_settings
from churnops.platform.storage import ensure_bucket, storage_client


def parse_hour(value: str) -> datetime:
    """``YYYY-MM-DDTHH`` (or any ISO-8601 time) -> tz-aware UTC datetime floored to the hour."""
    try:
        parsed = datetime.fromisoformat(value if len(value) != 13 else f"{value}:00")
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an hour like 2026-11-01T05") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


class HourType(click.ParamType[datetime, "str | datetime"]):
    """A click parameter for an hour (``YYYY-MM-DDTHH``)."""

    name = "hour"

    def convert(self, value: str | datetime, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        return parse_hour(value)


HOUR = HourType()
ACCOUNTING_KEYS = ("rows_in", "rows_published", "rows_quarantined", "duplicates_dropped", "objects_quarantined")
DOMAIN_ERROR_EXIT = 2


class DomainError(click.ClickException):
    """A :class:`ChurnopsError` as the CLI reports it: one scrubbed line, exit status 2."""

    exit_code = DOMAIN_ERROR_EXIT


def scrubber() -> Scrubber:
    """The settings' scrubber; the default patterns when the settings themselves are invalid."""
    try:
        return Scrubber(get_settings().log_scrub_identifiers)
    except ConfigurationError:
        return Scrubber(list(DEFAULT_SCRUB_IDENTIFIERS))


def one_line(exc: ChurnopsError) -> str:
    """``<Type>: <first line of the message>``, identifiers scrubbed, at most 400 characters of message."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {scrubber().text(text)[:400]}"


class ChurnopsGroup(click.Group):
    """The command group: a domain error becomes one line and exit status 2; anything else is a bug."""

    def invoke(self, ctx: click.Context) -> Any:  # what the command returns (click's own annotation)
        try:
            return super().invoke(ctx)
        except (ChurnopsError, MlflowException) as exc:
            # MLflow's exceptions leave the library here, and only here, as the registry's domain errors
            domain = registry.domain_error(exc) if isinstance(exc, MlflowException) else exc
            if ctx.meta.get("churnops.debug"):
                trace = "".join(traceback.format_exception(exc))
                click.echo(scrubber().text(trace), err=True, nl=False)
            raise DomainError(one_line(domain)) from exc


@click.group(cls=ChurnopsGroup)
@click.option("--debug", is_flag=True, help="Print the traceback of a domain error too (bugs always show theirs).")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """churnops: customer-churn MLOps (ingest, version, train, register, serve)."""
    ctx.meta["churnops.debug"] = debug
    setup_logging(get_settings())


@main.group()
def stack() -> None:
    """The embedded local stack: fake-gcs-server and MLflow on 127.0.0.1."""


@stack.command("up")
def stack_up() -> None:
    """Start the local services (idempotent) and create the raw bucket."""
    for status in LocalStack(get_settings()).up():
        click.echo(f"{status.name:16} up    {status.url}  pid={status.pid}")


@stack.command("down")
def stack_down() -> None:
    """Stop the services that `stack up` (or `demo --keep`) started."""
    settings = get_settings()
    stopped = LocalStack(settings).down() + LocalStack(demo.demo_settings(settings)).down()
    if demo.stop_kept_server(settings):
        stopped.append("demo model server and transformer")
    click.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@stack.command("status")
def stack_status() -> None:
    """Health of each local service; exits 1 if any is down or answered by a process this stack did not start."""
    statuses = LocalStack(get_settings()).status()
    for status in statuses:
        state = ("up" if status.pid is not None else "foreign") if status.healthy else "down"
        click.echo(f"{status.name:16} {state:7} {status.url}  pid={status.pid}")
    if not all(status.healthy and status.pid is not None for status in statuses):
        raise SystemExit(1)


@main.group()
def data() -> None:
    """Synthetic raw data."""


@data.command("generate")
@click.option("--hours", type=click.IntRange(min=1), default=24, show_default=True)
@click.option("--customers", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--anomaly-rate", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--start", type=HOUR, default=None, help="First hour (UTC), e.g. 2026-11-01T00. Default: HOURS ago.")
def data_generate(hours: int, customers: int, anomaly_rate: float, seed: int, start: datetime | None) -> None:
    """Upload hourly drops of activity events and billing exports to the raw bucket."""
    settings = get_settings()
    require_services(settings, "fake-gcs-server")
    generated = datagen.generate(hours=hours, customers=customers, start=start, seed=seed, anomaly_rate=anomaly_rate)
    client = storage_client(settings)
    ensure_bucket(client, settings.raw_bucket)
    refs = datagen.upload(client, settings.raw_bucket, generated.objects)
    click.echo(
        f"uploaded {len(refs)} objects to gs://{settings.raw_bucket}/activity/ "
        f"({len(generated.anomalies)} with injected anomalies)"
    )


@main.command("ingest")
@click.option("--hour", "hour", type=HOUR, required=True, help="The scheduled hour (UTC), e.g. 2026-11-01T05.")
@click.option("--lookback", type=click.IntRange(0, 72), default=None, help="Hours of late files to pick up.")
def ingest_cmd(hour: datetime, lookback: int | None) -> None:
    """Ingest one hour of raw objects into the lake (one commit, or none if nothing is new)."""
    settings = get_settings()
    require_services(settings, "fake-gcs-server")
    report = ingest.ingest_hour(settings, hour, lookback)
    acc = report.accounting()
    click.echo(
        f"{report.hour}: commit={report.commit_id or '-'} objects={acc['objects_ingested']} "
        f"(skipped {acc['objects_skipped']}, quarantined {acc['objects_quarantined']}) rows_in={acc['rows_in']} "
        f"published={acc['rows_published']} quarantined={acc['rows_quarantined']} "
        f"duplicates={acc['duplicates_dropped']} alerts={len(report.alerts)}"
    )


@main.command("demo")
@click.option("--keep", is_flag=True, help="Leave the local stack running afterwards.")
@click.option(
    "--hours",
    type=click.IntRange(min=40),
    default=48,
    show_default=True,
    help="Hours of activity (training needs 24 h of history plus a 12 h label horizon).",
)
@click.option("--customers", type=click.IntRange(min=50), default=2000, show_default=True)
def demo_cmd(keep: bool, hours: int, customers: int) -> None:
    """Run the whole system end to end on the embedded local stack."""
    demo.run_demo(get_settings(), keep=keep, hours=hours, customers=customers)


for _command in cli_training.COMMANDS + cli_reproduce.COMMANDS:
    main.add_command(_command)
main.add_command(cli_privacy.privacy_group)
main.add_command(features_group)
main.add_command(drift_group)
main.add_command(deploy_command)
main.add_command(auth_group)
main.add_command(canary_group)
main.add_command(cli_serve.serve_command)
main.add_command(pipeline_group)


@main.group()
def lake() -> None:
    """The versioned data lake (embedded git repository locally, lakeFS on GKE)."""


@lake.command("log")
@click.option("--ref", default="main", show_default=True, help="Branch or commit id.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def lake_log(ref: str, limit: int) -> None:
    """Recent commits of ``ref`` (first parents: what the branch itself published), with accounting."""
    repo = open_repository(get_settings())
    commit: str | None = repo.resolve(ref)
    for _ in range(limit):
        if commit is None:
            break
        info = repo.commit_info(commit)
        commit = info.parents[0] if info.parents else None
        acc = json.loads(info.metadata.get("accounting", "{}"))
        counts = " ".join(f"{key}={acc[key]}" for key in ACCOUNTING_KEYS if key in acc)
        when = info.created_at.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{info.id[:12]}  {when}  {info.metadata.get('hour', '-'):13}  {counts or info.message}")


@lake.command("show")
@click.argument("ref")
def lake_show(ref: str) -> None:
    """One commit: id, parents, message and metadata (sources, accounting, versions)."""
    info = open_repository(get_settings()).commit_info(ref)
    click.echo(
        json.dumps(
            {
                "id": info.id,
                "parents": info.parents,
                "created_at": info.created_at.isoformat(),
                "message": info.message,
                "metadata": info.metadata,
            },
            indent=2,
        )
    )


@lake.command("backfill-aggregates")
def lake_backfill_aggregates() -> None:
    """Write the hourly pre-aggregates of every events partition on main that lacks them (one commit, or none);
    prints a JSON summary. Run once on a lake ingested before the aggregates existed; a repeat finds nothing."""
    settings = get_settings()
    report = backfill.backfill_aggregates(open_repository(settings), settings)
    click.echo(json.dumps(report.summary(), indent=2))


@lake.command("read")
@click.argument("uri")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the object (or the table, as parquet) to this file instead of printing it.",
)
@click.option("--limit", type=click.IntRange(0, 10_000), default=10, show_default=True, help="Rows to print.")
def lake_read(uri: str, output: str | None, limit: int) -> None:
    """Read back what a recorded URI names (s3://REPO/REF/PATH or lakefs://REPO/REF/PATH), on either backend."""
    settings = get_settings()
    found = read_uri(open_repository(settings), settings.lakefs_repository, uri)
    if isinstance(found, bytes) and output:
        with open(output, "wb") as handle:
            handle.write(found)
        click.echo(f"{len(found)} bytes written to {output}")
        return
    if isinstance(found, bytes) and not uri.endswith(".parquet"):
        try:
            click.echo(found.decode("utf-8"))
        except UnicodeDecodeError:
            click.echo(f"{len(found)} bytes of binary data: pass --output FILE to save them")
        return
    if isinstance(found, bytes):
        found = pq.read_table(io.BytesIO(found))
    if output:
        pq.write_table(found, output)
        click.echo(f"{found.num_rows} rows written to {output}")
        return
    click.echo(f"{found.num_rows} rows, {found.num_columns} columns")
    if limit:
        click.echo(found.slice(0, limit).to_pandas().to_string(index=False))
