"""The model server serves only allowed callers: 401 without a valid token, 403 for an account not allowed,
the probes open to all (the gRPC side is in test_conformance's gRPC probe)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from churnops.platform.auth import PROXIED_AUTHORIZATION, mint_local_token
from churnops.platform.settings import Settings
from tests.integration.serving.conftest import MODEL_NAME, Server
from tests.integration.serving.test_bad_input import INFER, valid_body
from tests.support.auth import SETTINGS, STRANGER, TRANSFORMER, headers, token

PROTECTED = [
    ("POST", INFER),
    ("GET", f"/v2/models/{MODEL_NAME}"),
    ("GET", "/v2"),
    ("POST", f"/v1/models/{MODEL_NAME}:predict"),
    ("POST", f"/v2/repository/models/{MODEL_NAME}/unload"),
]


def call(server: Server, method: str, path: str, auth: dict[str, str] | None) -> requests.Response:
    """``method path`` with a valid V2 body, sending ``auth`` headers."""
    return requests.request(
        method, server.url(path), json=valid_body() if method == "POST" else None, headers=auth, timeout=30
    )


def refusals(server: Server, status: int) -> float:
    """churnops_auth_refusals_total for ``status``."""
    text = requests.get(server.url("/metrics"), timeout=10).text
    line = next(
        (line for line in text.splitlines() if line.startswith(f'churnops_auth_refusals_total{{status="{status}"}}')),
        None,
    )
    return float(line.split()[-1]) if line else 0.0


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[p for _, p in PROTECTED])
def test_an_anonymous_caller_gets_401_with_a_json_message(server: Server, method: str, path: str) -> None:
    before = refusals(server, 401)
    reply = call(server, method, path, None)
    assert reply.status_code == 401, reply.text
    assert "bearer token" in reply.json()["error"]
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert refusals(server, 401) == before + 1


def test_tokens_that_do_not_prove_an_identity_get_401(server: Server, tmp_path: Path) -> None:
    other_signer = mint_local_token(Settings(state_dir=tmp_path), "churnops-deployer", SETTINGS.predictor_audience)
    cases = {
        "expired": token(lifetime_s=-120),
        "for the transformer": token(audience=SETTINGS.transformer_audience),
        "signed by another key": other_signer,
        "not a JWT": "not-a-token",
    }
    for case, value in cases.items():
        reply = call(server, "POST", INFER, {"Authorization": f"Bearer {value}"})
        assert reply.status_code == 401, case
        assert value not in reply.text, case  # the token is never repeated
    assert call(server, "POST", INFER, {"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401


def test_an_account_not_allowed_gets_403(server: Server) -> None:
    before = refusals(server, 403)
    reply = call(server, "POST", INFER, headers(STRANGER))
    assert reply.status_code == 403
    assert reply.json()["error"] == "this caller is not allowed to use this service"
    assert refusals(server, 403) == before + 1


@pytest.mark.parametrize("account", ["churnops-deployer", TRANSFORMER])
def test_allowed_accounts_are_served(server: Server, account: str) -> None:
    reply = call(server, "POST", INFER, headers(account))
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["outputs"][0]["data"]) == len(valid_body()["inputs"][0]["data"])
    assert call(server, "GET", f"/v2/models/{MODEL_NAME}", headers(account)).status_code == 200


@pytest.mark.parametrize(
    "path", ["/", "/v2/health/live", "/v2/health/ready", f"/v2/models/{MODEL_NAME}/ready", "/metrics"]
)
def test_probes_and_metrics_stay_open(server: Server, path: str) -> None:
    assert requests.get(server.url(path), timeout=10).status_code == 200


def test_through_the_api_server_proxy_the_token_comes_in_its_own_header(server: Server) -> None:
    """The Kubernetes API server's service proxy consumes Authorization (its caller's credential), so the smoke
    test of a revision sends the service's token as X-Churnops-Authorization; it is verified like the other."""
    bearer = headers()["Authorization"]
    assert call(server, "POST", INFER, {PROXIED_AUTHORIZATION: bearer}).status_code == 200
    assert call(server, "POST", INFER, {PROXIED_AUTHORIZATION: headers(STRANGER)["Authorization"]}).status_code == 403
    assert call(server, "POST", INFER, {PROXIED_AUTHORIZATION: "Bearer not-a-token"}).status_code == 401
