"""``churnops deploy``: put a model server release in staging or production (see docs/deployment.md).

A failure (render, API refusal, readiness timeout, smoke test) is a domain error: the CLI prints it
as one line and exits with status 2.
"""

from __future__ import annotations

import click

from churnops.deploy import kube, release
from churnops.deploy.canary import Canary
from churnops.deploy.render import ENVIRONMENTS, Environment, Release
from churnops.platform.alerts import AlertSink
from churnops.platform.settings import Settings, get_settings


def cluster_for(settings: Settings) -> kube.Cluster:
    """The cluster of the settings' kubeconfig context (in-cluster identity when none is set)."""
    return kube.Cluster(kube.api_client(settings), settings.deploy_field_manager)


@click.command("deploy")
@click.option("--env", "env", type=click.Choice(ENVIRONMENTS), required=True, help="Target environment.")
@click.option("--image", required=True, help="Serving image digest (sha256:...) or NAME@sha256:... reference.")
@click.option("--model-uri", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION or a storage URI.")
@click.option("--model-version", default=None, help="Registry version of that model (checked by the smoke test).")
@click.option("--percent", type=click.IntRange(0, 100), default=None, help="Production only: canary traffic share.")
@click.option(
    "--bootstrap",
    is_flag=True,
    help="Also apply the platform objects: Namespace, NetworkPolicies, PodDisruptionBudgets, PodMonitoring "
    "(platform administrators).",
)
@click.option("--smoke-url", default=None, help="Smoke-test this URL instead of the revision's own.")
def deploy_command(
    env: Environment,  # click.Choice(ENVIRONMENTS) admits only these
    image: str,
    model_uri: str,
    model_version: str | None,
    percent: int | None,
    bootstrap: bool,
    smoke_url: str | None,
) -> None:
    """Render the overlay, apply it (server-side), wait for Ready, smoke-test; one line, non-zero on failure."""
    settings = get_settings()
    model_uri, model_version = release.resolve_model(settings, model_uri, model_version)
    if env == "production" and percent is not None and 0 < percent < 100 and not bootstrap and not smoke_url:
        # a production canary: started (and rolled back on any failure, with an alert) as `canary start` does
        state = Canary(settings, cluster_for(settings)).start(
            percent, model_uri, model_version, AlertSink(settings), image=image
        )
        click.echo(
            f"canary {state.canary} takes {state.canary_percent}% of production; stable {state.stable}; "
            "both revisions passed the smoke test"
        )
        return
    wanted = Release(env, image, model_uri, model_version, canary_percent=percent)
    report = release.deploy(settings, cluster_for(settings), wanted, bootstrap=bootstrap, smoke_url=smoke_url)
    click.echo(report.line())
