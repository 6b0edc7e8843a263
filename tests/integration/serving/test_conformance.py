"""The server against independent V2 clients (tritonclient HTTP and gRPC, kserve's REST client).

Every prediction is compared with in-process ``predict_proba`` of the same registered model.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import requests
import tritonclient.http as triton_http
import yaml
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from tritonclient.utils import InferenceServerException

from churnops.training.features import FEATURE_SPEC
from tests.integration.serving.conftest import MODEL_NAME, Registered, Server, feature_rows
from tests.support.auth import headers, token

ROWS = feature_rows(64, seed=7)
ROWS.loc[3, "plan"] = "platinum"  # a category the model never saw


def expected(registered: Registered, frame: pd.DataFrame) -> np.ndarray:
    """In-process churn probability of the registered Pipeline."""
    return registered.pipeline.predict_proba(frame)[:, 1]


def triton_inputs(frame: pd.DataFrame, binary: bool) -> list:
    """One tensor per feature, in the spec's order."""
    inputs = []
    for name in FEATURE_SPEC.columns:
        if name in FEATURE_SPEC.numeric:
            values = frame[name].to_numpy(dtype=np.float64)
            tensor = triton_http.InferInput(name, [len(frame)], "FP64")
        else:
            values = np.array([b"" if v is None else v.encode() for v in frame[name]], dtype=np.object_)
            tensor = triton_http.InferInput(name, [len(frame)], "BYTES")
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


def without_missing_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """Binary BYTES tensors cannot carry null: the rows with a missing category get a known one."""
    frame = frame.copy()
    for name in FEATURE_SPEC.categorical:
        frame[name] = [v if v is not None else "basic" for v in frame[name]]
    return frame


def test_tritonclient_http_health_and_metadata(server: Server, registered: Registered) -> None:
    client = triton_http.InferenceServerClient(server.http)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL_NAME)
    assert client.get_server_metadata(headers=headers())["name"]
    metadata = client.get_model_metadata(MODEL_NAME, headers=headers())
    assert [t["name"] for t in metadata["inputs"]] == FEATURE_SPEC.columns
    assert {t["datatype"] for t in metadata["inputs"][: len(FEATURE_SPEC.numeric)]} == {"FP64"}
    assert {t["datatype"] for t in metadata["inputs"][len(FEATURE_SPEC.numeric) :]} == {"BYTES"}
    assert all(t["shape"] == [-1] for t in metadata["inputs"])
    assert [(t["name"], t["datatype"]) for t in metadata["outputs"]] == [
        ("churn_probability", "FP64"),
        ("churn_label", "INT64"),
    ]
    assert metadata["versions"] == [registered.version]
    assert metadata["parameters"]["model_version"] == registered.version
    assert metadata["parameters"]["data_commit"] == registered.data_commit
    assert metadata["parameters"]["scorer"] == "fast_path"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_http_infer_matches_the_registered_model(
    server: Server, registered: Registered, binary: bool
) -> None:
    frame = without_missing_categories(ROWS) if binary else ROWS
    client = triton_http.InferenceServerClient(server.http)
    if binary:
        inputs = triton_inputs(frame, binary=True)
    else:  # JSON: a missing category is null, which tritonclient cannot encode from numpy; send it by hand
        body = json_body(frame)
        reply = requests.post(server.url(f"/v2/models/{MODEL_NAME}/infer"), json=body, timeout=30, headers=headers())
        assert reply.status_code == 200, reply.text
        result = reply.json()
        outputs = {o["name"]: np.asarray(o["data"]) for o in result["outputs"]}
        np.testing.assert_allclose(outputs["churn_probability"], expected(registered, frame), rtol=0, atol=1e-6)
        assert result["parameters"]["data_commit"] == registered.data_commit
        assert result["model_version"] == registered.version
        # tritonclient writes NaN into JSON as a bare NaN, which is not JSON: its JSON rows are complete
        frame = without_missing_categories(frame).fillna({n: 0.0 for n in FEATURE_SPEC.numeric})
        inputs = triton_inputs(frame, binary=False)
    outputs = [
        triton_http.InferRequestedOutput("churn_probability", binary_data=binary),
        triton_http.InferRequestedOutput("churn_label", binary_data=binary),
    ]
    response = client.infer(MODEL_NAME, inputs, outputs=outputs, headers=headers())
    probability = response.as_numpy("churn_probability")
    np.testing.assert_allclose(probability, expected(registered, frame), rtol=0, atol=1e-6)
    # churn_label follows the decision rule recorded with the model, not a fixed 0.5
    labels = response.as_numpy("churn_label")
    np.testing.assert_array_equal(labels, (probability >= registered.rule.threshold).astype(np.int64))
    assert not np.array_equal(labels, (probability >= 0.5).astype(np.int64))
    assert response.get_response()["parameters"]["model_version"] == registered.version


def json_body(frame: pd.DataFrame) -> dict:
    """A V2 JSON request for ``frame`` (null for missing values)."""
    return {
        "inputs": [
            {
                "name": n,
                "shape": [len(frame)],
                "datatype": "FP64" if n in FEATURE_SPEC.numeric else "BYTES",
                "data": [None if pd.isna(v) else v for v in frame[n]],
            }
            for n in FEATURE_SPEC.columns
        ]
    }


def test_concurrent_requests_each_get_their_own_rows_scored(server: Server, registered: Registered) -> None:
    """Requests in flight together share booster calls; each still gets exactly its own rows' probabilities."""
    parts = [
        ROWS.iloc[start : start + size]
        for start, size in ((0, 1), (1, 7), (8, 1), (9, 20), (29, 2), (31, 1), (32, 16), (48, 16))
    ] * 3
    with ThreadPoolExecutor(max_workers=12) as pool:
        replies = list(
            pool.map(
                lambda part: requests.post(
                    server.url(f"/v2/models/{MODEL_NAME}/infer"), json=json_body(part), timeout=60, headers=headers()
                ),
                parts,
            )
        )
    for part, reply in zip(parts, replies):
        assert reply.status_code == 200, reply.text
        probability = np.asarray(reply.json()["outputs"][0]["data"])
        np.testing.assert_allclose(probability, expected(registered, part), rtol=0, atol=1e-6)
    metrics = requests.get(server.url("/metrics"), timeout=10).text
    calls = [line for line in metrics.splitlines() if line.startswith("churnops_serving_booster_call_rows_count")]
    assert calls and float(calls[0].split()[-1]) > 0


def test_tritonclient_grpc_health_metadata_and_infer(server: Server, registered: Registered) -> None:
    frame = without_missing_categories(ROWS)
    job = {
        "address": server.grpc,
        "model": MODEL_NAME,
        "order": FEATURE_SPEC.columns,
        "token": token(),
        "numeric": {n: [None if np.isnan(v) else v for v in frame[n]] for n in FEATURE_SPEC.numeric},
        "categorical": {n: list(frame[n]) for n in FEATURE_SPEC.categorical},
    }
    job["numeric"] = {n: [float("nan") if v is None else v for v in values] for n, values in job["numeric"].items()}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("grpc_probe.py"))],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["live"] and seen["ready"] and seen["model_ready"] and seen["server_name"]
    assert [i[0] for i in seen["inputs"]] == FEATURE_SPEC.columns
    assert [o[0] for o in seen["outputs"]] == ["churn_probability", "churn_label"]
    np.testing.assert_allclose(seen["probability"], expected(registered, frame), rtol=0, atol=1e-6)
    assert seen["parameters"]["model_version"] == seen["model_version"] == registered.version
    assert seen["parameters"]["data_commit"] == registered.data_commit
    assert seen["metadata_status"] == seen["infer_status"] == "StatusCode.NOT_FOUND"
    assert seen["bad_infer_status"] == "StatusCode.INVALID_ARGUMENT" and "missing inputs" in seen["bad_infer_message"]
    assert seen["anonymous_infer_status"] == seen["forged_infer_status"] == "StatusCode.UNAUTHENTICATED"
    assert "bearer token" in seen["anonymous_infer_message"]


def test_unknown_model_is_404_with_an_error_body(server: Server) -> None:
    for path in ("/v2/models/nope", "/v2/models/nope/ready"):
        reply = requests.get(server.url(path), timeout=10, headers=headers())
        assert reply.status_code == 404 and reply.json()["error"]
    reply = requests.post(server.url("/v2/models/nope/infer"), json={"inputs": []}, timeout=10, headers=headers())
    # the name asked for is not repeated (it could be anything a client typed); the served one is named
    assert reply.status_code == 404 and "nope" not in reply.text and repr(MODEL_NAME) in reply.json()["error"]
    with pytest.raises(InferenceServerException, match="no model of that name"):
        triton_http.InferenceServerClient(server.http).get_model_metadata("nope", headers=headers())


def test_kserve_rest_client(server: Server, registered: Registered) -> None:
    async def scenario() -> tuple:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        base = f"http://{server.http}"
        try:
            live = await client.is_server_live(base)
            ready = await client.is_server_ready(base)
            model_ready = await client.is_model_ready(base, MODEL_NAME)
            frame = without_missing_categories(ROWS.head(8))
            inputs = []
            for name in FEATURE_SPEC.columns:
                numeric = name in FEATURE_SPEC.numeric
                tensor = InferInput(name, [len(frame)], "FP64" if numeric else "BYTES")
                tensor.set_data_from_numpy(
                    frame[name].to_numpy(np.float64) if numeric else np.array(list(frame[name]), dtype=np.object_),
                    binary_data=False,
                )
                inputs.append(tensor)
            response = await client.infer(
                base, InferRequest(MODEL_NAME, inputs), model_name=MODEL_NAME, headers=headers()
            )
            return live, ready, model_ready, response, frame
        finally:
            await client.close()

    live, ready, model_ready, response, frame = asyncio.run(scenario())
    assert live and ready and model_ready
    probability = response.outputs[0].as_numpy()
    np.testing.assert_allclose(probability, expected(registered, frame), rtol=0, atol=1e-6)


SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "specs" / "open-inference-rest.yaml").read_text())


def conforms(body: dict, schema: str) -> None:
    """Validate ``body`` against a schema of the vendored Open Inference REST spec."""
    jsonschema.validate(body, {"$ref": f"#/components/schemas/{schema}", "components": SPEC["components"]})


def test_rest_bodies_conform_to_the_open_inference_spec(server: Server) -> None:
    conforms(requests.get(server.url("/v2"), timeout=10, headers=headers()).json(), "metadata_server_response")
    conforms(
        requests.get(server.url(f"/v2/models/{MODEL_NAME}"), timeout=10, headers=headers()).json(),
        "metadata_model_response",
    )
    frame = without_missing_categories(ROWS.head(2))
    body = {
        "id": "r-1",
        "inputs": [
            {
                "name": n,
                "shape": [2],
                "datatype": "FP64" if n in FEATURE_SPEC.numeric else "BYTES",
                "data": [None if pd.isna(v) else v for v in frame[n]],
            }
            for n in FEATURE_SPEC.columns
        ],
    }
    reply = requests.post(server.url(f"/v2/models/{MODEL_NAME}/infer"), json=body, timeout=10, headers=headers())
    conforms(reply.json(), "inference_response")
    assert reply.json()["id"] == "r-1"
    refused = requests.post(
        server.url(f"/v2/models/{MODEL_NAME}/infer"), json={"inputs": body["inputs"][1:]}, timeout=10, headers=headers()
    )
    conforms(refused.json(), "inference_error_response")


def test_metrics_count_requests_latency_and_predicted_probabilities(server: Server) -> None:
    text = requests.get(server.url("/metrics"), timeout=10).text
    assert 'churnops_serving_requests_total{outcome="ok",protocol="rest"}' in text
    assert 'churnops_serving_requests_total{outcome="bad_request",protocol="rest"}' in text
    assert "churnops_serving_request_seconds_bucket" in text
    count = [line for line in text.splitlines() if line.startswith("churnops_serving_churn_probability_count")]
    assert count and float(count[0].split()[-1]) > 0
