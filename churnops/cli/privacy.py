"""``churnops privacy``: data-subject requests (erasure, access and portability) against the lake.

The raw customer id a request names is tokenized with the lake's key and used only in memory: it
is never logged, written or echoed. Pass ``--customer-id -`` to read it from standard input
instead of the command line (where other users of the machine can see process arguments).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import click

from churnops.data import purge as raw
from churnops.data import rotation, subjects
from churnops.data.privacy import Tokenizer, lake_tokenizer
from churnops.data.versioning import DataRepository, open_repository
from churnops.platform.secrets import LocalSecrets, secret_source
from churnops.platform.settings import get_settings
from churnops.platform.storage import storage_client
from churnops.training import erasure


def _customer_id(value: str) -> str:
    customer_id = sys.stdin.readline().strip() if value == "-" else value.strip()
    if not customer_id:
        raise click.UsageError("--customer-id is empty")
    return customer_id


def _lake() -> tuple[DataRepository, Tokenizer]:
    settings = get_settings()
    return open_repository(settings), lake_tokenizer(settings)


@click.group("privacy")
def privacy_group() -> None:
    """Data-subject requests: erase one customer (Art. 17) or export what is held about them (Art. 15/20)."""


@privacy_group.command("forget")
@click.option("--customer-id", required=True, metavar="ID", help="The raw customer id ('-' reads it from stdin).")
def forget_command(customer_id: str) -> None:
    """Remove one customer's rows from every table of every branch head, with an erasure record."""
    repo, tokenizer = _lake()
    grace = timedelta(hours=get_settings().erasure_grace_hours)
    report = subjects.forget(repo, tokenizer, _customer_id(customer_id), grace=grace)
    click.echo(f"erasure {report.erasure_id}: {report.rows_removed} rows removed")
    for branch in report.branches:
        tables = ", ".join(f"{table}={rows}" for table, rows in sorted(branch.rows_removed.items())) or "nothing held"
        if branch.skipped:
            click.echo(f"  {branch.branch}: skipped ({branch.skipped}); the purge removes it")
            continue
        click.echo(
            f"  {branch.branch}: commit={branch.commit_id or '-'} ({tables}; "
            f"{branch.files_rewritten} files rewritten, {branch.files_deleted} deleted)"
        )
    click.echo(
        f"history, the raw bucket, MLflow artifacts and pipeline datasets: removed by "
        f"`churnops privacy purge` from {report.due_at} (docs/security.md)"
    )


@privacy_group.command("purge")
def purge_command() -> None:
    """Complete every erasure whose grace period has passed: lake history, raw bucket, MLflow, pipeline root."""
    settings = get_settings()
    repo, tokenizer = _lake()
    report = erasure.purge(settings, repo, storage_client(settings), tokenizer)
    if not report.erasures:
        click.echo("no erasure is due")
        return
    click.echo(f"purged {len(report.erasures)} erasure(s): {', '.join(report.erasures)}; commit {report.commit_id}")
    for store, count in report.stores().items():
        click.echo(f"  {store}: {count}")
    if report.lake is not None and report.lake.retention_days is not None:
        click.echo(f"  lakeFS GC retention set to {report.lake.retention_days} days (history goes with the next GC)")
    for key_id in report.skipped_keys:
        click.echo(f"  raw bucket not searched for erasures under key {key_id} (not the loaded key)")


@privacy_group.command("rotate-key")
def rotate_key_command() -> None:
    """Re-tokenize the lake under the tokenization key's newest version, one commit per branch.

    With the local secrets backend a new version is added first when the lake already uses every
    version; on Secret Manager add the version there (``gcloud secrets versions add``) and run this.
    """
    settings = get_settings()
    repo, tokenizer = _lake()
    if subjects.lake_key_id(repo) == tokenizer.key_id:
        source = secret_source(settings)
        if not isinstance(source, LocalSecrets):
            raise click.ClickException(
                f"the lake already uses every version of {settings.tokenization_key_secret} ({tokenizer.key_id}): "
                "add a version to the secret first, then run this again"
            )
        number = source.add_version(settings.tokenization_key_secret)
        click.echo(f"added version {number} of the local key {settings.tokenization_key_secret}")
        repo, tokenizer = _lake()
    report = rotation.rotate(repo, tokenizer)
    click.echo(
        f"rotation {report.rotation_id}: {report.previous_key_id} -> {report.key_id}; "
        f"{report.tokens_rewritten} tokens in {report.files_rewritten} files, "
        f"{report.erasure_records} erasure records"
    )
    for branch, commit in sorted(report.commits.items()):
        click.echo(f"  {branch}: commit={commit}")


@privacy_group.command("export")
@click.option("--customer-id", required=True, metavar="ID", help="The raw customer id ('-' reads it from stdin).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON document here (mode 0600) instead of standard output.",
)
def export_command(customer_id: str, output: Path | None) -> None:
    """Everything the lake holds about one customer, as one portable JSON document."""
    repo, tokenizer = _lake()
    subject = _customer_id(customer_id)
    document = subjects.export(repo, tokenizer, subject)
    settings = get_settings()
    matcher = raw.LineMatcher(tokenizer, {tokenizer.token(subject)})
    document["raw_bucket"] = raw.export_raw(storage_client(settings), settings.raw_bucket, matcher)
    text = json.dumps(document, indent=2, sort_keys=True, default=str)
    if output is None:
        click.echo(text)
        return
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    counts = ", ".join(f"{table}={len(rows)}" for table, rows in sorted(document["tables"].items()))
    if document["raw_bucket"]:
        counts = ", ".join(filter(None, [counts, f"raw bucket lines={len(document['raw_bucket'])}"]))
    click.echo(f"wrote {output} ({counts or 'nothing held'})")
