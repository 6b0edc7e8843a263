"""The Kubernetes API server's service proxy, as a double: ``/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/...``.

Like the real one it answers 401 without the bearer token it expects, 403 for a service the
caller has no ``services/proxy`` grant on (here: any service not given), and hands the rest of the
path, method, query, headers (without ``Authorization``) and body to the backend: a WSGI app in
this process (a double) or a URL (a real local server, forwarded over HTTP).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
import yaml
from werkzeug.wrappers import Request, Response

from tests.support.wsgi_double import WsgiDouble

PROXY_PATH = re.compile(r"/api/v1/namespaces/(?P<namespace>[^/]+)/services/(?P<service>[^/]+)/proxy(?P<rest>/.*)?")
Backend = Callable[..., Any] | str


class ApiServerProxy(WsgiDouble):
    """Serves ``backends`` (``"<namespace>/<service>:<port>"`` -> WSGI app or base URL) to bearer ``token``."""

    name = "apiserver-proxy"

    def __init__(self, token: str, backends: dict[str, Backend]) -> None:
        super().__init__()
        self.token = token
        self.backends = backends
        self.seen: list[tuple[str, str]] = []  # (method, full path) of every request that reached a backend

    def kubeconfig(self, path: Path, token: str | None = None) -> Path:
        """A kubeconfig whose one user holds ``token`` (default: the expected one), like the build writes."""
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "gke",
                    "clusters": [{"name": "gke", "cluster": {"server": self.url}}],
                    "users": [{"name": "cloudbuild", "user": {"token": token or self.token}}],
                    "contexts": [{"name": "gke", "context": {"cluster": "gke", "user": "cloudbuild"}}],
                }
            )
        )
        return path

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        request = Request(environ)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return Response(
                '{"kind":"Status","code":401,"reason":"Unauthorized"}', 401, content_type="application/json"
            )(environ, start_response)
        match = PROXY_PATH.fullmatch(request.path)
        backend = self.backends.get(f"{match['namespace']}/{match['service']}") if match else None
        if match is None or backend is None:
            return Response('{"kind":"Status","code":403,"reason":"Forbidden"}', 403, content_type="application/json")(
                environ, start_response
            )
        rest = match["rest"] or "/"
        self.seen.append((request.method, rest))
        if isinstance(backend, str):
            return self.forward(backend, rest, request)(environ, start_response)
        inner = dict(environ, PATH_INFO=rest, SCRIPT_NAME="")
        inner.pop("HTTP_AUTHORIZATION", None)
        return backend(inner, start_response)

    @staticmethod
    def forward(base: str, path: str, request: Request) -> Response:
        """``request`` sent on to ``base`` + ``path`` over HTTP (without the caller's credentials); the answer."""
        headers = {
            key: value
            for key, value in request.headers.items()
            if key.lower() not in ("authorization", "host", "content-length")
        }
        answer = requests.request(
            request.method,
            f"{base.rstrip('/')}{path}",
            params=request.args,
            data=request.get_data(),
            headers=headers,
            timeout=30,
        )
        return Response(answer.content, answer.status_code, content_type=answer.headers.get("Content-Type"))
