"""One ``POST /v2/models/<model>/infer`` through the serving REST server's ASGI infer route, in-process."""

from __future__ import annotations

from typing import Any

from serving.server import CALLER, ChurnRESTServer


async def post_infer(
    server: ChurnRESTServer, model: str, body: bytes, header_length: int | None = None, caller: str = ""
) -> tuple[int, dict[bytes, bytes], bytes]:
    """The status, headers and body the route sends for ``body`` (JSON, or the binary extension when
    ``header_length`` is given) from ``caller`` (the account the authentication middleware found)."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [
        (b"content-type", b"application/json" if header_length is None else b"application/octet-stream"),
        (b"content-length", str(len(body)).encode()),
    ]
    if header_length is not None:
        headers.append((b"inference-header-content-length", str(header_length).encode()))
    scope = {"type": "http", "method": "POST", "path": f"/v2/models/{model}/infer", "headers": headers, CALLER: caller}
    await server.infer(model, None, scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(message.get("body", b"") for message in sent[1:])
