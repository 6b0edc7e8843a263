"""``k8s://<namespace>/<service>:<port>`` resolves to the API server's proxy URL with the kubeconfig's credentials,
and a forwarder sends requests there with the token, checking TLS against the kubeconfig's CA."""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _ApiServer(BaseHTTPRequestHandler):
    """An HTTPS API server answering every request with what it was sent (method, path, headers, body)."""

    def do_POST(self) -> None:  # pylint: disable=invalid-name  # http.server dispatches on do_<METHOD>
        """Answer with the request as received."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = json.dumps(
            {"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": body.decode()}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin  # http.server's
        pass


@pytest.fixture(name="https_api_server")
def fixture_https_api_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server with a certificate of its own CA; yields its URL and that CA's certificate."""
    cert, key = _certificate(tmp_path, "cluster-ca")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiServer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def _service(url: str, ca_cert: Path | None) -> cluster_proxy.ProxiedService:
    return cluster_proxy.ProxiedService(
        url=f"{url}/api/v1/namespaces/mlflow/services/mlflow:5000/proxy",
        token="build-token",
        ca_cert=str(ca_cert) if ca_cert else None,
        verify_ssl=True,
    )


def test_the_forwarder_sends_requests_on_with_the_token_verified_against_the_kubeconfigs_ca(
    https_api_server: tuple[str, Path],
) -> None:
    url, ca_cert = https_api_server
    forwarder = cluster_proxy.Forwarder(_service(url, ca_cert), {"X-MLflow-Authorization": "Basic dXNlcjpwdw=="})
    try:
        answer = requests.post(
            f"{forwarder.url}/api/2.0/mlflow/runs/create?x=1",
            headers={"Authorization": "Basic c29tZW9uZTplbHNl"},  # the caller's own: dropped
            json={"experiment_id": "1"},
            timeout=30,
        )
    finally:
        forwarder.close()
    assert answer.status_code == 200
    seen = answer.json()
    assert seen["path"] == "/api/v1/namespaces/mlflow/services/mlflow:5000/proxy/api/2.0/mlflow/runs/create?x=1"
    assert seen["headers"]["Authorization"] == "Bearer build-token"
    assert seen["headers"]["X-MLflow-Authorization"] == "Basic dXNlcjpwdw=="
    assert json.loads(seen["body"]) == {"experiment_id": "1"}


def test_the_forwarder_refuses_an_api_server_its_ca_did_not_sign(
    https_api_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = https_api_server
    other_ca, _ = _certificate(tmp_path, "another-ca")
    forwarder = cluster_proxy.Forwarder(_service(url, other_ca))
    try:
        answer = requests.post(f"{forwarder.url}/api/2.0/mlflow/runs/create", json={}, timeout=30)
    finally:
        forwarder.close()
    assert answer.status_code == 502
    assert "SSLError" in answer.text
