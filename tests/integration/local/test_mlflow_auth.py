"""The local stack's MLflow refuses anonymous callers, lets every workload user read, and lets only the
training pipeline and the deployer move the registered model's aliases (MLflow's basic-auth app)."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.server.auth import routes as auth_routes

from churnops.platform import mlflow_users
from churnops.platform.mlflow_login import mlflow_password_file
from churnops.platform.settings import Settings

API = "/api/2.0/mlflow"


def login(settings: Settings, user: str) -> tuple[str, str]:
    """``user`` and the password the local stack gave it."""
    return user, mlflow_password_file(settings, user).read_text(encoding="utf-8").strip()


@pytest.fixture(scope="module", name="version")
def fixture_version(mlflow_tracking_uri: str, stack_settings: Settings) -> str:
    """A version of the platform's registered model, registered by the training user (the session's)."""
    client = MlflowClient(mlflow_tracking_uri, mlflow_tracking_uri)
    experiment = client.create_experiment(f"auth-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment)
    created = client.create_model_version(
        stack_settings.registered_model, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    return str(created.version)


def test_anonymous_callers_can_neither_write_nor_read(mlflow_tracking_uri: str) -> None:
    create = requests.post(f"{mlflow_tracking_uri}{API}/experiments/create", json={"name": "anonymous"}, timeout=30)
    search = requests.get(f"{mlflow_tracking_uri}{API}/registered-models/search", timeout=30)
    assert create.status_code == search.status_code == 401
    assert create.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.get(f"{mlflow_tracking_uri}/health", timeout=30).status_code == 200  # the probe stays open


def test_a_wrong_password_is_refused(mlflow_tracking_uri: str) -> None:
    reply = requests.get(
        f"{mlflow_tracking_uri}{API}/registered-models/search", auth=("churnops-deployer", "guess"), timeout=30
    )
    assert reply.status_code == 401


@pytest.mark.parametrize("user", ["churnops-training", "churnops-deployer"])
def test_the_training_pipeline_and_the_deployer_move_aliases(
    mlflow_tracking_uri: str, stack_settings: Settings, version: str, user: str
) -> None:
    reply = requests.post(
        f"{mlflow_tracking_uri}{API}/registered-models/alias",
        auth=login(stack_settings, user),
        json={"name": stack_settings.registered_model, "alias": "staging", "version": version},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert (
        MlflowClient(mlflow_tracking_uri, mlflow_tracking_uri)
        .get_model_version_by_alias(stack_settings.registered_model, "staging")
        .version
        == version
    )
    removed = requests.delete(  # a promotion removes the alias it moved the model from
        f"{mlflow_tracking_uri}{API}/registered-models/alias",
        auth=login(stack_settings, user),
        json={"name": stack_settings.registered_model, "alias": "staging"},
        timeout=30,
    )
    assert removed.status_code == 200, removed.text


@pytest.mark.parametrize("user", ["churnops-scoring", "churnops-purge", "churnops-serving"])
def test_other_workloads_read_the_registry_but_cannot_move_an_alias_or_register(
    mlflow_tracking_uri: str, stack_settings: Settings, version: str, user: str
) -> None:
    auth = login(stack_settings, user)
    name = stack_settings.registered_model
    read = requests.get(
        f"{mlflow_tracking_uri}{API}/registered-models/get", params={"name": name}, auth=auth, timeout=30
    )
    assert read.status_code == 200
    move = requests.post(
        f"{mlflow_tracking_uri}{API}/registered-models/alias",
        auth=auth,
        timeout=30,
        json={"name": name, "alias": "production", "version": version},
    )
    assert move.status_code == 403
    candidate = {"name": name, "alias": "candidate", "version": version}
    trainer = login(stack_settings, "churnops-training")
    assert requests.post(
        f"{mlflow_tracking_uri}{API}/registered-models/alias", auth=trainer, json=candidate, timeout=30
    ).ok
    remove = requests.delete(
        f"{mlflow_tracking_uri}{API}/registered-models/alias",
        auth=auth,
        timeout=30,
        json={"name": name, "alias": "candidate"},
    )
    assert remove.status_code == 403
    assert (
        MlflowClient(mlflow_tracking_uri, mlflow_tracking_uri).get_model_version_by_alias(name, "candidate").version
        == version
    )
    register = requests.post(
        f"{mlflow_tracking_uri}{API}/model-versions/create",
        auth=auth,
        timeout=30,
        json={"name": name, "source": "runs:/0/model"},
    )
    assert register.status_code == 403
    with pytest.raises(MlflowException):
        MlflowClient(mlflow_tracking_uri, mlflow_tracking_uri).get_model_version_by_alias(
            name, "production"
        )  # nothing moved


def test_every_local_password_is_private(stack_settings: Settings) -> None:
    for user in (mlflow_users.ADMIN, *mlflow_users.USER_NAMES):
        path = mlflow_password_file(stack_settings, user)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_text().strip()) >= 24


def test_the_session_logs_in_through_the_library(mlflow_tracking_uri: str) -> None:
    mlflow.set_tracking_uri(mlflow_tracking_uri)
    assert mlflow.search_experiments()  # the credentials the fixture set through use_mlflow_credentials


def _model_permission(base: str, admin: tuple[str, str], user: str, model: str) -> str:
    reply = requests.get(
        f"{base}{auth_routes.GET_USER_PERMISSION}",
        params={"username": user, "resource_type": "registered_model", "resource_id": model},
        auth=admin,
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["permission"])


def test_provisioning_again_leaves_exactly_the_modules_users_and_permissions(
    mlflow_tracking_uri: str, stack_settings: Settings
) -> None:
    """The provisioning the cluster's bootstrap runs (churnops.platform.mlflow_users), run again against the
    real server: idempotent, and the server's users and registered-model permissions are the module's."""
    admin = login(stack_settings, mlflow_users.ADMIN)
    passwords = dict(login(stack_settings, user) for user in mlflow_users.USER_NAMES)
    model = stack_settings.registered_model
    mlflow_users.provision(mlflow_tracking_uri, admin, passwords, model)
    mlflow_users.provision(mlflow_tracking_uri, admin, passwords, model)
    listed = requests.get(f"{mlflow_tracking_uri}{auth_routes.LIST_USERS}", auth=admin, timeout=30)
    assert listed.status_code == 200, listed.text
    assert {user["username"] for user in listed.json()["users"]} == {mlflow_users.ADMIN, *mlflow_users.USER_NAMES}
    expected = {user.name: "MANAGE" if user.moves_aliases else "READ" for user in mlflow_users.USERS}
    assert {user: _model_permission(mlflow_tracking_uri, admin, user, model) for user in expected} == expected
    assert set(mlflow_users.ALIAS_MOVERS) == {"churnops-training", "churnops-deployer"}
    for user, password in passwords.items():  # every password still logs in
        assert (
            requests.get(
                f"{mlflow_tracking_uri}{API}/experiments/search",
                params={"max_results": 1},
                auth=(user, password),
                timeout=30,
            ).status_code
            == 200
        )


def test_provisioning_a_user_the_platform_does_not_declare_is_refused(
    mlflow_tracking_uri: str, stack_settings: Settings
) -> None:
    admin = login(stack_settings, mlflow_users.ADMIN)
    with pytest.raises(ValueError, match="not MLflow users"):
        mlflow_users.provision(mlflow_tracking_uri, admin, {"someone": "x" * 24})


def test_the_clusters_bootstrap_creates_the_cluster_users_from_mounted_password_files(
    mlflow_tracking_uri: str, stack_settings: Settings, tmp_path: Path
) -> None:
    """``python -m churnops.platform.mlflow_users`` (the cluster's Job) reads the files its Secret mounts and
    provisions every user an identity logs in as on the cluster, whose passwords then work."""
    admin = login(stack_settings, mlflow_users.ADMIN)
    (tmp_path / mlflow_users.password_secret(mlflow_users.ADMIN)).write_text(admin[1] + "\n", encoding="utf-8")
    for user in mlflow_users.CLUSTER_USERS:
        (tmp_path / mlflow_users.password_secret(user)).write_text(login(stack_settings, user)[1], encoding="utf-8")
    assert mlflow_users.main(["--url", mlflow_tracking_uri, "--passwords", str(tmp_path)]) == 0
    assert set(mlflow_users.CLUSTER_USERS) == set(mlflow_users.USER_NAMES) - {"churnops-serving"}
    for user in mlflow_users.CLUSTER_USERS:
        assert requests.get(
            f"{mlflow_tracking_uri}{API}/registered-models/get",
            params={"name": stack_settings.registered_model},
            auth=login(stack_settings, user),
            timeout=30,
        ).ok
    (tmp_path / mlflow_users.password_secret("churnops-purge")).unlink()
    with pytest.raises(FileNotFoundError, match="churnops-purge"):
        mlflow_users.main(["--url", mlflow_tracking_uri, "--passwords", str(tmp_path)])
