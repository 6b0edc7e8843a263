"""Strict decoding of Open Inference (KServe V2) requests into model rows, and encoding of responses.

One named tensor per feature, rank 1 (``shape: [rows]``), all of the same length:

- numeric feature: ``FP64`` (``FP32`` is accepted and widened); ``NaN`` (binary) or JSON ``null``
  means missing (the model imputes it); infinities are refused;
- categorical feature: ``BYTES`` holding UTF-8 text; JSON ``null`` means missing; a category the
  model never saw scores like an all-zero one-hot row.

Everything else is a :class:`BadRequest` (HTTP 400, gRPC INVALID_ARGUMENT) with a message naming
the tensor and the problem, or :class:`PayloadTooLarge` (HTTP 413) for a batch above the limit.
A message never repeats what the client sent in a field that can hold personal data: it names a
model input by its name, anything else by its position (``inputs[2]``, ``outputs[0]``), a value by
its position and JSON type, a datatype only when it is one of the protocol's, and shapes and sizes
(integers); unknown names, values and keys are counted, not shown. The server logs these messages.
The same checks serve the REST JSON body, the REST binary tensor extension and gRPC (through
kserve's ``InferRequest``).
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from churnops.errors import ChurnopsError
from churnops.model.predict import LABEL, OUTPUTS, PROBABILITY, churn_label

NUMERIC_TYPES: dict[str, np.dtype] = {"FP64": np.dtype("<f8"), "FP32": np.dtype("<f4")}
TEXT = "BYTES"
# kserve's own client also sends the model's name and version in the body
REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs", "model_name", "model_version"})
TENSOR_KEYS = frozenset({"name", "datatype", "shape", "data", "parameters"})
DEFAULT_MAX_ROWS = 4096
MAX_TEXT_BYTES = 1024
# The protocol's datatypes: a client's datatype is shown only when it is one of these.
DATATYPES = frozenset(
    {
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
        "BYTES",
        "BF16",
    }
)
_NUMBER_TYPES = frozenset({int, float, type(None)})
_TEXT_TYPES = frozenset({str})


class BadRequest(ChurnopsError):
    """A request that breaks the protocol or the model's input contract (HTTP 400)."""

    status = 400


class TooManyRequests(BadRequest):
    """A caller past its rate limit (HTTP 429, with ``Retry-After`` seconds)."""

    status = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PayloadTooLarge(BadRequest):
    """A batch above the server's row limit (HTTP 413)."""

    status = 413


class UpstreamError(ChurnopsError):
    """A valid request that a service behind this one did not answer (HTTP ``status``: 500 or 503)."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


class StrictModel(ABC):
    """A served model answered by the server's strict REST infer route (:class:`serving.server.InferRoute`)."""

    name: str
    ready: bool

    @property
    @abstractmethod
    def version(self) -> str | None:
        """The version a ``/versions/<v>/infer`` path must name (None: any)."""

    @abstractmethod
    async def answer_rest(
        self, body: bytes, header_length: int | None, caller: str = ""
    ) -> tuple[bytes, int | None, int]:
        """(response body, its JSON header's length when it has binary outputs, rows answered) for a REST
        infer body sent by ``caller`` (the authenticated account, empty when the server does not
        authenticate); :class:`BadRequest` or :class:`UpstreamError` when it cannot be answered."""

    @staticmethod
    @abstractmethod
    def observe(protocol: str, outcome: str, started: float, rows: int) -> None:
        """Count a request (``outcome``: ok, bad_request, error) and its latency since ``started``."""


def kind(value: Any) -> str:
    """The JSON type of a client's value, for an error message that must not repeat the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (str, bytes)):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "an object" if isinstance(value, dict) else "a value of another type"


def datatype_shown(datatype: Any) -> str:
    """A client's datatype when it is a protocol datatype; otherwise only that it is not one."""
    return repr(datatype) if datatype in DATATYPES else "a datatype the protocol does not define"


def shape_shown(shape: Any) -> str:
    """A client's shape when it is a list of integers (bounded); otherwise its JSON type."""
    if isinstance(shape, list) and all(_is_int(d) for d in shape):
        return str(shape) if len(shape) <= 8 else f"a shape of rank {len(shape)}"
    return kind(shape)


def check_outputs(names: Sequence[Any], outputs: Sequence[str] = OUTPUTS) -> None:
    """Every requested output name is one of ``outputs`` (an unknown one is named by position)."""
    for position, name in enumerate(names):
        if name not in outputs:
            raise BadRequest(f"unknown output at outputs[{position}]; outputs are {', '.join(outputs)}")


@dataclass
class Batch:
    """Decoded rows: a float64 matrix of the numeric features and one list per categorical feature."""

    numeric: np.ndarray
    categorical: list[list[str | None]]
    rows: int


@dataclass
class RequestOptions:
    """What the request asks of the response: its id, the outputs and whether they are binary."""

    request_id: str | None = None
    outputs: tuple[str, ...] = OUTPUTS
    binary: dict[str, bool] = field(default_factory=dict)


@dataclass
class TensorIn:
    """One input tensor as received: values are a list (JSON, gRPC contents) or raw bytes (binary)."""

    name: str
    datatype: str
    shape: list[int]
    values: list[Any] | None = None
    raw: bytes | None = None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def text_elements(raw: bytes, label: str) -> list[bytes]:
    """The elements of a binary BYTES tensor (each a 4-byte little-endian length, then the bytes)."""
    elements: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadRequest(f"{label}: truncated BYTES element length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadRequest(f"{label}: BYTES element {len(elements)} is longer than the data sent")
        elements.append(raw[offset : offset + length])
        offset += length
    return elements


class Decoder:
    """Turns request tensors into a :class:`Batch` for a model with these numeric and categorical inputs
    (and these outputs)."""

    def __init__(
        self,
        numeric: Sequence[str],
        categorical: Sequence[str],
        max_rows: int = DEFAULT_MAX_ROWS,
        outputs: Sequence[str] = OUTPUTS,
    ) -> None:
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)
        self.max_rows = max_rows
        self.outputs = tuple(outputs)
        self._numeric_position = {name: i for i, name in enumerate(self.numeric)}
        self._categorical_position = {name: i for i, name in enumerate(self.categorical)}

    def label(self, name: Any, position: int | None = None) -> str:
        """How a message names an input: by its name when the model has it, else by its position."""
        if name in self._numeric_position or name in self._categorical_position:
            return f"input {name!r}"
        return "an input" if position is None else f"inputs[{position}]"

    # ---------------------------------------------------------------- tensors -> batch

    def batch(self, tensors: Iterable[TensorIn]) -> Batch:
        """Validate the tensors against the model's inputs and assemble the rows."""
        seen: dict[str, TensorIn] = {}
        unknown: list[int] = []
        for position, tensor in enumerate(tensors):
            if tensor.name in seen:
                raise BadRequest(f"{self.label(tensor.name, position)} is sent twice")
            seen[tensor.name] = tensor
            if tensor.name not in self._numeric_position and tensor.name not in self._categorical_position:
                unknown.append(position)
        if unknown:
            raise BadRequest(
                f"unknown inputs at {', '.join(f'inputs[{p}]' for p in unknown[:5])}"
                f"{' and more' if len(unknown) > 5 else ''} (names the model does not have; "
                "the model metadata lists the inputs)"
            )
        missing = [name for name in (*self.numeric, *self.categorical) if name not in seen]
        if missing:
            raise BadRequest(
                f"missing inputs {', '.join(missing[:5])}{' and more' if len(missing) > 5 else ''} "
                f"({len(missing)} of {len(self.numeric) + len(self.categorical)})"
            )
        rows = self._rows(seen.values())
        numeric = self._numeric_matrix([seen[name] for name in self.numeric], rows)
        categorical = [self._texts(seen[name], rows) for name in self.categorical]
        return Batch(numeric=numeric, categorical=categorical, rows=rows)

    def _numeric_matrix(self, tensors: list[TensorIn], rows: int) -> np.ndarray:
        """rows x numeric inputs, float64, NaN for missing; one conversion for all JSON columns."""
        columns: list[Any] = [self._numbers(tensor, rows) for tensor in tensors]
        try:
            matrix = np.array(columns, dtype=np.float64).reshape(len(tensors), rows)
        except OverflowError as exc:
            raise BadRequest("a numeric value is out of the FP64 range") from exc
        infinite = np.isinf(matrix).any(axis=1)
        if infinite.any():
            name = tensors[int(np.flatnonzero(infinite)[0])].name
            raise BadRequest(f"{self.label(name)}: infinite values are not allowed (NaN or null means missing)")
        return matrix.T

    def _rows(self, tensors: Iterable[TensorIn]) -> int:
        rows: int | None = None
        for tensor in tensors:
            shape = tensor.shape
            if not isinstance(shape, list) or len(shape) != 1 or not _is_int(shape[0]):
                raise BadRequest(f"{self.label(tensor.name)}: shape must be [rows], got {shape_shown(shape)}")
            if rows is not None and shape[0] != rows:
                raise BadRequest(
                    f"inputs disagree on the number of rows ({rows} and {shape[0]} for {self.label(tensor.name)})"
                )
            rows = shape[0]
        assert rows is not None
        if rows < 1:
            raise BadRequest("the batch is empty (shape [0]); send at least one row")
        if rows > self.max_rows:
            raise PayloadTooLarge(f"the batch has {rows} rows; this server accepts at most {self.max_rows}")
        return rows

    def _numbers(self, tensor: TensorIn, rows: int) -> Any:
        """One numeric column: a float64 array (binary) or the checked JSON/gRPC list (None = missing)."""
        label = self.label(tensor.name)
        dtype = NUMERIC_TYPES.get(tensor.datatype)
        if dtype is None:
            raise BadRequest(
                f"{label} is numeric: datatype must be FP64 (or FP32), got {datatype_shown(tensor.datatype)}"
            )
        if tensor.raw is not None:
            if len(tensor.raw) != rows * dtype.itemsize:
                raise BadRequest(
                    f"{label}: {len(tensor.raw)} bytes of data for shape [{rows}] "
                    f"{tensor.datatype} (expected {rows * dtype.itemsize})"
                )
            return np.frombuffer(tensor.raw, dtype=dtype).astype(np.float64)
        data = tensor.values if tensor.values is not None else []
        if len(data) != rows:
            raise BadRequest(f"{label}: {len(data)} values for shape [{rows}]")
        if not _NUMBER_TYPES.issuperset(map(type, data)):  # bool is not a number here
            position = next(i for i, value in enumerate(data) if type(value) not in _NUMBER_TYPES)
            raise BadRequest(
                f"{label}: the value at position {position} is {kind(data[position])}, not a number (or null)"
            )
        if tensor.datatype == "FP32":
            return np.array(data, dtype=np.float64).astype(np.float32).astype(np.float64)
        return data

    def _texts(self, tensor: TensorIn, rows: int) -> list[str | None]:
        label = self.label(tensor.name)
        if tensor.datatype != TEXT:
            raise BadRequest(f"{label} is categorical: datatype must be BYTES, got {datatype_shown(tensor.datatype)}")
        elements: list[Any] = (
            text_elements(tensor.raw, label)
            if tensor.raw is not None
            else (tensor.values if tensor.values is not None else [])
        )
        if len(elements) != rows:
            raise BadRequest(f"{label}: {len(elements)} values for shape [{rows}]")
        if _TEXT_TYPES.issuperset(map(type, elements)) and max(map(len, elements)) <= MAX_TEXT_BYTES:
            return list(elements)  # JSON text within the limit (the common case): nothing to check one by one
        texts: list[str | None] = []
        for position, value in enumerate(elements):
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise BadRequest(f"{label}: the value at position {position} is not valid UTF-8") from exc
            elif value is not None and not isinstance(value, str):
                raise BadRequest(f"{label}: the value at position {position} is {kind(value)}, not text (or null)")
            if value is not None and len(value) > MAX_TEXT_BYTES:
                raise BadRequest(
                    f"{label}: the value at position {position} is longer than {MAX_TEXT_BYTES} characters"
                )
            texts.append(value)
        return texts

    # ---------------------------------------------------------------- REST bodies

    def from_rest(self, body: bytes, header_length: int | None) -> tuple[Batch, RequestOptions]:
        """Decode a REST infer body: JSON, or JSON followed by binary tensors when ``header_length`` is set."""
        tensors, options = self.rest_tensors(body, header_length)
        return self.batch(tensors), options

    def rest_tensors(self, body: bytes, header_length: int | None) -> tuple[list[TensorIn], RequestOptions]:
        """The tensors of a REST infer body as sent (each one's structure checked) and what it asks of the response."""
        json_part = body if header_length is None else body[:header_length]
        if header_length is not None and not 0 < header_length <= len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length {header_length} does not fit a body of {len(body)} bytes"
            )
        try:
            request = orjson.loads(json_part)
        except orjson.JSONDecodeError as exc:  # the parser's messages are fixed texts: they never quote the body
            raise BadRequest(f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
        if not isinstance(request, dict):
            raise BadRequest("the body must be a JSON object with an 'inputs' list")
        extra = set(request) - REQUEST_KEYS
        if extra:
            raise BadRequest(
                f"unknown request fields ({len(extra)}); a request holds only {', '.join(sorted(REQUEST_KEYS))}"
            )
        inputs = request.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise BadRequest("'inputs' must be a non-empty list of tensors")
        parameters = self._parameters(request.get("parameters"), "request")
        tensors, offset = [], 0 if header_length is None else header_length
        for position, item in enumerate(inputs):
            tensor, offset = self._rest_tensor(item, position, body, offset, header_length is not None)
            tensors.append(tensor)
        if header_length is not None and offset != len(body):
            raise BadRequest(f"{len(body) - offset} bytes of binary data are not claimed by any input")
        return tensors, self._options(request.get("id"), parameters, request.get("outputs"))

    @staticmethod
    def _parameters(value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise BadRequest(f"{where}: 'parameters' must be an object")
        return value

    def _rest_tensor(self, item: Any, position: int, body: bytes, offset: int, binary: bool) -> tuple[TensorIn, int]:
        if not isinstance(item, dict):
            raise BadRequest(f"inputs[{position}] must be an object with name, datatype, shape and data")
        name = item.get("name")
        if not isinstance(name, str):
            raise BadRequest(f"inputs[{position}] needs a 'name' (text)")
        label = self.label(name, position)
        if not TENSOR_KEYS.issuperset(item):
            raise BadRequest(
                f"{label}: unknown fields ({len(set(item) - TENSOR_KEYS)}); an input holds only "
                f"{', '.join(sorted(TENSOR_KEYS))}"
            )
        datatype, shape = item.get("datatype"), item.get("shape")
        if not isinstance(datatype, str):
            raise BadRequest(f"{label} needs a 'datatype' (text)")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise BadRequest(f"{label} needs a 'shape' (a list of non-negative integers)")
        parameters = self._parameters(item.get("parameters"), label)
        size = parameters.get("binary_data_size")
        if "data" in item:
            if size is not None:
                raise BadRequest(f"{label} has both 'data' and binary_data_size")
            if not isinstance(item["data"], list):
                raise BadRequest(f"{label}: 'data' must be a flat list")
            return TensorIn(name, datatype, shape, values=item["data"]), offset
        if not binary or size is None:
            raise BadRequest(f"{label} has no 'data'")
        if not _is_int(size) or size < 0:
            raise BadRequest(f"{label}: binary_data_size must be a byte count, got {kind(size)}")
        if offset + size > len(body):
            raise BadRequest(f"{label}: binary_data_size {size} exceeds the data sent")
        return TensorIn(name, datatype, shape, raw=body[offset : offset + size]), offset + size

    def _options(self, request_id: Any, parameters: dict[str, Any], outputs: Any) -> RequestOptions:
        if request_id is not None and not isinstance(request_id, str):
            raise BadRequest("'id' must be text")
        default_binary = parameters.get("binary_data_output", False)
        if not isinstance(default_binary, bool):
            raise BadRequest("'binary_data_output' must be true or false")
        if outputs is None:
            return RequestOptions(request_id, self.outputs, {name: default_binary for name in self.outputs})
        if not isinstance(outputs, list) or not outputs:
            raise BadRequest("'outputs' must be a non-empty list")
        names: list[str] = []
        binary: dict[str, bool] = {}
        for position, output in enumerate(outputs):
            if not isinstance(output, dict) or not isinstance(output.get("name"), str):
                raise BadRequest(f"outputs[{position}] must be an object with a 'name'")
            check_outputs([*names, output["name"]], self.outputs)
            flag = self._parameters(output.get("parameters"), f"outputs[{position}]").get("binary_data", default_binary)
            if not isinstance(flag, bool):
                raise BadRequest("'binary_data' must be true or false")
            names.append(output["name"])
            binary[output["name"]] = flag
        return RequestOptions(request_id, tuple(names), binary)


# ---------------------------------------------------------------- responses


def outputs_of(probability: np.ndarray, threshold: float) -> dict[str, tuple[str, np.ndarray]]:
    """The response tensors: name -> (datatype, values), labels at the model's decision ``threshold``."""
    return {
        PROBABILITY: ("FP64", probability.astype(np.float64)),
        LABEL: ("INT64", churn_label(probability, threshold)),
    }


def bytes_tensor(texts: Iterable[str]) -> bytes:
    """A BYTES tensor in the binary extension: each element a 4-byte little-endian length, then its UTF-8 bytes."""
    return b"".join(struct.pack("<I", len(data)) + data for data in (text.encode("utf-8") for text in texts))


def rest_response(
    model_name: str,
    model_version: str | None,
    parameters: dict[str, str],
    options: RequestOptions,
    outputs: dict[str, tuple[str, np.ndarray]],
) -> tuple[bytes, int | None]:
    """The REST response body and, when any output is binary, the JSON header's length."""
    tensors, raw = [], []
    for name in options.outputs:
        datatype, values = outputs[name]
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [int(values.shape[0])]}
        if options.binary.get(name, False):
            data = bytes_tensor(values) if datatype == TEXT else values.astype(values.dtype.newbyteorder("<")).tobytes()
            tensor["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
        else:
            tensor["data"] = values.tolist()
        tensors.append(tensor)
    response: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": tensors,
        "parameters": parameters,
    }
    if options.request_id is not None:
        response["id"] = options.request_id
    header = orjson.dumps(response)
    if not raw:
        return header, None
    return header + b"".join(raw), len(header)
