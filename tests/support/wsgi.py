"""A WSGI application served on 127.0.0.1 in a background thread, for the API doubles."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    """No access log lines on the test output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        del code, size


class BackgroundServer:
    """Serves ``app`` on a free port of 127.0.0.1 between :meth:`start` and :meth:`stop`."""

    def __init__(self, app: Callable[..., Any], name: str) -> None:
        self._app = app
        self._name = name
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on; it must be running."""
        if self._server is None:
            raise RuntimeError(f"{self._name} is not running")
        return int(self._server.server_port)

    def start(self) -> None:
        """Listen and serve in a daemon thread."""
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
