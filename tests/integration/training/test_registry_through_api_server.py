"""A build outside the cluster reaches MLflow as ``k8s://mlflow/mlflow:5000``: through the API server, with a token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from churnops.errors import RegistryError
from churnops.model import registry
from churnops.platform.settings import Settings
from tests.support.apiserver_proxy import ApiServerProxy

ADDRESS = "k8s://mlflow/mlflow:5000"


@pytest.fixture(name="proxy")
def fixture_proxy(mlflow_tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServerProxy]:
    """The API server's service proxy in front of the session's real MLflow server."""
    for variable in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_INSECURE_TLS"):
        monkeypatch.delenv(variable, raising=False)  # what resolving the address sets, undone after the test
    with ApiServerProxy("build-token", {"mlflow/mlflow:5000": mlflow_tracking_uri}) as double:
        yield double


def test_the_registry_is_read_and_written_through_the_proxy(
    proxy: ApiServerProxy, mlflow_tracking_uri: str, tmp_path: Path
) -> None:
    settings = Settings(mlflow_tracking_uri=ADDRESS, kubeconfig=proxy.kubeconfig(tmp_path / "config"))
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

    direct = MlflowClient(mlflow_tracking_uri, registry_uri=mlflow_tracking_uri)  # what the server holds
    assert direct.get_run(run.info.run_id).data.params == {"seed": "7"}
    assert direct.get_registered_model(name).aliases == {"production": version}
    assert {method for method, _ in proxy.seen} >= {"GET", "POST", "DELETE"}
    assert all(path == "/health" or path.startswith(("/api/", "/ajax-api/")) for _, path in proxy.seen)


def test_credentials_the_api_server_refuses_are_a_registry_error(proxy: ApiServerProxy, tmp_path: Path) -> None:
    settings = Settings(mlflow_tracking_uri=ADDRESS, kubeconfig=proxy.kubeconfig(tmp_path / "config", token="expired"))
    with pytest.raises(RegistryError, match="401"):
        registry.client_for(settings).search_registered_models()
    assert not proxy.seen
