"""Smoke tests of a deployed predictor and transformer over the V2 (Open Inference) REST protocol.

Four checks, in order, each a clear failure line: the server is ready (``/v2/health/ready``), the
model is ready (``/v2/models/{name}/ready``), the model metadata lists exactly the feature spec's
inputs (one named tensor per feature: ``FP64`` for numeric, ``BYTES`` for categorical, in model-input
order) and, when a version is expected, names it in ``parameters.model_version``; and a real
inference on two rows answers one probability in [0, 1] per row. The by-customer transformer's test
(:func:`transformer_smoke_test`) checks that it is ready and answers a request by customer id (an id no
snapshot holds: the answer is a row with its reason, and no customer's data is touched).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import requests

from churnops.errors import DeploymentError
from churnops.model.spec import FeatureSpec

SMOKE_ROWS = 2


class SmokeTestFailed(DeploymentError):
    """The deployed predictor does not answer as the released model must."""


@dataclass(frozen=True)
class SmokeResult:
    """What the smoke test saw."""

    url: str
    model_version: str | None
    probabilities: list[float]
    latency_ms: float


def expected_inputs(spec: FeatureSpec) -> list[tuple[str, str]]:
    """(name, V2 datatype) of every input tensor the model must declare, in order."""
    return [(name, "FP64") for name in spec.numeric] + [(name, "BYTES") for name in spec.categorical]


def inference_request(spec: FeatureSpec, rows: int = SMOKE_ROWS) -> dict[str, Any]:
    """A V2 inference request with ``rows`` plausible rows (one tensor per feature)."""
    inputs: list[dict[str, Any]] = [
        {"name": name, "datatype": "FP64", "shape": [rows], "data": [float(i + 1) for i in range(rows)]}
        for name in spec.numeric
    ]
    inputs += [
        {"name": name, "datatype": "BYTES", "shape": [rows], "data": ["unknown"] * rows} for name in spec.categorical
    ]
    return {"id": "churnops-smoke-test", "inputs": inputs}


def _get(session: requests.Session, url: str, timeout: float, auth: dict[str, str] | None = None) -> requests.Response:
    try:
        return session.get(url, timeout=timeout, headers=auth)
    except requests.RequestException as exc:
        raise SmokeTestFailed(f"{url} unreachable ({type(exc).__name__})") from exc


def _json(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise SmokeTestFailed(f"{what} answered HTTP {response.status_code} with no JSON body") from exc
    if not isinstance(body, dict):
        raise SmokeTestFailed(f"{what} answered a JSON {type(body).__name__}, not an object")
    return body


def _check_metadata(metadata: dict[str, Any], spec: FeatureSpec, expected_version: str | None) -> str | None:
    declared = [(item.get("name"), item.get("datatype")) for item in metadata.get("inputs") or []]
    wanted = expected_inputs(spec)
    if declared != wanted:
        names, wanted_names = [n for n, _ in declared], [n for n, _ in wanted]
        missing = sorted(set(wanted_names) - set(names))
        extra = sorted(set(names) - set(wanted_names))
        types = dict(wanted)
        mistyped = sorted(n for n, t in declared if n in types and types[n] != t)
        detail = f"missing {missing or '-'}, unexpected {extra or '-'}, wrong type {mistyped or '-'}"
        if not (missing or extra or mistyped):
            first = next(i for i, (a, b) in enumerate(zip(names, wanted_names)) if a != b)
            detail = f"inputs out of order from position {first} ({names[first]!r}, expected {wanted_names[first]!r})"
        raise SmokeTestFailed(f"model metadata does not match the feature spec: {detail}")
    version = (metadata.get("parameters") or {}).get("model_version")
    if expected_version is not None and str(version) != str(expected_version):
        raise SmokeTestFailed(f"the predictor serves model version {version!r}, expected {expected_version!r}")
    return None if version is None else str(version)


def _probabilities(body: dict[str, Any], rows: int) -> list[float]:
    outputs = sorted(body.get("outputs") or [], key=lambda o: "probability" not in str(o.get("name", "")))
    for output in outputs:
        shape = output.get("shape") or []
        data = output.get("data") or []
        if not shape or shape[0] != rows or len(data) != math.prod(shape):
            continue
        if shape[1:] not in ([], [1]):
            continue
        try:
            values = [float(value) for value in data]
        except (TypeError, ValueError):
            continue
        bad = [value for value in values if not (math.isfinite(value) and 0.0 <= value <= 1.0)]
        if bad:
            raise SmokeTestFailed(f"output {output.get('name')!r} holds values outside [0, 1]: {bad[:3]}")
        return values
    shapes = [(o.get("name"), o.get("shape")) for o in body.get("outputs") or []]
    raise SmokeTestFailed(f"no output with one probability per row ({rows} rows); outputs were {shapes}")


def smoke_test(
    base_url: str,
    model_name: str,
    spec: FeatureSpec,
    expected_version: str | None = None,
    timeout_s: float = 10.0,
    session: requests.Session | None = None,
    auth: dict[str, str] | None = None,
) -> SmokeResult:
    """Run the four checks against the predictor at ``base_url`` (metadata and inference with the ``auth``
    headers, the probes without); raise :class:`SmokeTestFailed` on the first miss."""
    http = session or requests.Session()
    base = base_url.rstrip("/")
    _ready(http, base, model_name, timeout_s)
    meta = _get(http, f"{base}/v2/models/{model_name}", timeout_s, auth)
    if meta.status_code != 200:
        raise SmokeTestFailed(f"model metadata: HTTP {meta.status_code}")
    version = _check_metadata(_json(meta, "model metadata"), spec, expected_version)
    try:
        answer = http.post(
            f"{base}/v2/models/{model_name}/infer", json=inference_request(spec), timeout=timeout_s, headers=auth
        )
    except requests.RequestException as exc:
        raise SmokeTestFailed(f"inference request failed ({type(exc).__name__})") from exc
    if answer.status_code != 200:
        error = _json(answer, "inference").get("error", "") if answer.content else ""
        raise SmokeTestFailed(f"inference answered HTTP {answer.status_code}: {str(error)[:200]}")
    probabilities = _probabilities(_json(answer, "inference"), SMOKE_ROWS)
    return SmokeResult(
        url=base, model_version=version, probabilities=probabilities, latency_ms=answer.elapsed.total_seconds() * 1000
    )


SMOKE_CUSTOMER = "churnops-smoke-test"


def _ready(http: requests.Session, base: str, model_name: str, timeout_s: float) -> None:
    ready = _get(http, f"{base}/v2/health/ready", timeout_s)
    if ready.status_code != 200:
        raise SmokeTestFailed(f"server not ready: GET /v2/health/ready answered HTTP {ready.status_code}")
    model_ready = _get(http, f"{base}/v2/models/{model_name}/ready", timeout_s)
    if model_ready.status_code != 200:
        raise SmokeTestFailed(f"model {model_name!r} not ready: HTTP {model_ready.status_code}")


def transformer_smoke_test(
    base_url: str,
    model_name: str,
    timeout_s: float = 10.0,
    session: requests.Session | None = None,
    auth: dict[str, str] | None = None,
) -> SmokeResult:
    """The transformer is ready and answers one ``customer_id`` row (sent with the ``auth`` headers) with one row
    per output."""
    http = session or requests.Session()
    base = base_url.rstrip("/")
    _ready(http, base, model_name, timeout_s)
    request = {
        "id": "churnops-smoke-test",
        "inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": [SMOKE_CUSTOMER]}],
    }
    try:
        answer = http.post(f"{base}/v2/models/{model_name}/infer", json=request, timeout=timeout_s, headers=auth)
    except requests.RequestException as exc:
        raise SmokeTestFailed(f"transformer inference request failed ({type(exc).__name__})") from exc
    if answer.status_code != 200:
        error = _json(answer, "transformer inference").get("error", "") if answer.content else ""
        raise SmokeTestFailed(f"transformer inference answered HTTP {answer.status_code}: {str(error)[:200]}")
    outputs = _json(answer, "transformer inference").get("outputs") or []
    shapes = [(o.get("name"), o.get("shape")) for o in outputs]
    if not outputs or any((o.get("shape") or [None])[0] != 1 for o in outputs):
        raise SmokeTestFailed(f"the transformer did not answer one row per output for one customer: {shapes}")
    return SmokeResult(url=base, model_version=None, probabilities=[], latency_ms=answer.elapsed.total_seconds() * 1000)
