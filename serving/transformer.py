"""The by-customer transformer: a ``kserve.Model`` in front of the churn predictor (``spec.transformer``).

A service that knows a customer id, not 51 features, sends a V2 request with one ``customer_id``
tensor (``BYTES``, shape ``[rows]``). :meth:`CustomerTransformer.preprocess` tokenizes every id with
the ingest tokenizer (:class:`churnops.data.privacy.Tokenizer`, key from
:func:`churnops.platform.secrets.tokenization_key`), looks the tokens up in the latest online
snapshot (:mod:`churnops.training.online`) held in memory, and builds the predictor's V2 request (one
tensor per feature, numeric ones as binary FP64). kserve's own transformer mechanism forwards it to
``--predictor_host`` (:meth:`kserve.Model.predict`, REST V2 through ``InferenceRESTClient``), and
:meth:`CustomerTransformer.postprocess` puts the answers back in request order.

The response has, per row, ``churn_probability`` (FP64), ``churn_label`` (INT64) and ``error``
(BYTES, empty when the row was scored). A customer absent from the snapshot, or known but not
active at its cutoff (cancelled, ...), gets ``NaN`` (``null`` in JSON), label ``-1`` and the reason
in ``error``; the request still succeeds. The response ``parameters`` say what answered every row
of the request: ``model_version`` and ``registered_model`` (from the predictor; absent when no row
was scorable), the snapshot's ``data_commit`` and ``cutoff``, and ``snapshot_commit`` (the lake
commit holding the snapshot).

A request that is wrong as a whole (no ``customer_id`` tensor, another tensor, a datatype other than
``BYTES``, no rows, an element that is not UTF-8 text, more rows than ``--max_batch_rows``) gets
HTTP 400 with ``{"error": ...}``. No message or log line carries a customer id.

Freshness: a background thread asks the lake every ``online_refresh_seconds`` (settings) for the
head of the ``features`` branch; when it moved, the new snapshot is loaded and swapped in with one
reference assignment. A request reads that reference once, so it is answered from one snapshot.
When the lake cannot be read the transformer keeps serving the snapshot it has and logs the failure.
"""

from __future__ import annotations

import argparse
import logging
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pandas as pd
from kserve import Model, model_server
from kserve.predictor_config import PredictorConfig
from kserve.constants.constants import PredictorProtocol
from kserve.errors import InferenceError, InvalidInput, ModelNotReady
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse, deserialize_bytes_tensor
from prometheus_client import Counter, Gauge

from churnops.data.privacy import Tokenizer
from churnops.data.versioning import DataRepository, open_repository
from churnops.errors import ChurnopsError
from churnops.platform.logs import setup_logging
from churnops.platform.secrets import tokenization_key
from churnops.platform.settings import Settings, get_settings
from churnops.training.online import OnlineSnapshot, load_snapshot, snapshot_commit
from serving.protocol import DEFAULT_MAX_ROWS, LABEL, MAX_TEXT_BYTES, PROBABILITY, TEXT, BadRequest, datatype_shown
from serving.server import ChurnModelServer

logger = logging.getLogger("churnops.serving.transformer")

CUSTOMER_ID = "customer_id"
ERROR = "error"
OUTPUTS: tuple[str, ...] = (PROBABILITY, LABEL, ERROR)
NO_LABEL = -1
UNKNOWN = "unknown customer: not in the online feature snapshot"

ROWS = Counter("churnops_transformer_rows", "Rows asked by customer id, by outcome", ["outcome"])
REFRESHES = Counter("churnops_transformer_snapshot_refreshes", "Online snapshot checks, by outcome", ["outcome"])
CUTOFF = Gauge("churnops_transformer_snapshot_cutoff_seconds", "Cutoff of the served online snapshot (Unix time)")


def inactive_reason(status: str) -> str:
    """The per-row error of a customer known to the lake but not active at the snapshot's cutoff."""
    return f"customer is not active (subscription status {status!r}): no churn prediction"


@dataclass(frozen=True)
class SnapshotTable:
    """One online snapshot laid out for lookups: token -> row, features as arrays in the spec's order."""

    snapshot: OnlineSnapshot
    positions: dict[str, int]
    numeric: np.ndarray  # (numeric features, rows) float64; NaN = missing
    categorical: tuple[np.ndarray, ...]  # one object array per categorical feature; None = missing
    inactive: dict[str, str]

    @classmethod
    def of(cls, snapshot: OnlineSnapshot) -> "SnapshotTable":
        """Index ``snapshot`` by customer token."""
        features, spec = snapshot.features, snapshot.spec
        numeric = features[list(spec.numeric)].apply(pd.to_numeric, errors="coerce")
        matrix = np.ascontiguousarray(numeric.to_numpy(dtype=np.float64, na_value=np.nan).T)
        categorical = tuple(
            np.array([None if pd.isna(v) else str(v) for v in features[name].tolist()], dtype=object)
            for name in spec.categorical
        )
        positions = {str(token): i for i, token in enumerate(features.index)}
        inactive = {str(token): str(status) for token, status in snapshot.inactive.items()}
        return cls(snapshot, positions, matrix, categorical, inactive)

    @property
    def commit_id(self) -> str:
        """The lake commit holding the snapshot."""
        return self.snapshot.commit_id

    def parameters(self) -> dict[str, str]:
        """Where the features of a response come from."""
        return {"data_commit": self.snapshot.data_commit, "cutoff": self.snapshot.cutoff.isoformat(),
                "snapshot_commit": self.snapshot.commit_id}

    def request(self, model_name: str, rows: list[int], request_id: str | None) -> InferRequest:
        """The predictor's V2 request for snapshot rows ``rows`` (one tensor per feature)."""
        spec, count = self.snapshot.spec, len(rows)
        inputs = []
        for j, name in enumerate(spec.numeric):
            tensor = InferInput(name, [count], "FP64")
            tensor.set_data_from_numpy(self.numeric[j, rows], binary_data=True)
            inputs.append(tensor)
        for j, name in enumerate(spec.categorical):
            inputs.append(InferInput(name, [count], TEXT, data=self.categorical[j][rows].tolist()))
        return InferRequest(model_name=model_name, infer_inputs=inputs, request_id=request_id)


class SnapshotStore:
    """The latest online snapshot of a lake, in memory, refreshed by a background thread."""

    def __init__(self, repo: DataRepository, interval_s: float) -> None:
        self.repo = repo
        self.interval_s = interval_s
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
        table = SnapshotTable.of(load_snapshot(self.repo, head))
        self._table = table  # one reference assignment: a request sees the old table or the new one
        CUTOFF.set(table.snapshot.cutoff.timestamp())
        logger.info("online snapshot %s loaded: %d active customers at cutoff %s (data commit %s)",
                    table.commit_id[:12], len(table.positions), table.snapshot.cutoff.isoformat(),
                    table.snapshot.data_commit[:12])
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
                logger.warning("online snapshot refresh failed, still serving %s: %s",
                               self._table.commit_id[:12] if self._table else "nothing", exc)


@dataclass
class Lookup:
    """A request after preprocessing: its snapshot, which rows to score, per-row errors."""

    table: SnapshotTable
    rows: int
    scored: list[int] = field(default_factory=list)  # request rows the predictor scores, in order
    errors: list[str] = field(default_factory=list)
    request: InferRequest | None = None
    request_id: str = ""
    outputs: tuple[str, ...] = OUTPUTS
    from_grpc: bool = False


@dataclass
class Answer:
    """The predictor's response (None when no row was scorable) for a :class:`Lookup`."""

    lookup: Lookup
    response: InferResponse | None


def _tensor_values(tensor: InferInput) -> list[Any]:
    """The elements of the ``customer_id`` tensor (JSON list or binary BYTES), checked against its shape."""
    if str(tensor.datatype) != TEXT:
        raise BadRequest(f"input {CUSTOMER_ID!r} must be BYTES (UTF-8 text), not {datatype_shown(tensor.datatype)}")
    raw = getattr(tensor, "_raw_data", None)
    if raw is not None:
        try:
            values: list[Any] = list(deserialize_bytes_tensor(raw))
        except struct.error:
            raise BadRequest(f"input {CUSTOMER_ID!r}: malformed binary BYTES data") from None
    else:
        values = list(tensor.data or [])
    shape = list(tensor.shape or [])
    if len(shape) != 1 or shape[0] != len(values):
        raise BadRequest(f"input {CUSTOMER_ID!r} must have shape [rows] matching its {len(values)} elements")
    return values


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


def customer_ids(payload: Any, max_rows: int) -> list[str]:
    """The ids of a V2 request's ``customer_id`` tensor; :class:`BadRequest` when the request is unusable."""
    if not isinstance(payload, InferRequest):
        raise BadRequest("this transformer speaks the V2 (Open Inference) protocol: POST /v2/models/<name>/infer "
                           f"with a {CUSTOMER_ID!r} BYTES tensor")
    names = [str(tensor.name) for tensor in payload.inputs]
    if names != [CUSTOMER_ID]:
        others = [position for position, name in enumerate(names) if name != CUSTOMER_ID]
        if others:
            raise BadRequest(f"unknown input at inputs[{others[0]}]: send exactly one tensor, {CUSTOMER_ID!r}")
        raise BadRequest(f"send exactly one {CUSTOMER_ID!r} tensor")
    values = _tensor_values(payload.inputs[0])
    if not values:
        raise BadRequest(f"input {CUSTOMER_ID!r} has no rows")
    if len(values) > max_rows:
        raise BadRequest(f"input {CUSTOMER_ID!r} has {len(values)} rows; at most {max_rows} per request")
    return [_customer_id(value, i) for i, value in enumerate(values)]


class CustomerTransformer(Model):
    """Answers churn risk by customer id: tokenize, look up the snapshot, ask the predictor ``name``."""

    def __init__(self, name: str, settings: Settings, repo: DataRepository | None = None,
                 max_rows: int = DEFAULT_MAX_ROWS) -> None:
        super().__init__(name)
        self.settings = settings
        self.max_rows = max_rows
        self.store = SnapshotStore(repo or open_repository(settings), settings.online_refresh_seconds)
        self.tokenizer: Tokenizer | None = None

    def load(self) -> bool:
        """Get the tokenization key, load the latest snapshot and start watching the lake for newer ones."""
        self.tokenizer = Tokenizer(tokenization_key(self.settings))
        self.store.refresh()
        self.store.start()
        self.ready = True
        return self.ready

    def stop(self) -> None:
        """Stop the snapshot refresh thread."""
        self.store.stop()

    def validate(self, payload: Any) -> Any:
        """A :class:`Lookup` is already checked."""
        return payload if isinstance(payload, Lookup) else super().validate(payload)

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Lookup:
        """Tokenize the ids, look them up in one snapshot, build the predictor request for the known active ones."""
        del headers
        assert self.tokenizer is not None
        try:
            ids = customer_ids(payload, self.max_rows)
            requested = tuple(str(output.name) for output in payload.request_outputs or [])
            for position, name in enumerate(requested):
                if name not in OUTPUTS:
                    raise BadRequest(f"unknown output at outputs[{position}]; outputs are {', '.join(OUTPUTS)}")
        except BadRequest as exc:  # the server's handler passes the project's own messages (they name no value)
            raise InvalidInput(str(exc)) from exc
        table = self.store.current
        lookup = Lookup(table, rows=len(ids), request_id=payload.id or "", outputs=requested or OUTPUTS,
                        from_grpc=bool(payload.from_grpc))
        positions = []
        for i, value in enumerate(ids):
            token = self.tokenizer.token(value)
            position = table.positions.get(token)
            if position is not None:
                lookup.scored.append(i)
                positions.append(position)
                lookup.errors.append("")
            else:
                status = table.inactive.get(token)
                lookup.errors.append(UNKNOWN if status is None else inactive_reason(status))
        ROWS.labels("found").inc(len(positions))
        ROWS.labels("not_found").inc(len(ids) - len(positions))
        if positions:
            lookup.request = table.request(self.name, positions, payload.id)
        return lookup

    async def predict(self, payload: Any, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> Answer:
        """Ask the predictor (kserve's ``predictor_host`` client) for the scorable rows."""
        del response_headers
        assert isinstance(payload, Lookup)
        if payload.request is None:
            return Answer(payload, None)
        try:
            response = await super().predict(payload.request, headers)
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            logger.error("the predictor answered %d to %d feature rows", status, len(payload.scored))
            if status >= 500:
                raise ModelNotReady(self.name, f"the predictor failed ({status})") from None
            raise InferenceError(f"the predictor refused the snapshot's feature rows ({status}): the snapshot's "
                                 "features do not match the served model's inputs") from None
        except httpx.HTTPError as exc:
            logger.error("the predictor cannot be reached: %s", type(exc).__name__)
            raise ModelNotReady(self.name, f"the predictor cannot be reached ({type(exc).__name__})") from None
        assert isinstance(response, InferResponse)
        return Answer(payload, response)

    async def postprocess(self, result: Any, headers: dict[str, str] | None = None,
                          response_headers: dict[str, str] | None = None) -> InferResponse:
        """Per request row: probability, label and error, in request order; lineage in ``parameters``."""
        del headers, response_headers
        assert isinstance(result, Answer)
        lookup = result.lookup
        probability = np.full(lookup.rows, np.nan)
        label = np.full(lookup.rows, NO_LABEL, dtype=np.int64)
        parameters = lookup.table.parameters()
        if result.response is not None:
            scored = {str(output.name): output.as_numpy() for output in result.response.outputs}
            if PROBABILITY not in scored or LABEL not in scored:
                raise InferenceError("the predictor's response lacks churn_probability or churn_label")
            probability[lookup.scored] = scored[PROBABILITY].astype(np.float64)
            label[lookup.scored] = scored[LABEL].astype(np.int64)
            upstream = dict(result.response.parameters or {})
            parameters["model_version"] = str(result.response.model_version or upstream.get("model_version", ""))
            if "registered_model" in upstream:
                parameters["registered_model"] = str(upstream["registered_model"])
        values = {PROBABILITY: ("FP64", probability), LABEL: ("INT64", label),
                  ERROR: (TEXT, np.array(lookup.errors, dtype=object))}
        tensors = []
        for name in lookup.outputs:
            datatype, data = values[name]
            tensor = InferOutput(name=name, shape=[lookup.rows], datatype=datatype)
            tensor.set_data_from_numpy(data, binary_data=False)
            tensors.append(tensor)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("by-customer rows=%d scored=%d snapshot=%s", lookup.rows, len(lookup.scored),
                         lookup.table.commit_id[:12])
        return InferResponse(response_id=lookup.request_id, model_name=self.name, infer_outputs=tensors,
                             model_version=parameters.get("model_version"), parameters=parameters,
                             from_grpc=lookup.from_grpc)


def parser() -> argparse.ArgumentParser:
    """kserve's model-server arguments (``--predictor_host``, ``--model_name``, ...) plus the transformer's."""
    parsed = argparse.ArgumentParser(parents=[model_server.parser], description=__doc__.splitlines()[0])
    parsed.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parsed.add_argument("--max_batch_rows", type=int, default=DEFAULT_MAX_ROWS, help="largest batch accepted")
    parsed.set_defaults(predictor_protocol=PredictorProtocol.REST_V2.value)
    return parsed


def main(argv: list[str] | None = None) -> None:
    """Load the key and the snapshot, then serve until SIGTERM/SIGINT (one REST process)."""
    args, _ = parser().parse_known_args(argv)
    if not args.predictor_host:
        raise SystemExit("--predictor_host is required (host:port of the churn predictor)")
    settings = get_settings()
    setup_logging(settings)
    model = CustomerTransformer(args.model_name, settings, max_rows=args.max_batch_rows)
    started = time.perf_counter()
    try:
        model.load()
    except ChurnopsError as exc:
        raise SystemExit(f"the transformer cannot start: {exc}") from None
    logger.info("transformer %s ready in %.1fs, predictor %s", args.model_name, time.perf_counter() - started,
                args.predictor_host)
    predictor = PredictorConfig(args.predictor_host, args.predictor_protocol, args.predictor_use_ssl,
                                args.predictor_request_timeout_seconds, args.predictor_request_retries)
    ChurnModelServer(host=args.host, http_port=args.http_port, grpc_port=args.grpc_port, workers=1,
                     enable_grpc=False, enable_docs_url=False, enable_latency_logging=False,
                     predictor_config=predictor).start([model])


if __name__ == "__main__":
    main()
