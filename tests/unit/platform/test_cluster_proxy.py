"""``k8s://<namespace>/<service>:<port>`` resolves to the API server's proxy URL with the kubeconfig's credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnops.errors import ConfigurationError
from churnops.platform import cluster_proxy
from tests.support.apiserver_proxy import ApiServerProxy


def test_a_service_address_becomes_the_proxy_url_with_the_kubeconfig_token(tmp_path: Path) -> None:
    with ApiServerProxy("t0ken", {}) as proxy:
        kubeconfig = proxy.kubeconfig(tmp_path / "config")
        service = cluster_proxy.resolve("k8s://kubeflow/ml-pipeline:8888", kubeconfig)
        assert service.url == f"{proxy.url}/api/v1/namespaces/kubeflow/services/ml-pipeline:8888/proxy"
    assert service.token == "t0ken"


@pytest.mark.parametrize(
    "address",
    [
        "k8s://kubeflow/ml-pipeline",
        "k8s://kubeflow/ml-pipeline:8888/apis",
        "k8s://Kubeflow/ml-pipeline:8888",
        "http://ml-pipeline:8888",
    ],
)
def test_anything_else_is_refused_with_the_expected_form(address: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="k8s://<namespace>/<service>:<port>"):
        cluster_proxy.resolve(address, tmp_path / "unused")


def test_without_a_kubeconfig_the_error_says_where_one_is_looked_for(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no kubeconfig could be loaded.*KUBECONFIG"):
        cluster_proxy.resolve("k8s://mlflow/mlflow:5000", tmp_path / "missing")


def test_only_k8s_addresses_are_proxied() -> None:
    assert cluster_proxy.is_proxied("k8s://mlflow/mlflow:5000")
    assert not cluster_proxy.is_proxied("http://mlflow.mlflow.svc.cluster.local:5000")
    assert not cluster_proxy.is_proxied(None)
