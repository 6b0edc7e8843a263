"""Drive the server over gRPC with tritonclient, in a process of its own, and print what it saw as JSON.

tritonclient's and kserve's generated protobuf modules both define the ``inference`` package, and
one process cannot import both; the tests import kserve, so the gRPC client runs here.
Input (stdin, JSON): ``{"address", "model", "numeric": {name: [floats]}, "categorical": {name: [texts]}, "order"}``.
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
    inputs = []
    for name in job["order"]:
        if name in job["numeric"]:
            tensor = triton_grpc.InferInput(name, [len(job["numeric"][name])], "FP64")
            tensor.set_data_from_numpy(np.asarray(job["numeric"][name], dtype=np.float64))
        else:
            tensor = triton_grpc.InferInput(name, [len(job["categorical"][name])], "BYTES")
            tensor.set_data_from_numpy(np.array([v.encode() for v in job["categorical"][name]], dtype=np.object_))
        inputs.append(tensor)
    response = client.infer(model, inputs)
    metadata = client.get_model_metadata(model)
    result = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(model),
        "server_name": client.get_server_metadata().name,
        "inputs": [[t.name, t.datatype, list(t.shape)] for t in metadata.inputs],
        "outputs": [[t.name, t.datatype] for t in metadata.outputs],
        "probability": response.as_numpy("churn_probability").tolist(),
        "label": response.as_numpy("churn_label").tolist(),
        "parameters": {k: v.string_param for k, v in response.get_response().parameters.items()},
        "model_version": response.get_response().model_version,
    }
    for call in ("metadata", "infer", "bad_infer"):
        try:
            if call == "metadata":
                client.get_model_metadata("nope")
            elif call == "infer":
                client.infer("nope", inputs)
            else:
                client.infer(model, inputs[:-1])
            result[f"{call}_status"] = "OK"
        except InferenceServerException as exc:
            result[f"{call}_status"] = exc.status()
            result[f"{call}_message"] = exc.message()
    return result


if __name__ == "__main__":
    json.dump(probe(json.load(sys.stdin)), sys.stdout)
