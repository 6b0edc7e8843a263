"""``kserve.ModelServer`` with what production needs and the stock server lacks.

- **Binding**: the REST and gRPC servers listen on ``host`` (127.0.0.1 unless told otherwise; the
  stock server always binds every interface).
- **Strict REST infer**: ``POST /v2/models/<name>[/versions/<v>]/infer`` is answered by
  :class:`InferRoute`, an ASGI middleware in front of FastAPI's router (the hot path skips routing,
  dependency solving and request objects), which reads the body once and decodes it with
  :mod:`serving.protocol` (JSON, or the binary tensor extension when ``Inference-Header-Content-Length``
  is sent). Every bad request gets a 4xx and ``{"error": ...}``; wrong content types get 415; unknown
  models 404; a service behind the model that fails gives its 500 or 503. The route serves every
  :class:`serving.protocol.StrictModel` (the predictor, the by-customer transformer): the model
  decodes, answers and encodes the body. gRPC goes through kserve's servicer to
  :meth:`serving.predictor.ChurnPredictor.predict` and the same checks. Concurrent requests are
  scored together (:mod:`serving.batching`).
- **Model metadata** carries ``versions`` and ``parameters`` (model version, data commit, scorer).
- **Errors**: framework errors (unknown route, wrong method, request validation) are JSON
  ``{"error": ...}`` too, and a failure while scoring a valid request is a JSON 500 (counted with
  ``outcome="error"``); no response ever carries a stack trace, and no error message or log line
  repeats a value the client sent (a model name, version or content type it asked for, a field of
  the body): they can hold personal data (:mod:`serving.protocol` says how inputs are named).
- **Workers**: ``workers > 1`` runs that many REST processes (kserve's multiprocess server) on one
  socket; gRPC runs in the parent process.
- **Shutdown**: SIGTERM stops accepting, lets in-flight requests finish (up to ``grace_period``)
  and exits.
- **kserve's private members**: what this module overrides, reads or sets of kserve's is listed in
  :mod:`serving.kserve_private`, whose test fails naming any member a kserve upgrade removed or changed.
- **Authentication**: with an :class:`churnops.platform.auth.Authenticator` every route but the
  probes (``/``, ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/<name>[/versions/<v>]/ready``,
  ``/metrics``; gRPC ``ServerLive``, ``ServerReady``, ``ModelReady``) needs ``Authorization: Bearer
  <token>`` of an allowed caller (or, through the Kubernetes API server's service proxy, which
  consumes ``Authorization``, ``X-Churnops-Authorization: Bearer <token>``): without a valid token
  401 (``WWW-Authenticate: Bearer``) or UNAUTHENTICATED, a caller not allowed 403 or PERMISSION_DENIED,
  each with a message that never repeats the token. The caller's account is handed to the model with the request.
- No per-request log lines at INFO (neither kserve's timing middleware nor uvicorn's access log;
  served requests log at DEBUG); Prometheus metrics at ``/metrics`` cover requests, latency and the
  predicted probabilities.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent import futures
from typing import Any, TypeVar, overload

import grpc
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse, Response
from grpc import ServicerContext, StatusCode, aio
from grpc_interceptor.exceptions import GrpcException
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.rest.server import RESTServer
from prometheus_client import Counter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from churnops.platform.auth import PROXIED_AUTHORIZATION, Authenticator, PermissionDenied, Unauthenticated
from churnops.platform.logs import setup_logging
from churnops.platform.settings import settings_or_exit
from serving.predictor import ChurnPredictor
from serving.protocol import BadRequest, PayloadTooLarge, StrictModel, UpstreamError
from serving.untyped_bases import (
    GRPCServerInterceptor,
    KServeExceptionToStatusInterceptor,
    KServeGRPCServer,
    KServeModelServer,
    KServeRESTServer,
    KServeRESTServerMultiProcess,
)

logger = logging.getLogger("churnops.serving")

JSON_TYPES = frozenset({"application/json", ""})
BINARY_TYPES = frozenset({"application/octet-stream", "application/json", ""})
HEADER_LENGTH = b"inference-header-content-length"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
JSON_HEADERS = ((b"content-type", b"application/json"),)
_Served = TypeVar("_Served", bound=StrictModel)  # the kind of served model a route answers with
# kserve's own messages for these repeat what the client sent (a model name, a datatype, a parser error)
NOT_SERVED = "no model of that name is served here"
INTERNAL_ERROR_MESSAGE = "the model failed to score this request; the failure is logged and counted"
INTERNAL_ERROR = orjson.dumps({"error": INTERNAL_ERROR_MESSAGE})
# kserve's handler answers these with their ``reason`` (the server's words, not the request's values);
# the other errors it names (not ready, not implemented) have no ``reason`` and make it fail
HANDLED_BY_KSERVE = (InferenceError, UnsupportedProtocol, GrpcException)
NOT_READY = "the model is not ready to serve yet: retry later"
NOT_IMPLEMENTED = "this method is not implemented by this server"
REFUSED = Counter("churnops_auth_refusals", "Requests refused for want of an allowed caller, by status", ["status"])
CALLER = "churnops.caller"  # the ASGI scope key holding the authenticated caller's account
OPEN_PATHS = frozenset({"/", "/metrics", "/v2/health/live", "/v2/health/ready"})
GRPC_SERVICE = "/inference.GRPCInferenceService/"
OPEN_RPCS = frozenset(GRPC_SERVICE + name for name in ("ServerLive", "ServerReady", "ModelReady"))
NOT_V2 = (
    "the request does not follow the V2 (Open Inference) protocol: POST /v2/models/<name>/infer with "
    "one tensor per input whose datatype and contents agree"
)


def client_safe(exc: InvalidInput) -> str:
    """The message for a refused request: the project's own (which names no value), else a fixed one."""
    return str(exc) if isinstance(exc.__cause__, BadRequest) else NOT_V2


def infer_path(path: str) -> tuple[str, str | None] | None:
    """(model name, version or None) of ``/v2/models/<name>[/versions/<version>]/infer``, else None."""
    parts = path.split("/")
    if parts[:3] != ["", "v2", "models"] or parts[-1] != "infer" or not all(parts[3:-1]):
        return None
    if len(parts) == 5:
        return parts[3], None
    if len(parts) == 7 and parts[4] == "versions":
        return parts[3], parts[5]
    return None


class InferRoute:  # pylint: disable=too-few-public-methods  # an ASGI middleware is one callable
    """ASGI middleware: ``POST`` to an infer path goes to ``answer``; everything else to the app."""

    def __init__(self, app: ASGIApp, answer: Any) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            target = infer_path(scope["path"])
            if target is not None:
                await self.answer(target[0], target[1], scope, receive, send)
                return
        await self.app(scope, receive, send)


def is_probe(path: str) -> bool:
    """Whether ``path`` is a liveness/readiness probe or the metrics (open to every caller)."""
    if path in OPEN_PATHS:
        return True
    parts = path.split("/")
    return (
        parts[:3] == ["", "v2", "models"]
        and parts[-1] == "ready"
        and all(parts[3:-1])
        and (len(parts) == 5 or (len(parts) == 7 and parts[4] == "versions"))
    )


class Authenticate:  # pylint: disable=too-few-public-methods  # an ASGI middleware is one callable
    """ASGI middleware: every HTTP request but the probes needs an allowed caller's bearer token."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_probe(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # ASGI header names are lower-case bytes
        # the Kubernetes API server's service proxy consumes Authorization: the token then comes in its own header
        found = headers.get(b"authorization") or headers.get(PROXIED_AUTHORIZATION.lower().encode("latin-1"))
        authorization = found.decode("latin-1") if found is not None else None
        try:
            caller = await self.auth.caller_async(authorization)
        except (Unauthenticated, PermissionDenied) as exc:
            REFUSED.labels(str(exc.status)).inc()
            logger.log(logging.INFO if exc.status == 403 else logging.DEBUG, "request refused: %s", exc)
            challenge = ((b"www-authenticate", b'Bearer realm="churnops"'),) if exc.status == 401 else ()
            await _send(send, exc.status, orjson.dumps({"error": str(exc)}), JSON_HEADERS + challenge)
            return
        await self.app({**scope, CALLER: caller.email}, receive, send)


class AuthInterceptor(GRPCServerInterceptor):  # pylint: disable=too-few-public-methods  # one hook
    """gRPC: every RPC but the probes needs an allowed caller's ``authorization: Bearer <token>`` metadata."""

    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth

    async def intercept_service(self, continuation: Any, handler_call_details: grpc.HandlerCallDetails) -> Any:
        if handler_call_details.method in OPEN_RPCS:
            return await continuation(handler_call_details)
        authorization = next(
            (str(value) for key, value in handler_call_details.invocation_metadata or () if key == "authorization"),
            None,
        )
        try:
            await self.auth.caller_async(authorization)
        except (Unauthenticated, PermissionDenied) as exc:
            REFUSED.labels(str(exc.status)).inc()
            code = StatusCode.UNAUTHENTICATED if exc.status == 401 else StatusCode.PERMISSION_DENIED
            message = str(exc)

            async def refuse(_: Any, context: ServicerContext) -> None:
                await context.abort(code, message)

            return grpc.unary_unary_rpc_method_handler(refuse)
        return await continuation(handler_call_details)


async def _send(send: Send, status: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = JSON_HEADERS) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _infer_headers(scope: Scope) -> tuple[str, bytes, str | None]:
    """(content type without parameters, Content-Length, Inference-Header-Content-Length or None): the first of each."""
    content_type, declared, raw_length = "", b"", None
    for key, value in scope["headers"]:
        if key == b"content-type" and not content_type:
            content_type = value.decode("latin-1").split(";", 1)[0].strip().lower()
        elif key == b"content-length" and not declared:
            declared = value
        elif key == HEADER_LENGTH and raw_length is None:
            raw_length = value.decode("latin-1")
    return content_type, declared, raw_length


class UnsupportedMediaType(BadRequest):
    """A body in a content type the infer route does not take (HTTP 415)."""

    status = 415


def error(status: int, message: str, headers: dict[str, str] | None = None) -> ORJSONResponse:
    """The V2 error body."""
    return ORJSONResponse({"error": message}, status_code=status, headers=headers)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # where (positions and the request part; names the client chose are not repeated) and the error's type
    problems = "; ".join(
        f"{'.'.join(_location_part(part) for part in e.get('loc', ()))}: {e.get('type', 'invalid')}"
        for e in exc.errors()[:3]
    )
    return error(400, f"invalid request: {problems}")


def _location_part(part: Any) -> str:
    return str(part) if isinstance(part, int) or part in ("body", "query", "path", "header") else "<field>"


async def _invalid_input(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidInput)
    message = client_safe(exc)
    logger.info("bad inference request: %s", message)
    return error(400, message)


async def _model_not_found(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelNotFound)
    return error(404, NOT_SERVED)


async def _repository_disabled(model_name: str) -> Response:
    del model_name  # the client's path segment is not repeated
    return error(403, "loading and unloading models is disabled on this server (the served model stays as it is)")


class ChurnRESTServer(KServeRESTServer):
    """kserve's REST server on ``host``, with the strict infer route and JSON errors."""

    def __init__(
        self,
        *args: Any,
        host: str = "127.0.0.1",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        auth: Authenticator | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = host
        self.max_body_bytes = max_body_bytes
        self.auth = auth

    def run(self, sockets: Any = None) -> None:
        """Worker process entry (kserve's multiprocess server): the project's scrubbed logging first."""
        setup_logging(settings_or_exit())
        super().run(sockets=sockets)

    def create_application(self) -> None:
        """kserve's application, without uvicorn's access log (a line per request; served requests log at DEBUG)."""
        super().create_application()
        access = logging.getLogger("uvicorn.access")
        access.handlers = []
        access.propagate = False

    def _serves(self, kind: type) -> bool:
        return any(isinstance(m, kind) for m in self.dataplane.model_registry.get_models().values())

    def _add_middlewares(self, app: FastAPI) -> None:
        """The infer route in front of the router (none of kserve's: its timing middleware logs every request),
        and authentication in front of both."""
        if self._serves(StrictModel):
            app.add_middleware(InferRoute, answer=self.infer)
        if self.auth is not None:
            app.add_middleware(Authenticate, auth=self.auth)  # added last: runs first

    def _register_endpoints(self, app: FastAPI) -> None:
        if not self._serves(ChurnPredictor):
            super()._register_endpoints(app)  # other kserve models keep kserve's own routes
            return
        for prefix in ("/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}"):
            app.add_api_route(prefix, self.model_metadata, methods=["GET"], include_in_schema=False)
        for action in ("load", "unload"):  # the served model is fixed at start: no remote (un)loading
            app.add_api_route(
                f"/v2/repository/models/{{model_name}}/{action}",
                _repository_disabled,
                methods=["POST"],
                include_in_schema=False,
            )
        super()._register_endpoints(app)

    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        app.add_exception_handler(StarletteHTTPException, _http_error)
        app.add_exception_handler(RequestValidationError, _validation_error)
        # kserve's handlers log a traceback holding the client's values and repeat them in the body
        app.add_exception_handler(InvalidInput, _invalid_input)
        app.add_exception_handler(ModelNotFound, _model_not_found)

    @overload
    def _predictor(self, model_name: str, model_version: str | None) -> StrictModel | ORJSONResponse: ...

    @overload
    def _predictor(
        self, model_name: str, model_version: str | None, kind: type[_Served]
    ) -> _Served | ORJSONResponse: ...

    def _predictor(
        self, model_name: str, model_version: str | None, kind: type[StrictModel] | None = None
    ) -> StrictModel | ORJSONResponse:
        """The ready model ``kind`` (default: any strict model) served as ``model_name`` (and ``model_version``),
        else the error response."""
        model = self.dataplane.model_registry.get_model(model_name)
        if model is None:
            served = ", ".join(repr(name) for name in self.dataplane.model_registry.get_models())
            return error(404, f"{NOT_SERVED} (served: {served})")
        if not isinstance(model, kind or StrictModel) or not model.ready:
            return error(503, f"model {model_name!r} is not ready")
        if model_version is not None and model.version is not None and model_version != model.version:
            return error(404, f"model {model_name!r} has no such version here (serving version {model.version})")
        return model

    async def model_metadata(self, model_name: str, model_version: str | None = None) -> Response:
        """V2 model metadata, plus the version and lineage in ``versions`` and ``parameters``."""
        model = self._predictor(model_name, model_version, ChurnPredictor)
        if not isinstance(model, ChurnPredictor):
            return model
        return ORJSONResponse(
            {
                "name": model_name,
                "versions": [model.version],
                "platform": "xgboost",
                "inputs": model.get_input_types(),
                "outputs": model.get_output_types(),
                "parameters": model.parameters(),
            }
        )

    async def infer(
        self, model_name: str, model_version: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """V2 inference (ASGI): the model decodes strictly, answers and encodes (JSON or binary)."""
        started = time.perf_counter()
        model = self._predictor(model_name, model_version)
        if not isinstance(model, StrictModel):
            await _send(send, model.status_code, bytes(model.body))
            return
        content_type, declared, raw_length = _infer_headers(scope)
        try:
            if content_type not in (BINARY_TYPES if raw_length is not None else JSON_TYPES):
                raise UnsupportedMediaType(
                    "this content type is not supported: send application/json "
                    "(or application/octet-stream with Inference-Header-Content-Length)"
                )
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                raise PayloadTooLarge(f"the body is larger than {self.max_body_bytes} bytes")
            body = await self._body(receive)
            if body is None:
                return  # the client went away
            if raw_length is not None and not raw_length.isdigit():
                raise BadRequest("Inference-Header-Content-Length must be a byte count")
            length = int(raw_length) if raw_length is not None else None
            content, header_length, rows = await model.answer_rest(body, length, scope.get(CALLER, ""))
        except BadRequest as exc:
            model.observe("rest", "bad_request", started, rows=0)
            logger.info("bad inference request: %s", str(exc)[:300])
            retry = getattr(exc, "retry_after_s", None)
            await _send(
                send,
                exc.status,
                orjson.dumps({"error": str(exc)}),
                JSON_HEADERS if retry is None else JSON_HEADERS + ((b"retry-after", str(retry).encode()),),
            )
            return
        except UpstreamError as exc:  # its message names the service and the failure, never a request value
            model.observe("rest", "error", started, rows=0)
            await _send(send, exc.status, orjson.dumps({"error": str(exc)}))
            return
        except Exception as exc:  # pylint: disable=broad-exception-caught  # a 500 in the protocol's shape, no trace
            model.observe("rest", "error", started, rows=0)
            # the type only: a message or traceback of the scorer can hold the request's values
            logger.error(
                "inference failed: %s (the request was valid; see churnops_serving_requests)", type(exc).__name__
            )
            await _send(send, 500, INTERNAL_ERROR)
            return
        model.observe("rest", "ok", started, rows=rows)
        if header_length is None:
            await _send(send, 200, content)
        else:
            await _send(
                send,
                200,
                content,
                (
                    (b"content-type", b"application/octet-stream"),
                    (b"inference-header-content-length", str(header_length).encode()),
                ),
            )

    async def _body(self, receive: Receive) -> bytes | None:
        """The whole request body (None when the client disconnects); :class:`PayloadTooLarge` past the limit."""
        chunks, size = [], 0
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(f"the body is larger than {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ChurnRESTServerMultiProcess(KServeRESTServerMultiProcess):
    """kserve's multiprocess REST server whose workers run :class:`ChurnRESTServer`."""

    _rest_server: RESTServer  # kserve's __init__ sets its own, which ours replaces

    def __init__(self, *args: Any, host: str = "127.0.0.1", auth: Authenticator | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stock = self._rest_server
        self._rest_server = ChurnRESTServer(
            "kserve.model_server:app",
            stock.dataplane,
            stock.model_repository_extension,
            stock.config.port,
            workers=stock.config.workers,
            grace_period=stock.config.timeout_graceful_shutdown,
            event_loop=stock.config.loop,
            timeout_keep_alive=stock.config.timeout_keep_alive,
            host=host,
            auth=auth,
        )


class ClientSafeStatusInterceptor(KServeExceptionToStatusInterceptor):
    """kserve's exception-to-status mapping, without repeating (in the status or a log line) what the client sent."""

    async def handle_exception(
        self, ex: Exception, request_or_iterator: Any, context: ServicerContext, method_name: str
    ) -> None:
        if isinstance(ex, InvalidInput):
            message = client_safe(ex)
            logger.info("bad inference request: %s", message)
            await context.abort(StatusCode.INVALID_ARGUMENT, message)
        elif isinstance(ex, ModelNotFound):
            await context.abort(StatusCode.NOT_FOUND, NOT_SERVED)
        elif isinstance(ex, ModelNotReady | ServerNotReady | ServerNotLive):
            await context.abort(StatusCode.UNAVAILABLE, NOT_READY)
        elif isinstance(ex, NotImplementedError):
            await context.abort(StatusCode.UNIMPLEMENTED, NOT_IMPLEMENTED)
        elif isinstance(ex, HANDLED_BY_KSERVE):
            await super().handle_exception(ex, request_or_iterator, context, method_name)
        else:  # kserve would log the message and traceback, which can repeat the request's values
            logger.error("inference failed: %s (gRPC %s)", type(ex).__name__, method_name)
            await context.abort(StatusCode.INTERNAL, INTERNAL_ERROR_MESSAGE)


class ChurnGRPCServer(KServeGRPCServer):
    """kserve's gRPC server on ``host``."""

    def __init__(self, *args: Any, host: str = "127.0.0.1", auth: Authenticator | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.host = host
        self.auth = auth

    async def start(self, max_workers: int) -> None:
        servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
        options = [
            (key, self._kwargs[key])
            for key in ("grpc_max_send_message_length", "grpc_max_receive_message_length")
            if key in self._kwargs
        ]
        server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=((AuthInterceptor(self.auth),) if self.auth else ()) + (ClientSafeStatusInterceptor(),),
            options=[(f"grpc.{key[len('grpc_') :]}", value) for key, value in options],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
        address = f"[{self.host}]:{self._port}" if ":" in self.host else f"{self.host}:{self._port}"
        server.add_insecure_port(address)
        self._server = server
        logger.info("gRPC server on %s", address)
        await server.start()
        await server.wait_for_termination()


class ChurnModelServer(KServeModelServer):
    """``kserve.ModelServer`` bound to ``host`` with the servers above, authenticating callers with ``auth``."""

    def __init__(self, auth: Authenticator, host: str = "127.0.0.1", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.auth = auth

    def start(self, models: list[Any]) -> None:
        """Register the models, start REST (one or ``workers`` processes) and gRPC, serve until a signal."""
        self._register_and_check_atleast_one_model_is_ready(models)
        common = {
            "workers": self.workers,
            "grace_period": self.grace_period,
            "event_loop": self.event_loop,
            "timeout_keep_alive": self.timeout_keep_alive,
            "host": self.host,
            "auth": self.auth,
        }
        if self.workers > 1:
            self._rest_multiprocess_server = ChurnRESTServerMultiProcess(
                "kserve.model_server:app", self.dataplane, self.model_repository_extension, self.http_port, **common
            )
            self.servers.append(self._rest_multiprocess_server.start())
        else:
            self._rest_server = ChurnRESTServer(
                "kserve.model_server:app", self.dataplane, self.model_repository_extension, self.http_port, **common
            )
            self.servers.append(self._rest_server.start())
        if self.enable_grpc:
            self._grpc_server = ChurnGRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs={
                    "grpc_max_send_message_length": 64 * 1024 * 1024,
                    "grpc_max_receive_message_length": 64 * 1024 * 1024,
                },
                grace_period=self.grace_period,
                host=self.host,
                auth=self.auth,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())
