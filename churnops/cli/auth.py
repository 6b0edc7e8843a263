"""``churnops auth token``: a bearer token for calling the model server or the transformer by hand.

Locally the token is signed by the local key the servers trust (``churnops.platform.auth``); on GKE it is
the Google ID token of the Application Default Credentials (a person's ``gcloud auth`` or a workload's
identity), which the server accepts only if that account is among its callers.
"""

from __future__ import annotations

import click

from churnops.platform.auth import TokenSource
from churnops.platform.settings import get_settings


@click.group("auth")
def auth_group() -> None:
    """Credentials for the churnops services."""


@auth_group.command("token")
@click.option(
    "--service",
    type=click.Choice(["predictor", "transformer"]),
    default="predictor",
    show_default=True,
    help="The service whose audience the token names.",
)
@click.option("--account", default=None, help="Local profile: the account the token names (default: client_account).")
def token_command(service: str, account: str | None) -> None:
    """Print a bearer token for SERVICE (send it as ``Authorization: Bearer <token>``)."""
    settings = get_settings()
    audience = settings.predictor_audience if service == "predictor" else settings.transformer_audience
    click.echo(TokenSource(settings, audience, account or settings.client_account).token())
