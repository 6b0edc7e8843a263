"""A stand-in V2 (Open Inference Protocol) model server for deploy and canary tests.

It answers the four REST endpoints the smoke test uses, shaped as the protocol specifies
(``tests/specs/open-inference-rest.yaml``): server ready, model ready, model metadata (one input
tensor per feature of a :class:`FeatureSpec`, the model version in ``parameters``) and inference
(one probability per row). Attributes switch it into the ways a broken deployment answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from werkzeug.wrappers import Request, Response

from churnops.deploy.smoke import expected_inputs
from churnops.model.spec import FeatureSpec
from tests.support.wsgi_double import WsgiDouble


class V2Double(WsgiDouble):
    """A V2 model server on 127.0.0.1; ``inputs``, ``ready``, ``probability`` and ``model_version`` are mutable."""

    name = "v2-double"

    def __init__(self, spec: FeatureSpec, model_name: str = "churn", model_version: str | None = "1") -> None:
        super().__init__()
        self.model_name = model_name
        self.model_version = model_version
        self.inputs: list[tuple[str, str]] = expected_inputs(spec)
        self.ready = True
        self.probability = 0.25
        self.calls: list[str] = []
        self.tokens: list[tuple[str | None, str | None]] = []  # (Authorization, X-Churnops-Authorization) per call

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        request = Request(environ)
        self.calls.append(f"{request.method} {request.path}")
        self.tokens.append((request.headers.get("Authorization"), request.headers.get("X-Churnops-Authorization")))
        return self._answer(request)(environ, start_response)

    def _answer(self, request: Request) -> Response:
        model = f"/v2/models/{self.model_name}"
        if request.path == "/v2/health/ready":
            return _json({"ready": self.ready}, 200 if self.ready else 503)
        if request.path == f"{model}/ready":
            return _json({"name": self.model_name, "ready": self.ready}, 200 if self.ready else 503)
        if request.path == model and request.method == "GET":
            params = {} if self.model_version is None else {"model_version": self.model_version}
            tensors = [{"name": n, "datatype": t, "shape": [-1]} for n, t in self.inputs]
            return _json(
                {
                    "name": self.model_name,
                    "platform": "churnops",
                    "inputs": tensors,
                    "outputs": [
                        {"name": "churn_label", "datatype": "INT64", "shape": [-1]},
                        {"name": "churn_probability", "datatype": "FP64", "shape": [-1]},
                    ],
                    "parameters": params,
                }
            )
        if request.path == f"{model}/infer" and request.method == "POST":
            return self._infer(request)
        return _json({"error": f"no route {request.path}"}, 404)

    def _infer(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        given = {item.get("name"): item for item in body.get("inputs") or []}
        missing = [name for name, _ in self.inputs if name not in given]
        if missing:
            return _json({"error": f"missing input tensors: {missing[:3]}"}, 400)
        rows = {tuple(item.get("shape") or []) for item in given.values()}
        if len(rows) != 1:
            return _json({"error": "input tensors disagree on their shape"}, 400)
        (shape,) = rows
        return _json(
            {
                "model_name": self.model_name,
                "id": body.get("id", ""),
                "outputs": [
                    {
                        "name": "churn_label",
                        "datatype": "INT64",
                        "shape": [shape[0]],
                        "data": [int(self.probability >= 0.5)] * shape[0],
                    },
                    {
                        "name": "churn_probability",
                        "datatype": "FP64",
                        "shape": [shape[0]],
                        "data": [self.probability] * shape[0],
                    },
                ],
            }
        )


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


class TransformerDouble(WsgiDouble):
    """The by-customer transformer's REST surface (serving/transformer.py): ready, model ready, and inference by
    ``customer_id``, where every id is unknown (a row with its reason, as for an id no snapshot holds)."""

    name = "transformer-double"

    def __init__(self, model_name: str = "churn") -> None:
        super().__init__()
        self.model_name = model_name
        self.ready = True
        self.calls: list[str] = []

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        request = Request(environ)
        self.calls.append(f"{request.method} {request.path}")
        return self._answer(request)(environ, start_response)

    def _answer(self, request: Request) -> Response:
        model = f"/v2/models/{self.model_name}"
        if request.path in ("/v2/health/ready", f"{model}/ready"):
            return _json({"ready": self.ready}, 200 if self.ready else 503)
        if request.path != f"{model}/infer" or request.method != "POST":
            return _json({"error": f"no route {request.path}"}, 404)
        body = request.get_json(silent=True) or {}
        tensors = body.get("inputs") or []
        if [t.get("name") for t in tensors] != ["customer_id"] or tensors[0].get("datatype") != "BYTES":
            return _json({"error": "send exactly one tensor, 'customer_id'"}, 400)
        rows = len(tensors[0].get("data") or [])
        return _json(
            {
                "model_name": self.model_name,
                "outputs": [
                    {"name": "churn_probability", "datatype": "FP64", "shape": [rows], "data": [None] * rows},
                    {"name": "churn_label", "datatype": "INT64", "shape": [rows], "data": [-1] * rows},
                    {
                        "name": "error",
                        "datatype": "BYTES",
                        "shape": [rows],
                        "data": ["unknown customer: not in the online feature snapshot"] * rows,
                    },
                ],
            }
        )
