"""Drive the server over gRPC with tritonclient, in a process of its own, and print what it saw as JSON.

tritonclient's and kserve's generated protobuf modules both define the ``inference`` package, and
one process cannot import both; the tests import kserve, so the gRPC client runs here.
Input (stdin, JSON): ``{"address", "model", "token", "numeric": {name: [floats]}, "categorical": {name: [texts]},
"order"}``; every call but the probes sends ``token`` as ``authorization: Bearer`` metadata.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException


def probe(job: dict) -> dict:
    """Health, metadata, one inference, and the status codes of an unknown model."""
    client = triton_grpc.InferenceServerClient(job["address"])
    model = job["model"]
    auth = {"authorization": f"Bearer {job['token']}"}
    inputs = []
    for name in job["order"]:
        if name in job["numeric"]:
            tensor = triton_grpc.InferInput(name, [len(job["numeric"][name])], "FP64")
            tensor.set_data_from_numpy(np.asarray(job["numeric"][name], dtype=np.float64))
        else:
            tensor = triton_grpc.InferInput(name, [len(job["categorical"][name])], "BYTES")
            tensor.set_data_from_numpy(np.array([v.encode() for v in job["categorical"][name]], dtype=np.object_))
        inputs.append(tensor)
    response = client.infer(model, inputs, headers=auth)
    metadata = client.get_model_metadata(model, headers=auth)
    result = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(model),
        "server_name": client.get_server_metadata(headers=auth).name,
        "inputs": [[t.name, t.datatype, list(t.shape)] for t in metadata.inputs],
        "outputs": [[t.name, t.datatype] for t in metadata.outputs],
        "probability": response.as_numpy("churn_probability").tolist(),
        "label": response.as_numpy("churn_label").tolist(),
        "parameters": {k: v.string_param for k, v in response.get_response().parameters.items()},
        "model_version": response.get_response().model_version,
    }
    for call in ("metadata", "infer", "bad_infer", "anonymous_infer", "forged_infer"):
        try:
            if call == "metadata":
                client.get_model_metadata("nope", headers=auth)
            elif call == "infer":
                client.infer("nope", inputs, headers=auth)
            elif call == "bad_infer":
                client.infer(model, inputs[:-1], headers=auth)
            elif call == "anonymous_infer":
                client.infer(model, inputs)
            else:
                client.infer(model, inputs, headers={"authorization": "Bearer " + job["token"][:-8] + "AAAAAAAA"})
            result[f"{call}_status"] = "OK"
        except InferenceServerException as exc:
            result[f"{call}_status"] = exc.status()
            result[f"{call}_message"] = exc.message()
    return result


if __name__ == "__main__":
    json.dump(probe(json.load(sys.stdin)), sys.stdout)
