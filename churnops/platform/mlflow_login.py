"""How this process logs in to the MLflow tracking server, which runs MLflow's basic-auth app.

A direct address gets the user and password where MLflow's REST client reads them on every request
(``MLFLOW_TRACKING_USERNAME``, ``MLFLOW_TRACKING_PASSWORD``; it sends them as ``Authorization:
Basic``). Behind the Kubernetes API server's service proxy (a build outside the cluster,
``k8s://mlflow/mlflow:5000``) ``Authorization`` carries the bearer token the API server checks, and
the API server removes that header once it has authenticated the request: the MLflow credentials
travel in :data:`FORWARDED_HEADER` instead, MLflow's own name for MLflow credentials when a proxy
holds ``Authorization`` (``mlflow.gateway.constants.MLFLOW_GATEWAY_AUTH_HEADER``), added to every
request by :class:`ForwardedCredentials` (an ``mlflow.request_header_provider`` entry point). The
server reads it with :func:`churnops.platform.mlflow_server_auth.authenticate_request`.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from mlflow.gateway.constants import MLFLOW_GATEWAY_AUTH_HEADER
from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider

from churnops.platform.settings import Settings

FORWARDED_HEADER = MLFLOW_GATEWAY_AUTH_HEADER  # "X-MLflow-Authorization"
FORWARDED_VARIABLE = "CHURNOPS_MLFLOW_FORWARDED_AUTHORIZATION"  # the header's value, for this process and its children
PASSWORD_FILE = "churnops-mlflow-password-{user}"
MLFLOW_LOGIN_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def mlflow_password_file(settings: Settings, user: str) -> Path:
    """Where the local stack keeps the MLflow password of ``user`` (0600)."""
    return settings.local_secrets_dir / PASSWORD_FILE.format(user=user)


def basic_authorization(user: str, password: str) -> str:
    """The value of an ``Authorization: Basic`` header for ``user``."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _password(settings: Settings) -> str | None:
    if settings.mlflow_password is not None:
        return settings.mlflow_password.get_secret_value() or None
    if settings.profile == "local":
        path = mlflow_password_file(settings, settings.mlflow_username)
        return (path.read_text(encoding="utf-8").strip() or None) if path.exists() else None
    return None


def use_mlflow_credentials(settings: Settings, *, forwarded: bool = False) -> bool:
    """Make MLflow's clients in this process (and its children) log in as ``settings.mlflow_username``
    with its password (the settings', else on the local profile the local stack's file).

    ``forwarded`` (the API server's proxy in between): the credentials go in :data:`FORWARDED_HEADER`
    and ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` are cleared, since MLflow would send them in
    ``Authorization`` instead of the API server's token. False (no credentials set) when no password
    is known (the environment's own ``MLFLOW_TRACKING_*`` left as they are on a direct address).
    """
    password = _password(settings)
    if forwarded:
        for variable in MLFLOW_LOGIN_VARIABLES:
            os.environ.pop(variable, None)
    if password is None:
        return False
    if forwarded:
        os.environ[FORWARDED_VARIABLE] = basic_authorization(settings.mlflow_username, password)
    else:
        os.environ.pop(FORWARDED_VARIABLE, None)
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_username
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    return True


class ForwardedCredentials(RequestHeaderProvider):
    """Adds :data:`FORWARDED_HEADER` to MLflow's requests when :func:`use_mlflow_credentials` set it."""

    def in_context(self) -> bool:
        return bool(os.environ.get(FORWARDED_VARIABLE))

    def request_headers(self) -> dict[str, str]:
        return {FORWARDED_HEADER: os.environ[FORWARDED_VARIABLE]}
