"""Bad requests get a 4xx with a JSON error message, never a 5xx or a stack trace."""

from __future__ import annotations

import copy
import json
import struct
from typing import Any

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnops.training.features import FEATURE_SPEC
from tests.integration.serving.conftest import MODEL_NAME, Server, feature_rows
from tests.support.auth import headers as auth_headers

ROWS = feature_rows(3, seed=11)
INFER = f"/v2/models/{MODEL_NAME}/infer"


def valid_body() -> dict[str, Any]:
    """A correct JSON request for ROWS (null for missing values)."""
    return {
        "inputs": [
            {
                "name": n,
                "shape": [len(ROWS)],
                "datatype": "FP64" if n in FEATURE_SPEC.numeric else "BYTES",
                "data": [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in ROWS[n]],
            }
            for n in FEATURE_SPEC.columns
        ]
    }


def tensor(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The input tensor called ``name``."""
    return next(t for t in body["inputs"] if t["name"] == name)


def post(
    server: Server, payload: Any = None, data: bytes | None = None, headers: dict[str, str] | None = None
) -> requests.Response:
    """POST to the infer endpoint (as an allowed caller)."""
    headers = {**auth_headers(), **(headers or {})}
    if payload is not None:
        return requests.post(server.url(INFER), json=payload, timeout=30, headers=headers)
    return requests.post(server.url(INFER), data=data, timeout=30, headers=headers)


def assert_refused(reply: requests.Response, status: int, words: str) -> None:
    """A 4xx with ``{"error": ...}`` mentioning ``words`` and no traceback."""
    assert reply.status_code == status, reply.text
    message = reply.json()["error"]
    assert words in message and "Traceback" not in message


def mutated(change) -> dict[str, Any]:
    """A valid body changed by ``change(body)``."""
    body = copy.deepcopy(valid_body())
    change(body)
    return body


NUMERIC, TEXTUAL = FEATURE_SPEC.numeric[0], FEATURE_SPEC.categorical[0]
CASES = {
    "missing tensor": (mutated(lambda b: b["inputs"].pop()), 400, "missing inputs"),
    "unknown tensor": (
        mutated(lambda b: b["inputs"].append({**b["inputs"][0], "name": "shoe_size"})),
        400,
        "unknown inputs",
    ),
    "duplicate tensor": (mutated(lambda b: b["inputs"].append(b["inputs"][0])), 400, "twice"),
    "wrong datatype": (mutated(lambda b: tensor(b, NUMERIC).update(datatype="INT32")), 400, "FP64"),
    "text where a number belongs": (
        mutated(lambda b: tensor(b, NUMERIC).update(data=["1", 2.0, 3.0])),
        400,
        "not a number",
    ),
    "number where text belongs": (mutated(lambda b: tensor(b, TEXTUAL).update(data=[1, "a", "b"])), 400, "not text"),
    "rank-2 shape": (mutated(lambda b: tensor(b, NUMERIC).update(shape=[3, 1])), 400, "shape must be [rows]"),
    "inconsistent shapes": (mutated(lambda b: tensor(b, NUMERIC).update(shape=[2], data=[1.0, 2.0])), 400, "disagree"),
    "data shorter than shape": (mutated(lambda b: tensor(b, NUMERIC).update(data=[1.0])), 400, "values for shape"),
    "empty batch": ({"inputs": [{**t, "shape": [0], "data": []} for t in valid_body()["inputs"]]}, 400, "empty"),
    "no inputs": ({"inputs": []}, 400, "non-empty"),
    "unknown output": (mutated(lambda b: b.update(outputs=[{"name": "churn_reason"}])), 400, "unknown output"),
    "unknown field": (mutated(lambda b: b.update(instances=[1])), 400, "unknown request fields"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_each_class_of_bad_json_request_is_a_4xx_with_a_message(server: Server, case: str) -> None:
    payload, status, words = CASES[case]
    assert_refused(post(server, payload), status, words)


def test_oversized_batch_is_413(server: Server) -> None:
    rows = 5000
    body = {
        "inputs": [
            {
                "name": n,
                "shape": [rows],
                "datatype": "FP64" if n in FEATURE_SPEC.numeric else "BYTES",
                "data": [0.0] * rows if n in FEATURE_SPEC.numeric else ["basic"] * rows,
            }
            for n in FEATURE_SPEC.columns
        ]
    }
    assert_refused(post(server, body), 413, "at most")


def test_invalid_json_and_wrong_content_type(server: Server) -> None:
    assert_refused(
        post(server, data=b'{"inputs": [', headers={"content-type": "application/json"}), 400, "not valid JSON"
    )
    assert_refused(post(server, data=b'{"inputs": [1e999]}', headers={"content-type": "application/json"}), 400, "")
    assert_refused(
        post(server, data=b"inputs=1", headers={"content-type": "application/x-www-form-urlencoded"}),
        415,
        "application/json",
    )
    assert_refused(post(server, data=b"{}", headers={"content-type": "text/plain"}), 415, "content type")


def binary_request(numeric: dict[str, bytes] | None = None, text: bytes | None = None) -> tuple[bytes, dict]:
    """A one-row binary-extension request; ``numeric``/``text`` replace the raw data of the first tensors."""
    inputs, raw = [], []
    for name in FEATURE_SPEC.columns:
        if name in FEATURE_SPEC.numeric:
            data = (numeric or {}).get(name, struct.pack("<d", 1.0))
            datatype = "FP64"
        else:
            data = text if text is not None and name == TEXTUAL else struct.pack("<I", 5) + b"basic"
            datatype = "BYTES"
        inputs.append({"name": name, "shape": [1], "datatype": datatype, "parameters": {"binary_data_size": len(data)}})
        raw.append(data)
    header = json.dumps({"inputs": inputs}).encode()
    return header + b"".join(raw), {
        "Inference-Header-Content-Length": str(len(header)),
        "content-type": "application/octet-stream",
    }


def test_binary_tensors_are_checked_too(server: Server) -> None:
    body, headers = binary_request()
    assert post(server, data=body, headers=headers).status_code == 200
    body, headers = binary_request(numeric={NUMERIC: struct.pack("<d", float("inf"))})
    assert_refused(post(server, data=body, headers=headers), 400, "infinite")
    body, headers = binary_request(numeric={NUMERIC: struct.pack("<d", float("nan"))})  # NaN = missing: scored
    assert post(server, data=body, headers=headers).status_code == 200
    body, headers = binary_request(numeric={NUMERIC: b"\x00" * 4})
    assert_refused(post(server, data=body, headers=headers), 400, "bytes of data")
    body, headers = binary_request(text=struct.pack("<I", 2) + b"\xff\xfe")
    assert_refused(post(server, data=body, headers=headers), 400, "UTF-8")
    body, headers = binary_request(text=struct.pack("<I", 99) + b"ab")
    assert_refused(post(server, data=body, headers=headers), 400, "BYTES element")
    assert_refused(
        post(server, data=body, headers={**headers, "Inference-Header-Content-Length": "99999"}), 400, "does not fit"
    )


def test_infinite_or_nan_json_numbers_are_refused(server: Server) -> None:
    text = json.dumps(mutated(lambda b: tensor(b, NUMERIC).update(data=[123456.5, 1.0, 2.0])))
    for spelling, words in (("1e999", "infinity"), ("Infinity", "not valid JSON"), ("NaN", "not valid JSON")):
        body = text.replace("123456.5", spelling).encode()
        assert_refused(post(server, data=body, headers={"content-type": "application/json"}), 400, words)


def test_the_model_cannot_be_unloaded_remotely(server: Server) -> None:
    reply = requests.post(server.url(f"/v2/repository/models/{MODEL_NAME}/unload"), timeout=10, headers=auth_headers())
    assert reply.status_code == 403 and reply.json()["error"]
    assert requests.get(server.url(f"/v2/models/{MODEL_NAME}/ready"), timeout=10).status_code == 200


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
keys = st.sampled_from(["name", "shape", "datatype", "data", "parameters", "inputs", "outputs", "id"])


def _mutations(draw_value, body: dict[str, Any], which: int, key: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target = body["inputs"][which % len(body["inputs"])]
    target[key] = draw_value
    return body


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=json_values, which=st.integers(0, 60), key=keys, whole=st.booleans())
def test_fuzzed_payloads_never_get_a_5xx(server: Server, garbage: Any, which: int, key: str, whole: bool) -> None:
    payload = {"inputs": garbage} if whole else _mutations(garbage, valid_body(), which, key)
    reply = post(server, payload)
    assert reply.status_code < 500, reply.text
    if reply.status_code >= 400:
        assert isinstance(reply.json()["error"], str)
