"""Refusals over HTTP never repeat what the client sent: a model name, a field, a value (personal data)."""

from __future__ import annotations

import json

import pytest
import requests

from churnops.training.features import FEATURE_SPEC
from tests.integration.serving.conftest import MODEL_NAME, Server
from tests.integration.serving.test_bad_input import INFER, mutated, tensor, valid_body
from tests.support.auth import headers as auth_headers

EMAIL, CUSTOMER = "jane.doe@example.com", "CUST-0042917"
NUMERIC, TEXTUAL = FEATURE_SPEC.numeric[0], FEATURE_SPEC.categorical[0]

# case -> (method, path, body, headers, status)
CASES = {
    "e-mail as a number": (
        "POST",
        INFER,
        mutated(lambda b: tensor(b, NUMERIC).update(data=[EMAIL, 1.0, 2.0])),
        None,
        400,
    ),
    "customer id inside a text value": (
        "POST",
        INFER,
        mutated(lambda b: tensor(b, TEXTUAL).update(data=[{"customer_id": CUSTOMER}, "a", "b"])),
        None,
        400,
    ),
    "input named after a customer": (
        "POST",
        INFER,
        mutated(lambda b: b["inputs"].append({**b["inputs"][0], "name": CUSTOMER})),
        None,
        400,
    ),
    "request field named after an e-mail": ("POST", INFER, mutated(lambda b: b.update({EMAIL: 1})), None, 400),
    "datatype that is a customer id": (
        "POST",
        INFER,
        mutated(lambda b: tensor(b, NUMERIC).update(datatype=CUSTOMER)),
        None,
        400,
    ),
    "output named after an e-mail": ("POST", INFER, mutated(lambda b: b.update(outputs=[{"name": EMAIL}])), None, 400),
    "broken JSON around an e-mail": ("POST", INFER, f'{{"inputs": [{EMAIL}'.encode(), None, 400),
    "content type holding an e-mail": ("POST", INFER, b"{}", {"content-type": f"text/{EMAIL}"}, 415),
    "model named after a customer": ("POST", f"/v2/models/{CUSTOMER}/infer", valid_body(), None, 404),
    "version named after a customer": (
        "POST",
        f"/v2/models/{MODEL_NAME}/versions/{CUSTOMER}/infer",
        valid_body(),
        None,
        404,
    ),
    "readiness of a customer (kserve's route)": ("GET", f"/v2/models/{CUSTOMER}/ready", None, None, 404),
    "v1 predict of a customer (kserve's route)": (
        "POST",
        f"/v1/models/{CUSTOMER}:predict",
        {"instances": [EMAIL]},
        None,
        404,
    ),
    "v1 predict with an e-mail in broken JSON (kserve's route)": (
        "POST",
        f"/v1/models/{MODEL_NAME}:predict",
        f'{{"instances": [{EMAIL}'.encode(),
        None,
        400,
    ),
    "unloading a customer": ("POST", f"/v2/repository/models/{CUSTOMER}/unload", None, None, 403),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_refusal_holds_no_value_the_client_sent(server: Server, case: str) -> None:
    method, path, body, headers, status = CASES[case]
    if isinstance(body, bytes):
        reply = requests.request(
            method,
            server.url(path),
            data=body,
            timeout=30,
            headers={**auth_headers(), **(headers or {"content-type": "application/json"})},
        )
    else:
        reply = requests.request(
            method, server.url(path), json=body, timeout=30, headers={**auth_headers(), **(headers or {})}
        )
    assert reply.status_code == status, reply.text
    message = reply.json()["error"]
    assert isinstance(message, str) and len(message) > 10
    for value in (EMAIL, CUSTOMER, "jane.doe", "0042917"):
        assert value not in reply.text and value not in json.dumps(dict(reply.headers))
