"""How this process logs in to the MLflow tracking server, which runs MLflow's basic-auth app.

A direct address gets the user and password where MLflow's REST client reads them on every request
(``MLFLOW_TRACKING_USERNAME``, ``MLFLOW_TRACKING_PASSWORD``; it sends them as ``Authorization:
Basic``). Behind the Kubernetes API server's service proxy (a build outside the cluster,
``k8s://mlflow/mlflow:5000``) ``Authorization`` carries the bearer token the API server checks, and
the API server removes that header once it has authenticated the request: the MLflow credentials
travel in :data:`FORWARDED_HEADER` instead, MLflow's own name for MLflow credentials when a proxy
holds ``Authorization`` (``mlflow.gateway.constants.MLFLOW_GATEWAY_AUTH_HEADER``), added to every
request by the client's :class:`churnops.platform.cluster_proxy.Forwarder` (see
:func:`churnops.model.registry.tracking_uri`), never through the environment. The server reads it
with :func:`churnops.platform.mlflow_server_auth.authenticate_request`.

The password is the settings' ``mlflow_password``; else the user's secret
``churnops-mlflow-password-<user>`` from the settings' secrets backend: locally the file the local
stack writes, on GKE the Secret Manager secret only that user's identity may read
(:mod:`churnops.platform.mlflow_users`). Pipeline tasks log in as their pod's service account
(``CHURNOPS_MLFLOW_USERNAME`` from ``spec.serviceAccountName``), the builds as the deployer.
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

from mlflow.gateway.constants import MLFLOW_GATEWAY_AUTH_HEADER

from churnops.platform import declaration as platform
from churnops.platform.secrets import SecretAccessDenied, SecretNotFound, secret_source
from churnops.platform.settings import Settings

log = logging.getLogger(__name__)
FORWARDED_HEADER = MLFLOW_GATEWAY_AUTH_HEADER  # "X-MLflow-Authorization"
PASSWORD_FILE = platform.MLFLOW_PASSWORD_SECRET
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
    if settings.secrets_backend == "gcp":
        secret = PASSWORD_FILE.format(user=settings.mlflow_username)
        try:
            return secret_source(settings).get(secret).decode("utf-8").strip() or None
        except (SecretNotFound, SecretAccessDenied):  # a process that never calls MLflow (the predictor)
            log.warning("no MLflow password readable", extra={"user": settings.mlflow_username, "secret": secret})
    return None


def mlflow_authorization(settings: Settings) -> str | None:
    """The ``Authorization: Basic`` value of the settings' MLflow user and password (the settings', else the
    user's secret); None when no password is known."""
    password = _password(settings)
    return None if password is None else basic_authorization(settings.mlflow_username, password)


def use_mlflow_credentials(settings: Settings) -> bool:
    """Make MLflow's clients in this process (and its children) log in to a direct address as
    ``settings.mlflow_username`` with its password (the settings', else the user's secret). False (nothing
    set) when no password is known: the environment's own ``MLFLOW_TRACKING_*`` are left as they are.
    """
    password = _password(settings)
    if password is None:
        return False
    os.environ["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_username
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    return True
