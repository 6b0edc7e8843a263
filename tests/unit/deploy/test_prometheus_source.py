"""Where the canary reads its metrics: a local Prometheus, or on GKE Managed Prometheus with Google credentials."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import google.auth
import pytest
from google.auth.exceptions import DefaultCredentialsError
from google.oauth2.credentials import Credentials
from werkzeug.wrappers import Request, Response

from churnops.deploy.canary import MONITORING_READ, Prometheus
from churnops.errors import ServiceUnavailable
from churnops.platform.settings import Settings
from tests.support.wsgi_double import WsgiDouble


class QueryApi(WsgiDouble):
    """``/api/v1/query`` answering one sample, recording the Authorization header of each query."""

    name = "query-api"

    def __init__(self) -> None:
        super().__init__()
        self.authorization: list[str | None] = []

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        request = Request(environ)
        self.authorization.append(request.headers.get("Authorization"))
        body = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "4"]}]}}
        return Response(json.dumps(body), content_type="application/json")(environ, start_response)


def test_on_gke_the_default_is_managed_prometheus_of_the_project_with_google_credentials() -> None:
    gke = Settings(profile="gke", gcp_project="acme-churn")
    assert gke.prometheus_url == "https://monitoring.googleapis.com/v1/projects/acme-churn/location/global/prometheus"
    assert gke.prometheus_auth == "google"
    local = Settings()
    assert (local.prometheus_url, local.prometheus_auth) == ("http://127.0.0.1:9090", "none")
    assert Settings(profile="gke", prometheus_url="http://prometheus:9090").prometheus_url == "http://prometheus:9090"


def test_google_auth_sends_the_application_default_credentials_token(monkeypatch: pytest.MonkeyPatch) -> None:
    scopes_seen: list[Any] = []

    def default(scopes: Any = None) -> tuple[Credentials, str]:
        scopes_seen.append(scopes)
        return Credentials(token="ya29.build"), "acme-churn"

    monkeypatch.setattr(google.auth, "default", default)
    with QueryApi() as api:
        google_auth = Settings(prometheus_url=api.url, prometheus_auth="google")
        assert Prometheus.from_settings(google_auth).scalar_sum("up") == 4
        assert Prometheus.from_settings(Settings(prometheus_url=api.url)).scalar_sum("up") == 4
    assert api.authorization == ["Bearer ya29.build", None]
    assert scopes_seen == [[MONITORING_READ]]


def test_without_google_credentials_the_error_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_credentials(scopes: Any = None) -> Any:
        raise DefaultCredentialsError("Your default credentials were not found")

    monkeypatch.setattr(google.auth, "default", no_credentials)
    with pytest.raises(ServiceUnavailable, match="no Google credentials to query Prometheus"):
        Prometheus.from_settings(Settings(profile="gke", gcp_project="acme-churn"))
