"""In-cluster services reached from outside the cluster, through the Kubernetes API server's service proxy.

A build in Cloud Build's private pool reaches the cluster's control plane (with the kubeconfig the
build writes, see ``.ci/kubeconfig``) but cannot resolve ``*.svc.cluster.local``. A service address
``k8s://<namespace>/<service>:<port>`` (for ``CHURNOPS_KFP_HOST`` or
``CHURNOPS_MLFLOW_TRACKING_URI``) names a service reached at
``https://<API server>/api/v1/namespaces/<namespace>/services/<service>:<port>/proxy``, with the
kubeconfig's bearer token and CA certificate. Nothing is exposed outside the cluster for it: who
may reach a service is Kubernetes RBAC, ``get`` and ``create`` (and, for MLflow's alias deletion,
``delete``) on ``services/proxy`` for that one service (infra/pulumi grants the deployer exactly
these, in ``kubeflow`` and ``mlflow``). A client configured only through process-wide settings (MLflow's)
is given a :class:`Forwarder`, a loopback address holding the credentials, instead.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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


# Hop-by-hop headers (RFC 9110 7.6.1) and those the forwarder sets itself
_NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
)


class Forwarder:
    """A loopback address for one proxied service, holding the credentials to reach it.

    What is sent to :attr:`url` (``http://127.0.0.1:<port>/<random key>``) followed by a path goes to
    the service's API-server URL followed by that path, with the kubeconfig's bearer token in
    ``Authorization`` and the API server's certificate checked against the kubeconfig's CA; ``headers``
    (for MLflow, its user's ``X-MLflow-Authorization``) are added to every request, and a caller's own
    ``Authorization`` is dropped. A client that can only be configured through process-wide settings
    (MLflow's REST client reads its token and CA certificate from the environment) is pointed at
    :attr:`url` instead, so none of it enters the environment and two forwarders with different
    credentials serve one process side by side. The random key in the path keeps other local processes
    from using the credentials; the server runs in a daemon thread until :meth:`close`.
    """

    def __init__(self, service: ProxiedService, headers: Mapping[str, str] | None = None) -> None:
        self.service = service
        self.key = secrets.token_urlsafe(24)
        self.session = requests.Session()
        self.session.trust_env = False  # the kubeconfig decides where and how, not HTTPS_PROXY or REQUESTS_CA_BUNDLE
        self.session.verify = (service.ca_cert or True) if service.verify_ssl else False
        self.added = {**(headers or {}), **({"Authorization": f"Bearer {service.token}"} if service.token else {})}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardingHandler)
        self.server.daemon_threads = True
        setattr(self.server, "forwarder", self)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{self.key}"
        threading.Thread(target=self.server.serve_forever, name="cluster-proxy-forwarder", daemon=True).start()

    def upstream(self, path: str) -> str | None:
        """The service URL for a request path under :attr:`url`, or None for any other path."""
        prefix = f"/{self.key}"
        if path != prefix and not path.startswith((prefix + "/", prefix + "?")):
            return None
        return self.service.url + path[len(prefix) :]

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
        self.session.close()


class _ForwardingHandler(BaseHTTPRequestHandler):
    """One request to a :class:`Forwarder`: its method, path, headers and body, to the service."""

    def _forwarder(self) -> Forwarder:
        forwarder: Forwarder = getattr(self.server, "forwarder")
        return forwarder

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers, up to the blank line
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self) -> None:
        forwarder = self._forwarder()
        target = forwarder.upstream(self.path)
        if target is None:
            self.send_error(404)
            return
        body = self._body()
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in _NOT_FORWARDED | {"authorization", "content-length"}
        }
        headers.update(forwarder.added)
        try:
            answer = forwarder.session.request(
                self.command, target, headers=headers, data=body, stream=True, allow_redirects=False, timeout=300
            )
        except requests.RequestException as exc:
            self.send_error(502, f"the Kubernetes API server is unreachable ({type(exc).__name__})")
            return
        with answer:
            self.send_response_only(answer.status_code, answer.reason)
            for name, value in answer.raw.headers.items():
                if name.lower() not in _NOT_FORWARDED:
                    self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                for chunk in answer.raw.stream(1 << 16, decode_content=False):
                    self.wfile.write(chunk)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward  # http.server dispatches on do_<METHOD>

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin  # http.server's signature
        """Quiet: the client logs what it does."""
