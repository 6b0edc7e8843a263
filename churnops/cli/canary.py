"""``churnops canary``: start, analyse, promote or roll back the production canary, or all automatically.

Exit status: 0 done (or healthy); 1 the canary was (``auto``) or should be (``analyze``) rolled
back; 2 an operation failed (one line, as for every domain error; a failed start or promotion has
been rolled back and alerted by then); 3 no decision because there was too little traffic.
"""

from __future__ import annotations

import click

from churnops.cli.deploy import cluster_for
from churnops.cli.options import FINDING_EXIT
from churnops.deploy.canary import Canary, Prometheus, Thresholds, run_auto
from churnops.deploy.release import resolve_model
from churnops.errors import RegistryError
from churnops.model import registry
from churnops.platform.alerts import AlertSink
from churnops.platform.settings import Settings, get_settings


def _canary(settings: Settings) -> Canary:
    return Canary(settings, cluster_for(settings))


class RegistryAliases:
    """The registry's ``production`` alias of the settings' model, as a promotion moves it (and undoes that)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def promote(self, version: str, note: str) -> None:
        """Point ``production`` at ``version`` (recorded as a promotion)."""
        client = registry.client_for(self.settings)
        registry.assign_alias(
            client, self.settings.registered_model, "production", version, action="promote", note=note
        )

    def undo(self, version: str, note: str) -> None:
        """Give ``production`` back to its previous holder (recorded as a rollback), or remove it if none."""
        client = registry.client_for(self.settings)
        name = self.settings.registered_model
        if registry.alias_holder(client, name, "production") != version:
            raise RegistryError(f"the production alias no longer points at version {version}: left as it is")
        history = registry.production_history(client, name)
        if len(history) < 2:
            client.delete_registered_model_alias(name, "production")
            return
        registry.assign_alias(client, name, "production", history[-2], action="rollback", note=note)


def _alias_mover(settings: Settings) -> RegistryAliases:
    return RegistryAliases(settings)


@click.group("canary")
def canary_group() -> None:
    """The production canary (KServe canaryTrafficPercent)."""


@canary_group.command("start")
@click.option("--percent", type=click.IntRange(1, 99), required=True, help="Share of traffic for the new model.")
@click.option("--model-uri", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION or a storage URI.")
@click.option("--model-version", default=None, help="Its registry version (promote moves the alias to it).")
@click.option("--image", default=None, help="Serving image digest for the canary (default: the one production runs).")
def start(percent: int, model_uri: str, model_version: str | None, image: str | None) -> None:
    """Roll a new model (and image) out to PERCENT % of production traffic, predictor and transformer; both new
    revisions are smoke-tested, and any failure rolls the canary back with an alert."""
    settings = get_settings()
    model_uri, model_version = resolve_model(settings, model_uri, model_version)
    state = _canary(settings).start(
        percent, model_uri, model_version, AlertSink(settings), image=image, aliases=_alias_mover(settings)
    )
    if state.first:
        click.echo(
            f"first production release: {state.canary} takes all traffic (no stable revision to compare with); "
            f"production alias -> version {state.model_version}"
        )
        return
    click.echo(f"canary {state.canary} takes {state.canary_percent}% of production; stable {state.stable}")


@canary_group.command("analyze")
def analyze() -> None:
    """Compare the canary with the stable revision over the last window (exit 0 healthy, 1 unhealthy, 3 hold)."""
    settings = get_settings()
    prometheus, limits = Prometheus.from_settings(settings), Thresholds.from_settings(settings)
    state, verdict, _ = _canary(settings).analyze(prometheus, limits)
    click.echo(f"canary {state.canary} vs {state.stable}: {verdict.line()}")
    if verdict.decision == "rollback":
        raise SystemExit(1)
    if verdict.decision == "hold":
        raise SystemExit(FINDING_EXIT)


@canary_group.command("promote")
def promote() -> None:
    """The production alias moves to the canary's model version and all traffic to the canary: one step."""
    settings = get_settings()
    state = _canary(settings).promote(_alias_mover(settings), AlertSink(settings))
    click.echo(f"promoted {state.canary}: production alias -> version {state.model_version}")


@canary_group.command("rollback")
@click.option("--reason", default="", help="Why (goes into the alert).")
def rollback(reason: str) -> None:
    """All traffic back to the stable revision (canaryTrafficPercent 0); alias unchanged; an alert is raised."""
    settings = get_settings()
    state = _canary(settings).rollback(AlertSink(settings), (reason,) if reason else ())
    click.echo(f"rolled back {state.canary}: all traffic on {state.stable}; production alias unchanged")


@canary_group.command("auto")
@click.option(
    "--intervals",
    type=click.IntRange(min=1),
    default=None,
    help="Windows analysed before a promotion (settings default).",
)
@click.option("--interval-s", type=click.FloatRange(min=0), default=None, help="Seconds between analyses.")
@click.option(
    "--deadline-s",
    type=click.FloatRange(min=0),
    default=None,
    help="Roll back when there is no decision by then (settings default).",
)
def auto(intervals: int | None, interval_s: float | None, deadline_s: float | None) -> None:
    """Analyse every window: roll back as soon as the canary is worse, promote after N healthy windows, roll
    back at the deadline without a decision. Production is on one revision when this ends."""
    settings = get_settings()
    outcome = run_auto(
        _canary(settings),
        Prometheus.from_settings(settings),
        Thresholds.from_settings(settings),
        intervals or settings.canary_intervals,
        settings.canary_interval_s if interval_s is None else interval_s,
        settings.canary_deadline_s if deadline_s is None else deadline_s,
        _alias_mover(settings),
        AlertSink(settings),
    )
    for number, verdict in enumerate(outcome.verdicts, 1):
        click.echo(f"window {number}: {verdict.line()}")
    click.echo(outcome.message)
    if outcome.action == "rolled_back":
        raise SystemExit(1)
