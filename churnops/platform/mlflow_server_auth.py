"""The MLflow tracking server's authorization function (``authorization_function`` of its basic-auth app).

MLflow's own function reads the user and password from ``Authorization`` only. A request through the
Kubernetes API server's service proxy has lost that header (the API server removes it after checking
its own bearer token), so the client sends the same ``Basic`` credentials in ``X-MLflow-Authorization``
(:mod:`churnops.platform.mlflow_login`). This function reads that header when it is there, else
``Authorization``, and checks the credentials with MLflow's own function: the same users, passwords
and permissions either way, and the forwarded header gives a caller nothing it could not do with the
same credentials in ``Authorization``.

Imported by the tracking server process only (``mlflow server --app-name basic-auth``).
"""

from __future__ import annotations

from flask import Response, request
from mlflow.server.auth import authenticate_request_basic_auth
from werkzeug.datastructures import Authorization

from churnops.platform import declaration as platform
from churnops.platform.mlflow_login import FORWARDED_HEADER

AUTHORIZATION_FUNCTION = platform.MLFLOW_AUTHORIZATION_FUNCTION  # this module's authenticate_request


def authenticate_request() -> Authorization | Response:
    """The request's user (its credentials verified), or MLflow's 401 answer asking for them."""
    forwarded = request.headers.get(FORWARDED_HEADER)
    if forwarded:
        request.environ["HTTP_AUTHORIZATION"] = forwarded  # what MLflow's function and its permission checks read
        request.__dict__.pop("authorization", None)
    return authenticate_request_basic_auth()
