"""The MLflow tracking server's users, what each may do, and how they are created.

The server runs MLflow's basic-auth app with ``default_permission = READ``: every user reads
everything and writes what it creates (MLflow gives a resource's creator ``MANAGE`` on it). On the
registered model, only the users in :data:`ALIAS_MOVERS` hold ``MANAGE``: the training pipeline
(registers versions, sets ``candidate``) and the deployer (promotes, rolls back). The auth app lets
only ``MANAGE`` remove an alias (a promotion does), which also lets them delete the model and grant
on it; nobody else can move an alias or register a version.

The users themselves are declared in :data:`churnops.platform.declaration.MLFLOW_USERS` (the Pulumi
program reads them there to create each password secret and its one reader): each is named after the
Google service account of the identity that logs in as it on the cluster, and its password is the
secret :func:`password_secret`.

:func:`provision` creates the users and the registered model and grants the alias movers, through
MLflow's auth REST routes, as the admin; it is idempotent (an existing user gets the given password
again). The local stack calls it at every ``up``; on the cluster a Job runs this module
(``python -m churnops.platform.mlflow_users``) with the passwords mounted from a Secret.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

import requests
from mlflow.server.auth import routes as auth_routes
from mlflow.server.auth.permissions import MANAGE, RESOURCE_TYPE_REGISTERED_MODEL

from churnops.errors import ServiceUnavailable
from churnops.platform import declaration as platform

log = logging.getLogger(__name__)

ADMIN = platform.MLFLOW_ADMIN
ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
MlflowUser = platform.MlflowUser
USERS: tuple[MlflowUser, ...] = platform.MLFLOW_USERS
USER_NAMES: tuple[str, ...] = tuple(user.name for user in USERS)
ALIAS_MOVERS: tuple[str, ...] = tuple(user.name for user in USERS if user.moves_aliases)
# The users the cluster's bootstrap creates: those an identity there logs in as.
CLUSTER_USERS: tuple[str, ...] = tuple(user.name for user in USERS if user.identities)
password_secret = platform.mlflow_password_secret


def user_of(identity: str) -> MlflowUser | None:
    """The MLflow user the declared ``identity`` logs in as, if any."""
    return next((user for user in USERS if identity in user.identities), None)


class ProvisionRefused(ServiceUnavailable):
    """The tracking server refused to create a user, the registered model or a grant."""


def provision(
    base_url: str,
    admin_auth: tuple[str, str],
    passwords: Mapping[str, str],
    registered_model: str = platform.REGISTERED_MODEL,
    timeout: float = 30.0,
) -> None:
    """Create each user of ``passwords`` (user -> password; each one of :data:`USERS`) with its password,
    the registered model, and ``MANAGE`` on it for the alias movers among them. Idempotent: a user that
    exists gets the given password again, an existing model or grant is left as it is."""
    unknown = set(passwords) - set(USER_NAMES)
    if unknown:
        raise ValueError(f"not MLflow users of the platform: {sorted(unknown)}; known: {list(USER_NAMES)}")
    session = requests.Session()
    session.auth = admin_auth

    def call(method: str, path: str, body: dict[str, str], tolerated: str = ALREADY_EXISTS) -> bool:
        """True when done, False when the server answered ``tolerated``; anything else refuses."""
        answer = session.request(method, f"{base_url.rstrip('/')}{path}", json=body, timeout=timeout)
        if answer.ok:
            return True
        if tolerated in answer.text:
            return False
        raise ProvisionRefused(f"MLflow refused {method} {path} ({answer.status_code}): {answer.text[:200]}")

    for user, password in passwords.items():
        created = call("POST", auth_routes.CREATE_USER, {"username": user, "password": password})
        if not created:
            call("PATCH", auth_routes.UPDATE_USER_PASSWORD, {"username": user, "password": password})
    call("POST", "/api/2.0/mlflow/registered-models/create", {"name": registered_model})
    for user in ALIAS_MOVERS:
        if user in passwords:
            call(
                "POST",
                auth_routes.GRANT_USER_PERMISSION,
                {
                    "username": user,
                    "resource_type": RESOURCE_TYPE_REGISTERED_MODEL,
                    "resource_id": registered_model,
                    "permission": MANAGE.name,
                },
            )
    log.info("mlflow users provisioned", extra={"users": sorted(passwords), "model": registered_model})


def read_passwords(folder: Path, users: tuple[str, ...]) -> dict[str, str]:
    """Each of ``users``' password from the file named :func:`password_secret` in ``folder`` (a mounted Secret)."""
    passwords = {}
    for user in users:
        path = folder / password_secret(user)
        if not path.is_file():
            raise FileNotFoundError(f"no password for MLflow user {user}: {path} is missing")
        passwords[user] = path.read_text(encoding="utf-8").strip()
    return passwords


def main(argv: list[str] | None = None) -> int:
    """The cluster's bootstrap: provision :data:`CLUSTER_USERS` with the passwords under ``--passwords``."""
    parser = argparse.ArgumentParser(prog="python -m churnops.platform.mlflow_users", description=main.__doc__)
    parser.add_argument("--url", default=platform.MLFLOW.url, help="the tracking server")
    parser.add_argument("--passwords", type=Path, required=True, help="folder of files named after the secrets")
    parser.add_argument("--registered-model", default=platform.REGISTERED_MODEL)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    admin_password = read_passwords(args.passwords, (ADMIN,))[ADMIN]
    provision(args.url, (ADMIN, admin_password), read_passwords(args.passwords, CLUSTER_USERS), args.registered_model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
