"""A small local REST double of the Secret Manager v1 API, for tests with the real client.

It serves ``GET /v1/projects/{project}/secrets/{secret}/versions/{version}:access`` (``latest``
or a version number) on 127.0.0.1, answering like Secret Manager: the payload as base64 with its
CRC32C as a decimal string, and errors in Google's JSON error format.

    with SecretManagerDouble() as double:
        double.add_version("proj", "key", b"secret bytes")
        settings = Settings(secrets_backend="gcp", secret_manager_endpoint=double.url, gcp_project="proj")
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import google_crc32c
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tests.support.wsgi_double import WsgiDouble

_ERROR_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "UNIMPLEMENTED"}


@dataclass
class _Version:
    data: bytes
    crc32c: int


class SecretManagerDouble(WsgiDouble):
    """Secret versions held in memory, served over HTTP on a free loopback port (``url``: the endpoint
    to give the client, e.g. ``http://127.0.0.1:41234``)."""

    name = "secret-manager-double"

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], list[_Version]] = {}
        self.accessed: list[str] = []
        self._routes = Map(
            [Rule("/v1/projects/<project>/secrets/<secret>/versions/<version>:access", endpoint="access")]
        )

    def add_version(self, project: str, secret: str, data: bytes, crc32c: int | None = None) -> int:
        """Add a version holding ``data`` and return its number.

        ``crc32c`` overrides the checksum sent with it (to simulate corruption).
        """
        checksum = google_crc32c.value(data) if crc32c is None else crc32c
        versions = self.secrets.setdefault((project, secret), [])
        versions.append(_Version(data, checksum))
        return len(versions)

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            _, arguments = self._routes.bind_to_environ(environ).match()
            if request.method != "GET":
                raise MethodNotAllowed(valid_methods=["GET"])
            response = self._access(**arguments)
        except HTTPException as error:
            code = error.code or 500
            message = error.description if code != 404 else f"{request.path} not found"
            response = _error(code, message)
        return response(environ, start_response)

    def _access(self, project: str, secret: str, version: str) -> Response:
        versions = self.secrets.get((project, secret))
        if not versions:
            return _error(404, f"Secret [projects/{project}/secrets/{secret}] not found or has no versions.")
        if version == "latest":
            number = len(versions)
        elif version.isdigit() and 1 <= int(version) <= len(versions):
            number = int(version)
        elif version.isdigit():
            return _error(404, f"Secret Version [projects/{project}/secrets/{secret}/versions/{version}] not found.")
        else:
            return _error(400, f"Invalid version {version!r}.")
        found = versions[number - 1]
        name = f"projects/{project}/secrets/{secret}/versions/{number}"
        self.accessed.append(name)
        return _json(
            200,
            {
                "name": name,
                "payload": {"data": base64.b64encode(found.data).decode("ascii"), "dataCrc32c": str(found.crc32c)},
            },
        )


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; charset=UTF-8")


def _error(status: int, message: str) -> Response:
    status_name = _ERROR_STATUS.get(status, "UNKNOWN")
    return _json(status, {"error": {"code": status, "message": message, "status": status_name}})
