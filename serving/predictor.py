"""The churn predictor: a ``kserve.Model`` that loads the registered model and scores rows.

It only loads and predicts (like KServe's sklearnserver); the protocol checks live in
:mod:`serving.protocol`, the HTTP/gRPC wiring in :mod:`serving.server`. The same object answers
gRPC (through kserve's servicer, :meth:`ChurnPredictor.predict`) and REST (through the server's
strict infer route, :meth:`ChurnPredictor.score_async`). On the fast path, concurrent requests are
scored together (:mod:`serving.batching`); the Pipeline fallback runs per request, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from churnops.model.predict import LABEL, OUTPUTS, PROBABILITY
from churnops.model.scoring import ScoringModel, load_model
from serving.batching import MicroBatcher
from serving.protocol import (
    TEXT,
    BadRequest,
    Batch,
    Decoder,
    StrictModel,
    TensorIn,
    check_outputs,
    outputs_of,
    rest_response,
)
from serving.untyped_bases import KServeModel

logger = logging.getLogger("churnops.serving")

REQUESTS = Counter("churnops_serving_requests", "Inference requests by protocol and outcome", ["protocol", "outcome"])
ROWS = Counter("churnops_serving_rows", "Rows scored")
LATENCY = Histogram(
    "churnops_serving_request_seconds",
    "Inference request latency (decode, score, encode)",
    ["protocol"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BOOSTER_ROWS = Histogram(
    "churnops_serving_booster_call_rows",
    "Rows per booster call (the rows of the requests scored together)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)


class BatchHistogram:
    """A Prometheus histogram observed a whole array at a time (one vectorised count per request).

    prometheus_client's ``Histogram.observe`` takes one value: at 64 rows a request that is 64
    locked calls. This collector counts with numpy and exposes the usual ``_bucket``/``_count``/``_sum``.
    """

    def __init__(
        self, name: str, documentation: str, bounds: Sequence[float], registry: CollectorRegistry | None = REGISTRY
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self._counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def observe_many(self, values: np.ndarray) -> None:
        """Count every value in its bucket (``le``: the first bound at or above it)."""
        counts = np.bincount(np.searchsorted(self.bounds, values, side="left"), minlength=len(self._counts))
        total = float(values.sum())
        with self._lock:
            self._counts += counts
            self._sum += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """The histogram family, cumulative buckets as Prometheus expects."""
        with self._lock:
            cumulative = np.cumsum(self._counts)
            total = self._sum
        labels = [floatToGoString(bound) for bound in self.bounds] + ["+Inf"]
        yield HistogramMetricFamily(
            self.name,
            self.documentation,
            sum_value=total,
            buckets=[(label, float(count)) for label, count in zip(labels, cumulative)],
        )


PROBABILITIES = BatchHistogram(
    "churnops_serving_churn_probability",
    "Predicted churn probabilities (drift analysis)",
    bounds=tuple(round(0.05 * k, 2) for k in range(1, 21)),
)


class ChurnPredictor(KServeModel, StrictModel):
    """Serves one churn model under ``name``; ``model_uri`` is a directory or ``models:/<name>@<alias>``."""

    def __init__(
        self,
        name: str,
        model_uri: str,
        tracking_uri: str | None = None,
        model_version: str | None = None,
        max_rows: int = 4096,
        micro_batching: bool = True,
    ) -> None:
        super().__init__(name)
        self.micro_batching = micro_batching
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.requested_version = model_version
        self.max_rows = max_rows
        self.model: ScoringModel | None = None
        self.decoder: Decoder | None = None
        self.batcher: MicroBatcher | None = None

    def load(self) -> bool:
        """Load the model (once) and compile its fast path."""
        self.model = load_model(self.model_uri, self.tracking_uri, self.requested_version)
        self.model.require_columns()
        self.decoder = Decoder(self.model.numeric, self.model.categorical, self.max_rows)
        if self.model.fast_path is not None and self.micro_batching:
            self.batcher = MicroBatcher(self.fast_predict, max_rows=max(self.max_rows, 256))
        self.ready = True
        logger.info(
            "loaded %s version %s (data commit %s), scoring with the %s",
            self.model.model_name,
            self.model.model_version,
            self.model.data_commit,
            self.scorer,
        )
        return self.ready

    @property
    def scorer(self) -> str:
        """``fast_path`` or ``pipeline``."""
        return "fast_path" if self.model is not None and self.model.fast_path is not None else "pipeline"

    @property
    def version(self) -> str:
        """The registry version of the loaded model (or the version given for a local one)."""
        return self.model.model_version if self.model is not None else ""

    def parameters(self) -> dict[str, str]:
        """What every response and the model metadata carry: version, data commit, scorer."""
        assert self.model is not None
        return {
            "model_version": self.model.model_version,
            "data_commit": self.model.data_commit,
            "registered_model": self.model.model_name,
            "scorer": self.scorer,
        }

    def get_input_types(self) -> list[dict[str, Any]]:
        """One rank-1 tensor per feature, in the feature spec's order (numeric FP64, categorical BYTES)."""
        assert self.model is not None
        return [{"name": name, "datatype": "FP64", "shape": [-1]} for name in self.model.numeric] + [
            {"name": name, "datatype": TEXT, "shape": [-1]} for name in self.model.categorical
        ]

    def get_output_types(self) -> list[dict[str, Any]]:
        """Churn probability (FP64) and label (INT64, probability >= 0.5) per row."""
        return [
            {"name": PROBABILITY, "datatype": "FP64", "shape": [-1]},
            {"name": LABEL, "datatype": "INT64", "shape": [-1]},
        ]

    def fast_predict(self, numeric: np.ndarray, categorical: Sequence[Sequence[str | None]]) -> np.ndarray:
        """One booster call through the fast path (counted in ``churnops_serving_booster_call_rows``)."""
        assert self.model is not None and self.model.fast_path is not None
        BOOSTER_ROWS.observe(numeric.shape[0])
        return self.model.fast_path.predict(numeric, categorical)

    async def score_async(self, batch: Batch) -> dict[str, tuple[str, np.ndarray]]:
        """The output tensors for a decoded batch: the fast path (with the concurrent requests unless
        micro-batching is off), else the Pipeline in a thread."""
        assert self.model is not None
        if self.batcher is not None:
            probability = await self.batcher.predict(batch.numeric, batch.categorical)
        elif self.model.fast_path is not None:
            probability = self.fast_predict(batch.numeric, batch.categorical)
        else:
            probability = await asyncio.to_thread(self.model.pipeline_predict, batch.numeric, batch.categorical)
        ROWS.inc(batch.rows)
        PROBABILITIES.observe_many(probability)
        return outputs_of(probability, self.model.rule.threshold)

    async def answer_rest(
        self, body: bytes, header_length: int | None, caller: str = ""
    ) -> tuple[bytes, int | None, int]:
        """A REST infer body decoded strictly, scored (with the concurrent requests) and its response encoded."""
        del caller  # every allowed caller is served alike
        assert self.decoder is not None
        batch, options = self.decoder.from_rest(body, header_length)
        outputs = await self.score_async(batch)
        content, length = rest_response(self.name, self.version, self.parameters(), options, outputs)
        return content, length, batch.rows

    async def predict(
        self,
        payload: InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        """Score a kserve ``InferRequest`` (gRPC, or any caller of the kserve data plane)."""
        del headers, response_headers
        assert self.decoder is not None
        if not isinstance(payload, InferRequest):
            raise InvalidInput("this server speaks the V2 (Open Inference) protocol: POST /v2/models/<name>/infer")
        started = time.perf_counter()
        protocol = "grpc" if payload.from_grpc else "kserve"
        try:
            batch = self.decoder.batch(
                TensorIn(
                    str(tensor.name),
                    str(tensor.datatype),
                    list(tensor.shape) if tensor.shape is not None else [],
                    values=None if getattr(tensor, "_raw_data", None) is not None else list(tensor.data or []),
                    raw=getattr(tensor, "_raw_data", None),
                )
                for tensor in payload.inputs
            )
            requested = [output.name for output in payload.request_outputs or []]
            check_outputs(requested)
            outputs = await self.score_async(batch)
        except BadRequest as exc:
            self.observe(protocol, "bad_request", started, rows=0)
            raise InvalidInput(str(exc)) from exc
        except Exception:
            self.observe(protocol, "error", started, rows=0)  # the server answers INTERNAL with a fixed message
            raise
        tensors = []
        for name in requested or OUTPUTS:
            datatype, values = outputs[name]
            tensor = InferOutput(name=name, shape=[int(values.shape[0])], datatype=datatype)
            tensor.set_data_from_numpy(values, binary_data=False)
            tensors.append(tensor)
        self.observe(protocol, "ok", started, rows=batch.rows)
        return InferResponse(
            response_id=payload.id or "",
            model_name=self.name,
            infer_outputs=tensors,
            model_version=self.version,
            parameters=self.parameters(),
            from_grpc=payload.from_grpc,
            use_binary_outputs=payload.use_binary_outputs,
        )

    @staticmethod
    def observe(protocol: str, outcome: str, started: float, rows: int) -> None:
        """Count a request, its latency and a request log line (no row values: they may be personal data)."""
        elapsed = time.perf_counter() - started
        REQUESTS.labels(protocol, outcome).inc()
        LATENCY.labels(protocol).observe(elapsed)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("infer %s %s rows=%d ms=%.3f", protocol, outcome, rows, elapsed * 1000)
