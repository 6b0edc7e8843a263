"""``churnops canary``: start, analyse, promote or roll back the production canary, or all automatically.

Exit status: 0 done (or healthy); 1 the canary was (``auto``) or should be (``analyze``) rolled
back; 2 an operation failed (one line, as for every domain error); 3 no decision because there was
too little traffic.
"""

from __future__ import annotations

from typing import Any

import click

from churnops.cli.deploy import cluster_for
from churnops.deploy.canary import Canary, Prometheus, Thresholds, run_auto
from churnops.deploy.release import resolve_model
from churnops.platform.alerts import AlertSink
from churnops.platform.settings import Settings, get_settings
from churnops.model import registry

HOLD_EXIT = 3


def _canary(settings: Settings) -> Canary:
    return Canary(settings, cluster_for(settings))


def _alias_mover(settings: Settings) -> Any:
    def move(version: str, note: str) -> None:
        client = registry.client_for(settings)
        registry.assign_alias(client, settings.registered_model, "production", version, action="promote", note=note)

    return move


@click.group("canary")
def canary_group() -> None:
    """The production canary (KServe canaryTrafficPercent)."""


@canary_group.command("start")
@click.option("--percent", type=click.IntRange(1, 99), required=True, help="Share of traffic for the new model.")
@click.option("--model-uri", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION or a storage URI.")
@click.option("--model-version", default=None, help="Its registry version (promote moves the alias to it).")
@click.option("--image", default=None, help="Serving image digest for the canary (default: the one production runs).")
def start(percent: int, model_uri: str, model_version: str | None, image: str | None) -> None:
    """Roll a new model (and image) out to PERCENT % of production traffic."""
    settings = get_settings()
    model_uri, model_version = resolve_model(settings, model_uri, model_version)
    state = _canary(settings).start(percent, model_uri, model_version, image=image)
    click.echo(f"canary {state.canary} takes {state.canary_percent}% of production; stable {state.stable}")


@canary_group.command("analyze")
def analyze() -> None:
    """Compare the canary with the stable revision over the last window (exit 0 healthy, 1 unhealthy, 3 hold)."""
    settings = get_settings()
    state, verdict = _canary(settings).analyze(Prometheus.from_settings(settings), Thresholds.from_settings(settings))
    click.echo(f"canary {state.canary} vs {state.stable}: {verdict.line()}")
    if verdict.decision == "rollback":
        raise SystemExit(1)
    if verdict.decision == "hold":
        raise SystemExit(HOLD_EXIT)


@canary_group.command("promote")
def promote() -> None:
    """All traffic to the canary; the production alias moves to its model version."""
    settings = get_settings()
    state = _canary(settings).promote(_alias_mover(settings))
    click.echo(f"promoted {state.canary}: production alias -> version {state.model_version}")


@canary_group.command("rollback")
@click.option("--reason", default="", help="Why (goes into the alert).")
def rollback(reason: str) -> None:
    """All traffic back to the stable revision (canaryTrafficPercent 0); alias unchanged; an alert is raised."""
    settings = get_settings()
    state = _canary(settings).rollback(AlertSink(settings), (reason,) if reason else ())
    click.echo(f"rolled back {state.canary}: all traffic on {state.stable}; production alias unchanged")


@canary_group.command("auto")
@click.option("--intervals", type=click.IntRange(min=1), default=None, help="Windows to analyse (settings default).")
@click.option("--interval-s", type=click.FloatRange(min=0), default=None, help="Seconds between analyses.")
def auto(intervals: int | None, interval_s: float | None) -> None:
    """Analyse over N windows, then promote or roll back; hold (exit 3) when traffic is too low."""
    settings = get_settings()
    outcome = run_auto(
        _canary(settings),
        Prometheus.from_settings(settings),
        Thresholds.from_settings(settings),
        intervals or settings.canary_intervals,
        settings.canary_interval_s if interval_s is None else interval_s,
        _alias_mover(settings),
        AlertSink(settings),
    )
    for number, verdict in enumerate(outcome.verdicts, 1):
        click.echo(f"window {number}: {verdict.line()}")
    click.echo(outcome.message)
    if outcome.action == "rolled_back":
        raise SystemExit(1)
    if outcome.action == "held":
        raise SystemExit(HOLD_EXIT)
