"""A WSGI app served on 127.0.0.1 in a background thread: the shared lifecycle of the HTTP doubles."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    """No access log: the doubles record what they need themselves."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing."""


class WsgiDouble:
    """Subclasses implement :meth:`wsgi`; ``with double:`` serves it on a free loopback port."""

    name = "double"

    def __init__(self) -> None:
        self._http: tuple[BaseWSGIServer, threading.Thread] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running double."""
        assert self._http is not None, "start the double first"
        return f"http://127.0.0.1:{self._http[0].server_port}"

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        """The WSGI application."""
        raise NotImplementedError

    def start(self) -> Any:
        """Serve until :meth:`stop`; returns the double."""
        server = make_server("127.0.0.1", 0, self.wsgi, threaded=True, request_handler=QuietHandler)
        worker = threading.Thread(target=server.serve_forever, name=self.name, daemon=True)
        worker.start()
        self._http = (server, worker)
        return self

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        if self._http is None:
            return
        server, worker = self._http
        self._http = None
        server.shutdown()
        server.server_close()
        worker.join(timeout=5)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
