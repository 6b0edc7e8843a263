"""A valid request whose scoring fails gets a JSON 500 that names nothing it sent, and is counted."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import numpy as np
import pytest
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from prometheus_client import REGISTRY

from churnops.model.scoring import ScoringModel
from serving.predictor import ChurnPredictor
from serving.protocol import Decoder
from serving.server import ChurnRESTServer
from tests.support.asgi_infer import post_infer

CUSTOMER = "CUST-0042917"


class ChokingPipeline:  # pylint: disable=too-few-public-methods  # the one method a scorer calls
    """A Pipeline whose scoring fails with the rows' values in its message, as scikit-learn's errors do."""

    classes_ = [0, 1]

    def predict_proba(self, frame: Any) -> np.ndarray:
        """Fail, repeating a value of the rows."""
        raise ValueError(f"Found unknown categories {list(frame['plan'])} during transform")


def serving_server() -> ChurnRESTServer:
    """The REST server with one ready churn predictor whose Pipeline fails."""
    predictor = ChurnPredictor("churn", model_uri="unused")
    predictor.model = ScoringModel(
        pipeline=ChokingPipeline(),
        numeric=("tenure_h",),
        categorical=("plan",),
        model_name="churn-classifier",
        model_version="3",
        data_commit="c" * 64,
        source="test",
    )
    predictor.decoder = Decoder(predictor.model.numeric, predictor.model.categorical, max_rows=8)
    predictor.ready = True
    repository = ModelRepository()
    repository.update(predictor)
    return ChurnRESTServer("kserve.model_server:app", DataPlane(repository), ModelRepositoryExtension(repository), 0)


def errors_counted() -> float:
    """``churnops_serving_requests{protocol="rest", outcome="error"}`` so far."""
    return REGISTRY.get_sample_value("churnops_serving_requests_total", {"protocol": "rest", "outcome": "error"}) or 0.0


def test_a_scoring_failure_is_a_json_500_without_the_request_values(caplog: pytest.LogCaptureFixture) -> None:
    server = serving_server()
    body = json.dumps(
        {
            "inputs": [
                {"name": "tenure_h", "datatype": "FP64", "shape": [1], "data": [3.0]},
                {"name": "plan", "datatype": "BYTES", "shape": [1], "data": [CUSTOMER]},
            ]
        }
    ).encode()
    before = errors_counted()
    with caplog.at_level(logging.DEBUG):
        status, _, answer = asyncio.run(post_infer(server, "churn", body))

    assert status == 500
    assert set(json.loads(answer)) == {"error"} and "failed to score" in json.loads(answer)["error"]
    assert CUSTOMER not in answer.decode() and "Traceback" not in answer.decode()
    assert errors_counted() == before + 1
    assert "inference failed: ValueError" in caplog.text and CUSTOMER not in caplog.text
