"""The by-customer transformer: a ``kserve.Model`` in front of the churn predictor (``spec.transformer``).

A service that knows a customer id, not the model's features, sends a V2 request with one ``customer_id``
tensor (``BYTES``, shape ``[rows]``, in JSON or the binary tensor extension) to
``POST /v2/models/<name>/infer``. The server's strict infer route (:class:`serving.server.InferRoute`,
the predictor's) hands the body to :meth:`CustomerTransformer.answer_rest`, which checks it
(:meth:`serving.protocol.Decoder.rest_tensors` for the structure, :func:`customer_ids` for the ids),
tokenizes every id with the ingest tokenizer (:class:`churnops.data.privacy.Tokenizer`, the key chain
the snapshot's commit records, from :func:`churnops.data.privacy.lake_tokenizer`), looks the tokens up
in the latest online snapshot (:mod:`churnops.model.online`) held in memory, and sends the predictor at
``--predictor_host`` one request in the binary tensor extension built from the snapshot's arrays
(numeric features as raw FP64, categorical ones as BYTES in JSON), asking for binary outputs. One
keep-alive ``aiohttp.ClientSession`` (up to 64 connections) carries every predictor request, with the
timeout and connect retries of kserve's predictor arguments (``--predictor_request_timeout_seconds``,
``--predictor_request_retries``, ``--predictor_use_ssl``); aiohttp (a kserve dependency), not httpx
(kserve's own client), because httpx's client code cost several times the rest of the request
(docs/online.md, "Cost"). The answers are put back in request order
and encoded with :func:`serving.protocol.rest_response` (JSON, or binary outputs when asked).
kserve's own request path (its V1 route) is refused; gRPC is not served.

The response has, per row, ``churn_probability`` (FP64), ``churn_label`` (INT64) and ``error``
(BYTES, empty when the row was scored). A customer absent from the snapshot, or known but not
active at its cutoff (cancelled, ...), gets ``NaN`` (``null`` in JSON), label ``-1`` and the reason
in ``error``; the request still succeeds. The response ``parameters`` say what answered every row
of the request: ``model_version`` and ``registered_model`` (from the predictor; absent when no row
was scorable), the snapshot's ``data_commit`` and ``cutoff``, and ``snapshot_commit`` (the lake
commit holding the snapshot).

Callers: the server lets in only the accounts of ``transformer_callers`` (settings), each presenting
a bearer token for ``transformer_audience`` (:mod:`churnops.platform.auth`; 401/403 otherwise). The
enumeration of customers is bounded per caller: at most ``transformer_max_ids_per_request`` ids in a
request (more is 400) and ``transformer_max_ids_per_minute`` ids a minute (a token bucket refilled
continuously; a request past it is 429 with ``Retry-After`` and counts nothing). The transformer
presents its own token (audience ``predictor_audience``) to the predictor.

A request that is wrong as a whole (not V2 JSON, no ``customer_id`` tensor, another tensor, a
datatype other than ``BYTES``, no rows, an element that is not non-empty UTF-8 text, more rows than
``--max_batch_rows``) gets HTTP 400 with ``{"error": ...}``. A predictor that cannot be reached or
fails gives 503, one that refuses the rows 500, each with ``{"error": ...}``. No message or log
line carries a customer id.

Freshness: a background thread asks the lake every ``online_refresh_seconds`` (settings) for the
head of the ``features`` branch; when it moved, the new snapshot is loaded and swapped in with one
reference assignment. A request reads that reference once, so it is answered from one snapshot.
When the lake cannot be read the transformer keeps serving the snapshot it has and logs the failure.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import orjson
import pandas as pd
from kserve import model_server
from kserve.constants.constants import PredictorProtocol
from kserve.errors import InvalidInput
from kserve.predictor_config import PredictorConfig
from prometheus_client import Counter, Gauge, Histogram

from churnops.data.privacy import Tokenizer, lake_tokenizer
from churnops.data.subjects import lake_key_id
from churnops.data.versioning import DataRepository, open_repository
from churnops.errors import ChurnopsError
from churnops.model.online import OnlineSnapshot, load_snapshot, snapshot_commit
from churnops.model.predict import LABEL, PROBABILITY
from churnops.platform.auth import Authenticator, TokenSource
from churnops.platform.logs import setup_logging
from churnops.platform.settings import Settings, settings_or_exit
from serving.protocol import (
    MAX_TEXT_BYTES,
    TEXT,
    BadRequest,
    Decoder,
    StrictModel,
    TensorIn,
    TooManyRequests,
    UpstreamError,
    datatype_shown,
    rest_response,
    text_elements,
)
from serving.server import ChurnModelServer
from serving.untyped_bases import KServeModel

logger = logging.getLogger("churnops.serving.transformer")

CUSTOMER_ID = "customer_id"
ERROR = "error"
OUTPUTS: tuple[str, ...] = (PROBABILITY, LABEL, ERROR)
NO_LABEL = -1
UNKNOWN = "unknown customer: not in the online feature snapshot"

ROWS = Counter("churnops_transformer_rows", "Rows asked by customer id, by outcome", ["outcome"])
REFRESHES = Counter("churnops_transformer_snapshot_refreshes", "Online snapshot checks, by outcome", ["outcome"])
CUTOFF = Gauge("churnops_transformer_snapshot_cutoff_seconds", "Cutoff of the served online snapshot (Unix time)")
LIMITED = Counter("churnops_transformer_rate_limited", "Requests refused for their caller's ids-per-minute limit")
REQUESTS = Counter("churnops_transformer_requests", "REST inference requests by outcome", ["outcome"])
LATENCY = Histogram(
    "churnops_transformer_request_seconds",
    "Inference request latency (predictor call included)",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
HEADER_LENGTH = "inference-header-content-length"
PREDICTOR_OUTPUTS = {PROBABILITY: np.dtype("<f8"), LABEL: np.dtype("<i8")}
PREDICTOR_CONNECTIONS = 64  # keep-alive connections to the predictor, reused by every request


def inactive_reason(status: str) -> str:
    """The per-row error of a customer known to the lake but not active at the snapshot's cutoff."""
    return f"customer is not active (subscription status {status!r}): no churn prediction"


@dataclass(frozen=True)
class SnapshotTable:
    """One online snapshot laid out for lookups: token -> row, features as arrays in the spec's order."""

    snapshot: OnlineSnapshot
    positions: dict[str, int]
    numeric: np.ndarray  # (numeric features, rows) little-endian float64; NaN = missing
    categorical: np.ndarray  # (categorical features, rows) object: str, None = missing
    inactive: dict[str, str]
    tokenizer: Tokenizer  # the key chain the snapshot's tokens were made with

    @classmethod
    def of(cls, snapshot: OnlineSnapshot, tokenizer: Tokenizer) -> "SnapshotTable":
        """Index ``snapshot`` by customer token; ids are tokenized with ``tokenizer`` to look them up."""
        features, spec = snapshot.features, snapshot.spec
        numeric = features[list(spec.numeric)].apply(pd.to_numeric, errors="coerce")
        matrix = np.ascontiguousarray(numeric.to_numpy(dtype=np.float64, na_value=np.nan).T, dtype="<f8")
        categorical = np.empty((len(spec.categorical), len(features)), dtype=object)
        for j, name in enumerate(spec.categorical):
            categorical[j] = [None if pd.isna(v) else str(v) for v in features[name].tolist()]
        positions = {str(token): i for i, token in enumerate(features.index)}
        inactive = {str(token): str(status) for token, status in snapshot.inactive.items()}
        return cls(snapshot, positions, matrix, categorical, inactive, tokenizer)

    @property
    def commit_id(self) -> str:
        """The lake commit holding the snapshot."""
        return self.snapshot.commit_id

    def parameters(self) -> dict[str, str]:
        """Where the features of a response come from."""
        return {
            "data_commit": self.snapshot.data_commit,
            "cutoff": self.snapshot.cutoff.isoformat(),
            "snapshot_commit": self.snapshot.commit_id,
        }

    def find(self, tokens: list[str]) -> tuple[list[int], list[int], list[str]]:
        """(positions in ``tokens`` of the active customers, their snapshot rows, an error per token: empty
        for an active customer, else why it is not scored)."""
        scored, rows, errors = [], [], []
        for i, token in enumerate(tokens):
            position = self.positions.get(token)
            if position is not None:
                scored.append(i)
                rows.append(position)
                errors.append("")
            else:
                status = self.inactive.get(token)
                errors.append(UNKNOWN if status is None else inactive_reason(status))
        return scored, rows, errors

    def predictor_body(self, rows: list[int]) -> tuple[bytes, int]:
        """The predictor's V2 request for snapshot rows ``rows`` in the binary tensor extension, and its JSON
        header's length: one tensor per feature, numeric ones as raw FP64 (in the header's order, after it),
        categorical ones as BYTES in JSON (``null`` = missing); binary outputs asked."""
        spec, count = self.snapshot.spec, len(rows)
        size = {"binary_data_size": 8 * count}
        inputs: list[dict[str, Any]] = [
            {"name": name, "datatype": "FP64", "shape": [count], "parameters": size} for name in spec.numeric
        ]
        inputs += [
            {"name": name, "datatype": TEXT, "shape": [count], "data": values}
            for name, values in zip(spec.categorical, self.categorical[:, rows].tolist())
        ]
        header = orjson.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}})
        return header + self.numeric[:, rows].tobytes(), len(header)


class SnapshotStore:
    """The latest online snapshot of a lake, in memory, refreshed by a background thread, with the tokenizer of
    the key chain its tokens were made with: after ``churnops privacy rotate-key`` re-tokenized the lake, the
    next snapshot comes with the new chain (``tokenizers`` gives the chain named by a key id)."""

    def __init__(self, repo: DataRepository, interval_s: float, tokenizers: Callable[[str | None], Tokenizer]) -> None:
        self.repo = repo
        self.interval_s = interval_s
        self.tokenizers = tokenizers
        self._table: SnapshotTable | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> SnapshotTable:
        """The snapshot to answer with (read once per request)."""
        table = self._table
        if table is None:
            raise ChurnopsError("no online snapshot is loaded")
        return table

    def refresh(self) -> bool:
        """Load the head of the ``features`` branch if it is not the one held; return whether it changed."""
        head = snapshot_commit(self.repo)
        if head is None:
            if self._table is None:
                load_snapshot(self.repo)  # raises NotFoundError with the remedy
            return False
        if self._table is not None and self.repo.resolve(head) == self._table.commit_id:
            return False
        key_id, held = lake_key_id(self.repo, head), self._table.tokenizer if self._table is not None else None
        tokenizer = held if held is not None and key_id in (None, held.key_id) else self.tokenizers(key_id)
        table = SnapshotTable.of(load_snapshot(self.repo, head), tokenizer)
        if held is not None and tokenizer is not held:
            logger.info("online snapshot %s is tokenized under %s: the key chain follows it", head[:12], key_id)
        self._table = table  # one reference assignment: a request sees the old table or the new one
        CUTOFF.set(table.snapshot.cutoff.timestamp())
        logger.info(
            "online snapshot %s loaded: %d active customers at cutoff %s (data commit %s)",
            table.commit_id[:12],
            len(table.positions),
            table.snapshot.cutoff.isoformat(),
            table.snapshot.data_commit[:12],
        )
        return True

    def start(self) -> None:
        """Start polling the lake every ``interval_s`` seconds (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll, name="online-snapshot-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                REFRESHES.labels("swapped" if self.refresh() else "unchanged").inc()
            except ChurnopsError as exc:  # keep serving the snapshot held
                REFRESHES.labels("failed").inc()
                logger.warning(
                    "online snapshot refresh failed, still serving %s: %s",
                    self._table.commit_id[:12] if self._table else "nothing",
                    exc,
                )


class CallerLimit:
    """How many customer ids each caller may still ask about: a token bucket per caller holding at most
    ``per_minute`` ids and refilled at ``per_minute / 60`` ids a second."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (ids left, when)

    def take(self, caller: str, ids: int, now: float | None = None) -> None:
        """Spend ``ids`` of ``caller``'s allowance, or :class:`TooManyRequests` (spending nothing)."""
        now = time.monotonic() if now is None else now
        left, then = self._buckets.get(caller, (float(self.per_minute), now))
        left = min(float(self.per_minute), left + (now - then) * self.rate)
        if ids > left:
            LIMITED.inc()
            wait = max(1, math.ceil((ids - left) / self.rate))
            self._buckets[caller] = (left, now)
            raise TooManyRequests(
                f"this caller asked about more than {self.per_minute} customer ids in a minute: retry in {wait} s", wait
            )
        self._buckets[caller] = (left - ids, now)


def _customer_id(value: Any, i: int) -> str:
    """One element as text; never shown in a message."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"input {CUSTOMER_ID!r} element {i} is not UTF-8 text") from None
    if not isinstance(value, str):
        raise BadRequest(f"input {CUSTOMER_ID!r} element {i} is not text")
    if not value or len(value) > MAX_TEXT_BYTES:
        raise BadRequest(f"input {CUSTOMER_ID!r} element {i} is empty or longer than {MAX_TEXT_BYTES}")
    return value


def customer_ids(tensors: list[TensorIn], max_rows: int) -> list[str]:
    """The ids of a request's ``customer_id`` tensor (JSON or binary BYTES); :class:`BadRequest` when unusable."""
    names = [tensor.name for tensor in tensors]
    if names != [CUSTOMER_ID]:
        others = [position for position, name in enumerate(names) if name != CUSTOMER_ID]
        if others:
            raise BadRequest(f"unknown input at inputs[{others[0]}]: send exactly one tensor, {CUSTOMER_ID!r}")
        raise BadRequest(f"send exactly one {CUSTOMER_ID!r} tensor")
    tensor = tensors[0]
    if tensor.datatype != TEXT:
        raise BadRequest(f"input {CUSTOMER_ID!r} must be BYTES (UTF-8 text), not {datatype_shown(tensor.datatype)}")
    values: list[Any] = (
        text_elements(tensor.raw, f"input {CUSTOMER_ID!r}") if tensor.raw is not None else tensor.values or []
    )
    if len(tensor.shape) != 1 or tensor.shape[0] != len(values):
        raise BadRequest(f"input {CUSTOMER_ID!r} must have shape [rows] matching its {len(values)} elements")
    if not values:
        raise BadRequest(f"input {CUSTOMER_ID!r} has no rows")
    if len(values) > max_rows:
        raise BadRequest(f"input {CUSTOMER_ID!r} has {len(values)} rows; at most {max_rows} per request")
    return [_customer_id(value, i) for i, value in enumerate(values)]


def _predictor_outputs(content: bytes, length: str | None, rows: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(probability, label, the response's JSON header) of the predictor's V2 answer (JSON or binary outputs;
    ``length`` is its Inference-Header-Content-Length)."""
    try:
        offset = int(length) if length is not None else len(content)
        header = orjson.loads(content[:offset])
        values = {}
        for output in header["outputs"]:
            size = (output.get("parameters") or {}).get("binary_data_size")
            dtype = PREDICTOR_OUTPUTS.get(output["name"])
            if dtype is None:
                continue
            if size is None:
                values[output["name"]] = np.asarray(output["data"], dtype=dtype)
            else:
                values[output["name"]] = np.frombuffer(
                    content, dtype=dtype, count=size // dtype.itemsize, offset=offset
                )
                offset += size
        probability, label = values[PROBABILITY], values[LABEL]
    except (ValueError, KeyError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise UpstreamError(
            "the predictor's answer is not a V2 response with churn_probability and churn_label", 500
        ) from exc
    if probability.shape != (rows,) or label.shape != (rows,):
        raise UpstreamError(f"the predictor answered a number of rows other than the {rows} asked", 500)
    return probability, label, header


class CustomerTransformer(KServeModel, StrictModel):
    """Answers churn risk by customer id: tokenize, look up the snapshot, ask the predictor ``name``."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        repo: DataRepository | None = None,  # pylint: disable=too-many-arguments,too-many-positional-arguments
        max_rows: int | None = None,
        predictor: PredictorConfig | None = None,
        tokens: TokenSource | None = None,
    ) -> None:
        super().__init__(name)
        self.settings = settings
        self.max_rows = max_rows or settings.transformer_max_ids_per_request
        self.limit = CallerLimit(settings.transformer_max_ids_per_minute)
        self.tokens = tokens  # this transformer's token for the predictor (none: send no Authorization)
        self.store = SnapshotStore(
            repo or open_repository(settings),
            settings.online_refresh_seconds,
            lambda key_id: lake_tokenizer(settings, key_id),
        )
        self.decoder = Decoder((), (CUSTOMER_ID,), self.max_rows, outputs=OUTPUTS)  # the body's structure
        self.predictor = predictor
        self._session: tuple[asyncio.AbstractEventLoop, PredictorConfig, aiohttp.ClientSession] | None = None

    @property
    def version(self) -> str | None:
        """Any version path is answered (the predictor's model version is in every response)."""
        return None

    @property
    def config(self) -> PredictorConfig:
        """Where and how to ask the predictor: the one given, else kserve's context."""
        config = self.predictor or self.predictor_config
        if config is None or not config.predictor_host:
            raise ChurnopsError("no predictor to forward to: give --predictor_host (host:port of the churn predictor)")
        return config

    def load(self) -> bool:
        """Load the latest snapshot with the tokenization key chain it was made with and start watching the lake
        for newer ones."""
        _ = self.config  # no predictor: fail at start, not at the first request
        self.store.refresh()
        self.store.start()
        self.ready = True
        return self.ready

    def session(self) -> aiohttp.ClientSession:
        """The keep-alive HTTP client for every predictor request of the running event loop (made on first
        use: an aiohttp session belongs to one loop), with kserve's PredictorConfig timeout and, like
        kserve, the CA bundle of ``REQUESTS_CA_BUNDLE``."""
        loop, config = asyncio.get_running_loop(), self.config
        if self._session is None or self._session[0] is not loop or self._session[1] is not config:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            connector = aiohttp.TCPConnector(
                limit=PREDICTOR_CONNECTIONS, ssl=ssl.create_default_context(cafile=bundle) if bundle else True
            )
            self._session = (
                loop,
                config,
                aiohttp.ClientSession(
                    base_url=config.predictor_base_url,
                    connector=connector,
                    timeout=aiohttp.ClientTimeout(total=config.predictor_request_timeout_seconds),
                ),
            )
        return self._session[2]

    def stop(self) -> None:
        """Stop the snapshot refresh thread and close the predictor client's connections (kserve's server
        calls this from its running loop at shutdown)."""
        self.store.stop()
        if self._session is not None:
            loop, _, session = self._session
            self._session = None
            if loop.is_running():
                loop.create_task(session.close())
            elif not loop.is_closed():
                loop.run_until_complete(session.close())

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """kserve's request path (its V1 route, or anything but ``POST /v2/models/<name>/infer``) is refused."""
        del payload, headers
        error = BadRequest(
            "this transformer speaks the V2 (Open Inference) protocol over REST: "
            f"POST /v2/models/<name>/infer with a {CUSTOMER_ID!r} BYTES tensor"
        )
        raise InvalidInput(str(error)) from error

    async def answer_rest(
        self, body: bytes, header_length: int | None, caller: str = ""
    ) -> tuple[bytes, int | None, int]:
        """Decode the ids, spend them from ``caller``'s allowance, tokenize them, look them up in one snapshot,
        ask the predictor for the known active ones and answer every row in request order."""
        tensors, options = self.decoder.rest_tensors(body, header_length)
        ids = customer_ids(tensors, self.max_rows)
        self.limit.take(caller, len(ids))
        table = self.store.current  # read once: every row of the request comes from this snapshot
        scored, rows, errors = table.find([table.tokenizer.token(value) for value in ids])
        ROWS.labels("found").inc(len(rows))
        ROWS.labels("not_found").inc(len(ids) - len(rows))
        probability = np.full(len(ids), np.nan)
        label = np.full(len(ids), NO_LABEL, dtype=np.int64)
        parameters, model_version = table.parameters(), None
        if rows:
            scores, labels, header = await self._ask_predictor(table, rows)
            probability[scored] = scores
            label[scored] = labels
            upstream = header.get("parameters") or {}
            model_version = str(header.get("model_version") or upstream.get("model_version", ""))
            parameters["model_version"] = model_version
            if "registered_model" in upstream:
                parameters["registered_model"] = str(upstream["registered_model"])
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("by-customer rows=%d scored=%d snapshot=%s", len(ids), len(rows), table.commit_id[:12])
        content, length = rest_response(
            self.name,
            model_version,
            parameters,
            options,
            {
                PROBABILITY: ("FP64", probability),
                LABEL: ("INT64", label),
                ERROR: (TEXT, np.array(errors, dtype=object)),
            },
        )
        return content, length, len(ids)

    async def _ask_predictor(
        self, table: SnapshotTable, rows: list[int]
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """One binary-extension request with the snapshot rows ``rows`` (a refused connection is retried
        ``predictor_request_retries`` times, as kserve's client does); the predictor's outputs."""
        body, length = table.predictor_body(rows)
        headers = {"content-type": "application/octet-stream", HEADER_LENGTH: str(length)}
        if self.tokens is not None:
            headers["authorization"] = f"Bearer {await self.tokens.token_async()}"
        session, retries = self.session(), self.config.predictor_request_retries
        for attempt in range(retries + 1):
            try:
                async with session.post(f"/v2/models/{self.name}/infer", data=body, headers=headers) as response:
                    status, content = response.status, await response.read()
                    answer_length = response.headers.get(HEADER_LENGTH)
                break
            except aiohttp.ClientConnectorError as exc:
                if attempt < retries:
                    continue
                raise self._unreachable(exc) from None
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise self._unreachable(exc) from None
        if status != 200:
            logger.error("the predictor answered %d to %d feature rows", status, len(rows))
            if status >= 500:
                raise UpstreamError(f"the predictor failed ({status})")
            if status in (401, 403):
                raise UpstreamError(
                    f"the predictor refused this transformer's identity ({status}): check "
                    "predictor_callers and predictor_audience",
                    500,
                )
            raise UpstreamError(
                f"the predictor refused the snapshot's feature rows ({status}): the snapshot's "
                "features do not match the served model's inputs",
                500,
            )
        return _predictor_outputs(content, answer_length, len(rows))

    @staticmethod
    def _unreachable(exc: Exception) -> UpstreamError:
        logger.error("the predictor cannot be reached: %s", type(exc).__name__)
        return UpstreamError(f"the predictor cannot be reached ({type(exc).__name__})")

    @staticmethod
    def observe(protocol: str, outcome: str, started: float, rows: int) -> None:
        """Count a request and its latency (``churnops_transformer_requests``, ``..._request_seconds``)."""
        del protocol, rows  # REST only; rows are counted by outcome in churnops_transformer_rows
        REQUESTS.labels(outcome).inc()
        LATENCY.observe(time.perf_counter() - started)


def parser() -> argparse.ArgumentParser:
    """kserve's model-server arguments (``--predictor_host``, ``--model_name``, ...) plus the transformer's."""
    parsed = argparse.ArgumentParser(parents=[model_server.parser], description=__doc__.splitlines()[0])
    parsed.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parsed.add_argument(
        "--max_batch_rows",
        type=int,
        default=None,
        help="most customer ids in one request (default: transformer_max_ids_per_request)",
    )
    parsed.set_defaults(predictor_protocol=PredictorProtocol.REST_V2.value)
    return parsed


def main(argv: list[str] | None = None) -> None:
    """Load the key and the snapshot, then serve until SIGTERM/SIGINT (one REST process)."""
    args, _ = parser().parse_known_args(argv)
    if not args.predictor_host:
        raise SystemExit("--predictor_host is required (host:port of the churn predictor)")
    if args.predictor_protocol != PredictorProtocol.REST_V2.value:
        raise SystemExit(f"the transformer asks the predictor over {PredictorProtocol.REST_V2.value} only")
    settings = settings_or_exit()
    setup_logging(settings)
    predictor = PredictorConfig(
        args.predictor_host,
        args.predictor_protocol,
        args.predictor_use_ssl,
        args.predictor_request_timeout_seconds,
        args.predictor_request_retries,
    )
    tokens = TokenSource(settings, settings.predictor_audience, settings.transformer_account)
    model = CustomerTransformer(
        args.model_name, settings, max_rows=args.max_batch_rows, predictor=predictor, tokens=tokens
    )
    started = time.perf_counter()
    try:
        model.load()
    except ChurnopsError as exc:
        raise SystemExit(f"the transformer cannot start: {exc}") from None
    logger.info(
        "transformer %s ready in %.1fs, predictor %s",
        args.model_name,
        time.perf_counter() - started,
        args.predictor_host,
    )
    auth = Authenticator.for_service(settings, settings.transformer_audience, settings.transformer_callers)
    ChurnModelServer(
        auth,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=1,
        enable_grpc=False,
        enable_docs_url=False,
        enable_latency_logging=False,
        predictor_config=predictor,
    ).start([model])


if __name__ == "__main__":
    main()
