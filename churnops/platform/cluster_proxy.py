"""In-cluster services reached from outside the cluster, through the Kubernetes API server's service proxy.

A build in Cloud Build's private pool reaches the cluster's control plane (with the kubeconfig the
build writes, see ``.ci/kubeconfig``) but cannot resolve ``*.svc.cluster.local``. A service address
``k8s://<namespace>/<service>:<port>`` (for ``CHURNOPS_KFP_HOST`` or
``CHURNOPS_MLFLOW_TRACKING_URI``) names a service reached at
``https://<API server>/api/v1/namespaces/<namespace>/services/<service>:<port>/proxy``, with the
kubeconfig's bearer token and CA certificate. Nothing is exposed outside the cluster for it: who
may reach a service is Kubernetes RBAC, ``get`` and ``create`` (and, for MLflow's alias deletion,
``delete``) on ``services/proxy`` for that one service (infra/pulumi grants the deployer exactly
these, in ``kubeflow`` and ``mlflow``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import kubernetes
import requests

from churnops.errors import ConfigurationError, ServiceUnavailable

SCHEME = "k8s://"
_ADDRESS = re.compile(
    r"k8s://(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)/(?P<service>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
    r":(?P<port>[a-z0-9]([-a-z0-9]*[a-z0-9])?)/?"
)


@dataclass(frozen=True)
class ProxiedService:
    """Where and how to call one in-cluster service through the API server."""

    url: str  # https://<API server>/api/v1/namespaces/<namespace>/services/<service>:<port>/proxy
    token: str | None  # the kubeconfig user's bearer token (None for client-certificate users)
    ca_cert: str | None  # path of the API server's CA certificate
    verify_ssl: bool


def is_proxied(address: str | None) -> bool:
    """Whether ``address`` is a ``k8s://`` service address."""
    return bool(address) and str(address).startswith(SCHEME)


def resolve(address: str, kubeconfig: Path | None = None, context: str | None = None) -> ProxiedService:
    """The API-server URL and credentials for ``k8s://<namespace>/<service>:<port>``, from the kubeconfig."""
    match = _ADDRESS.fullmatch(address)
    if match is None:
        raise ConfigurationError(f"{address!r} is not a service address: use k8s://<namespace>/<service>:<port>")
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_kube_config(
            config_file=str(kubeconfig) if kubeconfig else None, context=context, client_configuration=configuration
        )
    except (kubernetes.config.ConfigException, OSError) as exc:
        raise ConfigurationError(
            f"{address} is reached through the Kubernetes API server, and no kubeconfig "
            f"could be loaded (KUBECONFIG, CHURNOPS_KUBE_CONTEXT): {exc}"
        ) from None
    bearer = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
    token = bearer.removeprefix("Bearer ").strip() if bearer else None
    url = (
        f"{configuration.host.rstrip('/')}/api/v1/namespaces/{match['namespace']}/services/"
        f"{match['service']}:{match['port']}/proxy"
    )
    return ProxiedService(
        url=url, token=token or None, ca_cert=configuration.ssl_ca_cert, verify_ssl=bool(configuration.verify_ssl)
    )


REFUSALS = {
    401: "the API server did not accept the kubeconfig's credentials (expired or not this caller's token)",
    403: "the caller may not reach this service (RBAC: get/create on services/proxy for it)",
    404: "the API server has no such service or port",
    503: "the service has no ready endpoint",
}


def probe(service: ProxiedService, path: str, name: str, timeout_s: float = 10.0) -> None:
    """GET ``path`` of the service once; a clear :class:`ServiceUnavailable` when the API server refuses.

    Clients retry some refusals for a long time (``kfp.Client`` polls its health check five times,
    5 s apart, then says only "TimeoutError"): one request first says why at once.
    """
    headers = {"Authorization": f"Bearer {service.token}"} if service.token else {}
    verify: bool | str = (service.ca_cert or True) if service.verify_ssl else False
    try:
        answer = requests.get(f"{service.url}{path}", headers=headers, verify=verify, timeout=timeout_s)
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"{name}: the Kubernetes API server is unreachable ({type(exc).__name__})") from exc
    if answer.status_code in REFUSALS:
        raise ServiceUnavailable(
            f"{name} answered {answer.status_code} through the Kubernetes API server: {REFUSALS[answer.status_code]}"
        )
