"""A build outside the cluster reaches MLflow as ``k8s://mlflow/mlflow:5000``: through the API server, with a token.

The API server takes ``Authorization`` (its bearer token) and does not pass it on, so the MLflow user's
credentials travel in ``X-MLflow-Authorization``, which the tracking server's authorization function
reads (churnops/platform/mlflow_server_auth.py): the session's MLflow runs the basic-auth app with it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException

from churnops.errors import RegistryError
from churnops.model import registry
from churnops.platform.mlflow_login import FORWARDED_HEADER, basic_authorization
from churnops.platform.settings import Settings
from tests.support.apiserver_proxy import ApiServerProxy

ADDRESS = "k8s://mlflow/mlflow:5000"
# What MLflow's REST client would read credentials or TLS settings from: resolving the address sets none
MLFLOW_CLIENT_VARIABLES = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)


@pytest.fixture(name="proxy")
def fixture_proxy(mlflow_tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServerProxy]:
    """The API server's service proxy in front of the session's real MLflow server (basic-auth app)."""
    for variable in MLFLOW_CLIENT_VARIABLES:  # none in the environment (restored after the test)
        monkeypatch.setenv(variable, "placeholder")
        monkeypatch.delenv(variable)
    with ApiServerProxy("build-token", {"mlflow/mlflow:5000": mlflow_tracking_uri}) as double:
        yield double


def through(proxy: ApiServerProxy, stack_settings: Settings, tmp_path: Path, user: str) -> Settings:
    """Settings of a build reaching the session's MLflow through ``proxy`` as MLflow user ``user``."""
    return stack_settings.model_copy(
        update={
            "mlflow_tracking_uri": ADDRESS,
            "kubeconfig": proxy.kubeconfig(tmp_path / "config"),
            "mlflow_username": user,
        }
    )


def password(stack_settings: Settings, user: str) -> str:
    """The password the local stack gave ``user``."""
    return (stack_settings.local_secrets_dir / f"churnops-mlflow-password-{user}").read_text(encoding="utf-8").strip()


def test_the_registry_is_read_and_written_through_the_proxy(
    proxy: ApiServerProxy, mlflow_tracking_uri: str, stack_settings: Settings, tmp_path: Path
) -> None:
    settings = through(proxy, stack_settings, tmp_path, "churnops-training")
    name = f"through-proxy-{uuid.uuid4().hex[:8]}"
    client = registry.use_tracking(settings)
    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        mlflow.log_param("seed", 7)
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id).version
    client.set_registered_model_alias(name, "staging", version)
    client.delete_registered_model_alias(name, "staging")
    client.set_registered_model_alias(name, "production", version)

    auth = ("churnops-training", password(stack_settings, "churnops-training"))
    direct = requests.get(  # what the server holds, asked directly
        f"{mlflow_tracking_uri}/api/2.0/mlflow/registered-models/get", params={"name": name}, auth=auth, timeout=30
    )
    assert {a["alias"]: a["version"] for a in direct.json()["registered_model"]["aliases"]} == {"production": version}
    assert {method for method, _ in proxy.seen} >= {"GET", "POST", "DELETE"}
    assert all(path == "/health" or path.startswith(("/api/", "/ajax-api/")) for _, path in proxy.seen)


def test_through_the_proxy_a_reader_cannot_move_an_alias(
    proxy: ApiServerProxy, stack_settings: Settings, tmp_path: Path
) -> None:
    trainer = registry.use_tracking(through(proxy, stack_settings, tmp_path, "churnops-training"))
    name = stack_settings.registered_model
    run = trainer.create_run(trainer.create_experiment(f"reader-{uuid.uuid4().hex[:8]}"))
    version = trainer.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id).version

    reader = registry.use_tracking(through(proxy, stack_settings, tmp_path, "churnops-scoring"))
    assert reader.get_model_version(name, version).version == version  # reads are allowed
    with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):
        reader.set_registered_model_alias(name, "production", version)
    assert registry.alias_holder(reader, name, "production") != version


def test_without_mlflow_credentials_the_proxy_route_is_refused(proxy: ApiServerProxy) -> None:
    proxied = f"{proxy.url}/api/v1/namespaces/mlflow/services/mlflow:5000/proxy/api/2.0/mlflow/registered-models/search"
    bearer = {"Authorization": "Bearer build-token"}
    anonymous = requests.get(proxied, headers=bearer, timeout=30)
    assert anonymous.status_code == 401  # the API server let it through; MLflow refused it
    wrong = requests.get(
        proxied, headers={**bearer, FORWARDED_HEADER: basic_authorization("churnops-deployer", "x")}, timeout=30
    )
    assert wrong.status_code == 401
    assert proxy.seen  # both reached MLflow


def test_credentials_the_api_server_refuses_are_a_registry_error(
    proxy: ApiServerProxy, stack_settings: Settings, tmp_path: Path
) -> None:
    settings = through(proxy, stack_settings, tmp_path, "churnops-training").model_copy(
        update={"kubeconfig": proxy.kubeconfig(tmp_path / "expired", token="expired")}
    )
    with pytest.raises(RegistryError, match="401"):
        registry.client_for(settings).search_registered_models()
    assert not proxy.seen


def test_resolving_the_address_puts_no_credential_in_the_environment(
    proxy: ApiServerProxy, stack_settings: Settings, tmp_path: Path
) -> None:
    client = registry.use_tracking(through(proxy, stack_settings, tmp_path, "churnops-training"))
    with mlflow.start_run(experiment_id=client.create_experiment(f"environment-{uuid.uuid4().hex[:8]}")):
        mlflow.log_text("logged through the proxy", "note.txt")  # artifacts too: mlflow-artifacts through it
    assert client.search_registered_models() is not None
    assert not set(MLFLOW_CLIENT_VARIABLES) & set(os.environ)
    assert "build-token" not in "".join(os.environ.values())


def test_two_mlflow_users_through_the_proxy_keep_their_own_credentials(
    proxy: ApiServerProxy, stack_settings: Settings, tmp_path: Path
) -> None:
    """A deployer and a reader in one process: building the reader's client does not make the deployer a reader."""
    name = stack_settings.registered_model
    deployer = registry.client_for(through(proxy, stack_settings, tmp_path, "churnops-deployer"))
    run = deployer.create_run(deployer.create_experiment(f"two-users-{uuid.uuid4().hex[:8]}"))
    version = deployer.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id).version
    reader = registry.client_for(through(proxy, stack_settings, tmp_path, "churnops-scoring"))

    with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):
        reader.set_registered_model_alias(name, "staging", version)
    deployer.set_registered_model_alias(name, "staging", version)  # still the deployer
    assert registry.alias_holder(reader, name, "staging") == version
    deployer.delete_registered_model_alias(name, "staging")


def test_the_local_forwarder_serves_only_its_own_address(
    proxy: ApiServerProxy, stack_settings: Settings, tmp_path: Path
) -> None:
    address = registry.tracking_uri(through(proxy, stack_settings, tmp_path, "churnops-training"))
    assert address.startswith("http://127.0.0.1:")
    assert requests.get(f"{address}/health", timeout=30).status_code == 200
    port_only = address.rsplit("/", 1)[0]  # without the forwarder's key: another local process guessing
    assert requests.get(f"{port_only}/health", timeout=30).status_code == 404
    assert requests.get(f"{port_only}/api/2.0/mlflow/registered-models/search", timeout=30).status_code == 404
