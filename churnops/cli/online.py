"""``churnops features online``: publish the online feature snapshot the by-customer transformer serves from."""

from __future__ import annotations

import click

from churnops.platform.settings import get_settings
from churnops.training.online import refresh_online_features


@click.group("features")
def features_group() -> None:
    """Feature tables in the lake."""


@features_group.command("online")
@click.option("--data-commit", default=None, metavar="C", help="Lake commit id (or branch); default: main's head.")
def features_online(data_commit: str | None) -> None:
    """Build the features of every active customer at the latest cutoff and commit them to the lake."""
    snapshot = refresh_online_features(get_settings(), data_commit)
    click.echo(f"online features: {len(snapshot.features)} active customers ({len(snapshot.inactive)} inactive) "
               f"at cutoff {snapshot.cutoff.isoformat()}, data commit {snapshot.data_commit[:12]}, "
               f"lake commit {snapshot.commit_id[:12]} (branch features)")
