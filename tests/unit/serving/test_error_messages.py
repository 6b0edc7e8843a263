"""A bad request's message names the input, datatype, shape or position, never a value the client sent.

Every case puts a personal-looking value (an e-mail address, a raw customer id) in the one place
the request is wrong, and the refusal must still say where the problem is without repeating it.
"""

from __future__ import annotations

import copy
import json
import struct
from typing import Any, Callable

import pytest

from serving.protocol import BadRequest, Decoder, TensorIn, check_outputs

EMAIL, CUSTOMER = "jane.doe@example.com", "CUST-0042917"
NUMERIC, CATEGORICAL = ("tenure_h", "monthly_charges"), ("plan",)
DECODER = Decoder(NUMERIC, CATEGORICAL, max_rows=8)


def valid() -> dict[str, Any]:
    """A correct two-row JSON request."""
    return {
        "inputs": [
            {"name": "tenure_h", "datatype": "FP64", "shape": [2], "data": [1.0, None]},
            {"name": "monthly_charges", "datatype": "FP64", "shape": [2], "data": [9.5, 20.0]},
            {"name": "plan", "datatype": "BYTES", "shape": [2], "data": ["basic", None]},
        ]
    }


def changed(change: Callable[[dict[str, Any]], Any]) -> bytes:
    """The valid request changed by ``change``, as a body."""
    body = copy.deepcopy(valid())
    change(body)
    return json.dumps(body).encode()


def binary(size: Any) -> tuple[bytes, int]:
    """A binary-extension body whose first tensor declares ``size`` bytes."""
    header = copy.deepcopy(valid())
    header["inputs"][0].pop("data")
    header["inputs"][0]["parameters"] = {"binary_data_size": size}
    text = json.dumps(header).encode()
    return text + struct.pack("<dd", 1.0, 2.0), len(text)


# case -> (body, header length, words the message must hold to say where the problem is)
CASES: dict[str, tuple[bytes, int | None, str]] = {
    "e-mail where a number belongs": (
        changed(lambda b: b["inputs"][0].update(data=[1.0, EMAIL])),
        None,
        "input 'tenure_h': the value at position 1",
    ),
    "customer id inside an object where a number belongs": (
        changed(lambda b: b["inputs"][1].update(data=[{"id": CUSTOMER}, 1.0])),
        None,
        "input 'monthly_charges': the value at position 0 is an object",
    ),
    "customer id in a list where text belongs": (
        changed(lambda b: b["inputs"][2].update(data=["basic", [CUSTOMER]])),
        None,
        "input 'plan': the value at position 1 is a list",
    ),
    "a text value too long, made of e-mails": (
        changed(lambda b: b["inputs"][2].update(data=[EMAIL * 60, None])),
        None,
        "input 'plan': the value at position 0",
    ),
    "an input named after a customer": (
        changed(lambda b: b["inputs"].append({**b["inputs"][0], "name": CUSTOMER})),
        None,
        "inputs[3]",
    ),
    "an unknown name sent twice": (
        changed(lambda b: b["inputs"].extend([{**b["inputs"][0], "name": EMAIL}] * 2)),
        None,
        "inputs[4]",
    ),
    "a name that is not text": (changed(lambda b: b["inputs"][1].update(name=[EMAIL])), None, "inputs[1]"),
    "a request field named after an e-mail": (changed(lambda b: b.update({EMAIL: 1})), None, "unknown request fields"),
    "a tensor field named after a customer": (
        changed(lambda b: b["inputs"][0].update({CUSTOMER: True})),
        None,
        "input 'tenure_h': unknown fields (1)",
    ),
    "a datatype that is a customer id": (
        changed(lambda b: b["inputs"][0].update(datatype=CUSTOMER)),
        None,
        "input 'tenure_h' is numeric",
    ),
    "a shape holding an e-mail": (changed(lambda b: b["inputs"][0].update(shape=[EMAIL])), None, "input 'tenure_h'"),
    "parameters that are an e-mail": (
        changed(lambda b: b["inputs"][2].update(parameters=EMAIL)),
        None,
        "input 'plan': 'parameters'",
    ),
    "data that is a customer id": (changed(lambda b: b["inputs"][2].update(data=CUSTOMER)), None, "input 'plan'"),
    "an output named after an e-mail": (
        changed(lambda b: b.update(outputs=[{"name": "churn_label"}, {"name": EMAIL}])),
        None,
        "outputs[1]",
    ),
    "an id that is an object": (changed(lambda b: b.update(id={EMAIL: CUSTOMER})), None, "'id' must be text"),
    "broken JSON around an e-mail": (
        b'{"inputs": [' + EMAIL.encode() + b"]}",
        None,
        "not valid JSON: unexpected character",
    ),
    "a binary size that is a customer id": (*binary(CUSTOMER), "input 'tenure_h': binary_data_size"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_refusal_says_where_without_repeating_the_value(case: str) -> None:
    body, header_length, where = CASES[case]
    with pytest.raises(BadRequest) as refused:
        DECODER.from_rest(body, header_length)
    message = str(refused.value)
    assert where in message, message
    assert EMAIL not in message and CUSTOMER not in message and "CUST-" not in message, message


def test_binary_text_is_named_by_position_too() -> None:
    raw = struct.pack("<I", 5) + b"basic" + struct.pack("<I", len(EMAIL) + 1) + EMAIL.encode() + b"\xff"
    tensors = [
        TensorIn("tenure_h", "FP64", [2], values=[1.0, 2.0]),
        TensorIn("monthly_charges", "FP64", [2], values=[1.0, 2.0]),
        TensorIn("plan", "BYTES", [2], raw=raw),
    ]
    with pytest.raises(BadRequest, match=r"input 'plan': the value at position 1 is not valid UTF-8") as refused:
        DECODER.batch(tensors)
    assert EMAIL not in str(refused.value)


def test_grpc_outputs_and_datatypes_are_checked_without_echo() -> None:
    with pytest.raises(BadRequest, match=r"unknown output at outputs\[0\]") as refused:
        check_outputs([EMAIL])
    assert EMAIL not in str(refused.value)
    check_outputs(["churn_probability", "churn_label"])  # the model's outputs pass
    tensors = [
        TensorIn("tenure_h", "INT32", [1], values=[1]),
        TensorIn("monthly_charges", "FP64", [1], values=[1.0]),
        TensorIn("plan", "BYTES", [1], values=["basic"]),
    ]
    with pytest.raises(BadRequest, match="datatype must be FP64 \\(or FP32\\), got 'INT32'"):
        DECODER.batch(tensors)  # a protocol datatype is named: it cannot be personal data


def test_a_valid_request_still_decodes() -> None:
    batch, options = DECODER.from_rest(json.dumps({**valid(), "id": "r-1"}).encode(), None)
    assert batch.rows == 2 and batch.categorical == [["basic", None]] and options.request_id == "r-1"
