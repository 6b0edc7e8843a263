"""The by-customer transformer against a published snapshot in an embedded lake.

The predictor is reached through kserve's own REST client (the transformer's ``predictor_host``
mechanism) over an httpx transport that decodes every request with the predictor's strict decoder
(:class:`serving.protocol.Decoder`) and answers with its encoder, so what the transformer sends is
checked against what the real predictor accepts.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from kserve import context as kserve_context
from kserve.errors import InferenceError, InvalidInput, ModelNotReady
from kserve.inference_client import InferenceRESTClient, RESTConfig
from kserve.predictor_config import PredictorConfig
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse, RequestedOutput

from churnops.data.privacy import Tokenizer
from churnops.data.versioning.embedded import EmbeddedRepository
from churnops.platform.logs import setup_logging
from churnops.platform.secrets import tokenization_key
from churnops.platform.settings import Settings
from churnops.training import online
from churnops.training.features import FEATURE_SPEC
from serving.protocol import LABEL, PROBABILITY, Batch, Decoder, RequestOptions, rest_response
from serving.transformer import ERROR, UNKNOWN, CustomerTransformer, inactive_reason
from tests.unit.training.conftest import at, event, events_frame, record, subscriptions_frame

KEY = "unit-test-tokenization-key-0123456789"
ACTIVE, OTHER, CANCELLED, STRANGER = "CUST-0000001", "acct-7731", "CUST-0000003", "acct-unknown-42"
RAW_IDS = (ACTIVE, OTHER, CANCELLED, STRANGER)
MODEL = "churn"


class PredictorDouble:
    """Answers ``/v2/models/churn/infer`` like the predictor: strict decode, a probability per row, V2 encode."""

    def __init__(self) -> None:
        self.decoder = Decoder(FEATURE_SPEC.numeric, FEATURE_SPEC.categorical)
        self.batches: list[Batch] = []
        self.status: int | None = None  # answer every call with this error status instead
        self.unreachable = False

    @staticmethod
    def probability(batch: Batch) -> np.ndarray:
        """A deterministic function of the rows (recency and plan), so rows cannot be swapped unnoticed."""
        recency = np.nan_to_num(batch.numeric[:, FEATURE_SPEC.numeric.index("recency_h")], nan=0.0)
        premium = np.array([plan == "premium" for plan in batch.categorical[FEATURE_SPEC.categorical.index("plan")]])
        return 1 / (1 + np.exp(-(recency - 10) / 5)) * np.where(premium, 0.5, 1.0)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """The transport's handler."""
        if self.unreachable:
            raise httpx.ConnectError("connection refused", request=request)
        if self.status is not None:
            return httpx.Response(self.status, json={"error": "no"})
        assert request.url.path == f"/v2/models/{MODEL}/infer"
        length = request.headers.get("inference-header-content-length")
        batch, _ = self.decoder.from_rest(request.content, int(length) if length else None)
        self.batches.append(batch)
        probability = self.probability(batch)
        body, _ = rest_response(MODEL, "7", {"model_version": "7", "registered_model": "churn-classifier"},
                                RequestOptions(), {PROBABILITY: ("FP64", probability),
                                                   LABEL: ("INT64", (probability >= 0.5).astype(np.int64))})
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})


def snapshot_frames(tokenizer: Tokenizer) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two active customers (one premium), one cancelled at hour 10; a token nobody asks for."""
    a, b, c = (tokenizer.token(value) for value in (ACTIVE, OTHER, CANCELLED))
    events = events_frame([event(a, 1), event(a, 20.5, "purchase", amount=5.0), event(b, 3), event(c, 2)])
    subs = subscriptions_frame([record(a, 0), record(b, 0, plan="premium"), record(c, 0),
                                record(c, 10, status="cancelled", cancel_hours=10)])
    return events, subs


def publish(repo: EmbeddedRepository, tokenizer: Tokenizer,
            cutoff: pd.Timestamp | None = None) -> online.OnlineSnapshot:
    """Build the snapshot with the library and publish it; return what the lake now holds."""
    events, subs = snapshot_frames(tokenizer)
    features, inactive, cut = online.build_snapshot(events, subs, FEATURE_SPEC, cutoff=cutoff)
    online.publish_snapshot(repo, online.OnlineSnapshot(features, inactive, repo.head("main"), cut, FEATURE_SPEC, ""))
    return online.load_snapshot(repo)


@pytest.fixture(name="setup")
def fixture_setup(tmp_path: Path) -> Iterator[tuple[CustomerTransformer, PredictorDouble, EmbeddedRepository]]:
    """A loaded transformer over a published snapshot, its predictor double and the lake."""
    settings = Settings(state_dir=tmp_path / "state", tokenization_key=KEY, online_refresh_seconds=3600)
    repo = EmbeddedRepository(tmp_path / "lake")
    repo.ensure()
    publish(repo, Tokenizer(tokenization_key(settings)))
    predictor = PredictorDouble()
    kserve_context.set_predictor_config(PredictorConfig("predictor.test", "v2"))
    model = CustomerTransformer(MODEL, settings, repo=repo)
    model.load()
    model._http_client_instance = InferenceRESTClient(  # pylint: disable=protected-access  # kserve's client slot
        RESTConfig(transport=httpx.MockTransport(predictor.handle), protocol="v2"))
    yield model, predictor, repo
    model.stop()


def ask(model: CustomerTransformer, ids: list[Any], datatype: str = "BYTES", **kwargs: Any) -> InferResponse:
    """One V2 request through kserve's model call chain (preprocess, predict, postprocess)."""
    request = InferRequest(model_name=MODEL, request_id="r1", infer_inputs=[
        InferInput("customer_id", [len(ids)], datatype, data=ids)], **kwargs)
    response, _ = asyncio.run(model(request, {}))
    return response


def outputs(response: InferResponse) -> dict[str, list[Any]]:
    """Output name -> values."""
    return {str(o.name): o.as_numpy().tolist() for o in response.outputs}


def test_a_batch_gets_per_row_answers_in_request_order(setup: tuple) -> None:
    model, predictor, repo = setup
    snapshot = online.load_snapshot(repo)
    response = ask(model, [STRANGER, ACTIVE, CANCELLED, OTHER, ACTIVE])

    (batch,) = predictor.batches  # one predictor call with the three scorable rows
    assert batch.rows == 3
    tokenizer = Tokenizer(KEY.encode())
    expected_rows = snapshot.features.loc[[tokenizer.token(v) for v in (ACTIVE, OTHER, ACTIVE)]]
    np.testing.assert_array_equal(batch.numeric, expected_rows[list(FEATURE_SPEC.numeric)].to_numpy(dtype=float))
    assert [list(c) for c in batch.categorical] == [expected_rows[c].tolist() for c in FEATURE_SPEC.categorical]

    values = outputs(response)
    probability = PredictorDouble.probability(batch)
    assert np.isnan(values[PROBABILITY][0]) and np.isnan(values[PROBABILITY][2])
    assert [values[PROBABILITY][i] for i in (1, 3, 4)] == probability.tolist()
    assert values[LABEL] == [-1, int(probability[0] >= 0.5), -1, int(probability[1] >= 0.5), int(probability[2] >= 0.5)]
    assert values[ERROR] == [UNKNOWN, "", inactive_reason("cancelled"), "", ""]
    assert response.model_version == "7"
    assert response.parameters == {"data_commit": snapshot.data_commit, "cutoff": snapshot.cutoff.isoformat(),
                                   "snapshot_commit": snapshot.commit_id, "model_version": "7",
                                   "registered_model": "churn-classifier"}


def test_a_batch_without_a_scorable_customer_is_answered_without_the_predictor(setup: tuple) -> None:
    model, predictor, _ = setup
    values = outputs(ask(model, [CANCELLED, STRANGER]))
    assert not predictor.batches
    assert values[ERROR] == [inactive_reason("cancelled"), UNKNOWN] and values[LABEL] == [-1, -1]


def test_requested_outputs_are_the_ones_returned(setup: tuple) -> None:
    model, _, _ = setup
    response = ask(model, [ACTIVE], request_outputs=[RequestedOutput(ERROR), RequestedOutput(PROBABILITY)])
    assert [o.name for o in response.outputs] == [ERROR, PROBABILITY]
    with pytest.raises(InvalidInput, match=r"unknown output at outputs\[0\]"):
        ask(model, [ACTIVE], request_outputs=[RequestedOutput("score")])


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "exactly one 'customer_id'"),
        ([InferInput("customer", [1], "BYTES", data=[ACTIVE])], r"unknown input at inputs\[0\]"),
        ([InferInput("customer_id", [1], "BYTES", data=[ACTIVE]), InferInput("x", [1], "BYTES", data=["1"])],
         r"unknown input at inputs\[1\]"),
        ([InferInput("customer_id", [1], "INT64", data=[7])], "must be BYTES"),
        ([InferInput("customer_id", [0], "BYTES", data=[])], "has no rows"),
        ([InferInput("customer_id", [3], "BYTES", data=[ACTIVE, OTHER])], "shape"),
        ([InferInput("customer_id", [2], "BYTES", data=[ACTIVE, 5])], "element 1 is not text"),
        ([InferInput("customer_id", [2], "BYTES", data=[ACTIVE, ""])], "element 1 is empty"),
        ([InferInput("customer_id", [1], "BYTES", data=[b"\xff\xfe"])], "element 0 is not UTF-8"),
    ],
)
def test_a_request_that_is_bad_as_a_whole_is_refused_without_echoing_ids(
    setup: tuple, inputs: list[InferInput], message: str
) -> None:
    model, predictor, _ = setup
    request = InferRequest(model_name=MODEL, request_id="r", infer_inputs=inputs)
    with pytest.raises(InvalidInput, match=message) as caught:
        asyncio.run(model(request, {}))
    assert not any(raw in str(caught.value) for raw in RAW_IDS)
    assert not predictor.batches


def test_binary_ids_and_batches_over_the_limit(setup: tuple) -> None:
    model, _, _ = setup
    tensor = InferInput("customer_id", [2], "BYTES")
    tensor.set_data_from_numpy(np.array([ACTIVE.encode(), STRANGER.encode()], dtype=object), binary_data=True)
    response, _ = asyncio.run(model(InferRequest(model_name=MODEL, request_id="b", infer_inputs=[tensor]), {}))
    assert outputs(response)[ERROR] == ["", UNKNOWN]
    model.max_rows = 2
    with pytest.raises(InvalidInput, match="at most 2 per request"):
        ask(model, [ACTIVE, OTHER, ACTIVE])
    with pytest.raises(InvalidInput, match="V2"):
        asyncio.run(model({"instances": [ACTIVE]}, {}))


def test_predictor_failures_are_server_errors_with_a_reason(setup: tuple) -> None:
    model, predictor, _ = setup
    predictor.status = 400
    with pytest.raises(InferenceError, match="do not match the served model's inputs"):
        ask(model, [ACTIVE])
    predictor.status = 503
    with pytest.raises(ModelNotReady, match="predictor failed"):
        ask(model, [ACTIVE])
    predictor.status, predictor.unreachable = None, True
    with pytest.raises(ModelNotReady, match="cannot be reached"):
        ask(model, [ACTIVE])


def test_a_newer_snapshot_is_swapped_in_and_a_request_in_flight_keeps_its_own(setup: tuple) -> None:
    model, predictor, repo = setup
    first = online.load_snapshot(repo)
    in_flight = asyncio.run(model.preprocess(InferRequest(model_name=MODEL, request_id="f", infer_inputs=[
        InferInput("customer_id", [1], "BYTES", data=[ACTIVE])])))
    newer = publish(repo, Tokenizer(KEY.encode()), cutoff=at(30))
    assert model.store.current.commit_id == first.commit_id  # not before the next check

    assert model.store.refresh() is True and model.store.refresh() is False
    assert ask(model, [ACTIVE]).parameters["cutoff"] == newer.cutoff.isoformat() == at(30).isoformat()
    late = asyncio.run(model.postprocess(asyncio.run(model.predict(in_flight))))
    assert late.parameters["snapshot_commit"] == first.commit_id
    assert late.parameters["cutoff"] == first.cutoff.isoformat()
    # the in-flight request was scored on the old snapshot's row: recency at the first cutoff
    old_recency = first.features.loc[Tokenizer(KEY.encode()).token(ACTIVE), "recency_h"]
    assert predictor.batches[-1].numeric[0, FEATURE_SPEC.numeric.index("recency_h")] == old_recency


def test_the_background_refresh_picks_up_a_newer_snapshot(setup: tuple) -> None:
    model, _, repo = setup
    model.store.stop()
    model.store.interval_s = 0.05
    model.store.start()
    newer = publish(repo, Tokenizer(KEY.encode()), cutoff=at(30))
    for _ in range(200):
        if model.store.current.commit_id == newer.commit_id:
            break
        model.store._stop.wait(0.05)  # pylint: disable=protected-access  # wait on the store's own clock
    assert model.store.current.commit_id == newer.commit_id


def test_no_raw_customer_id_reaches_a_log_line(setup: tuple, caplog: pytest.LogCaptureFixture,
                                               tmp_path: Path) -> None:
    model, predictor, repo = setup
    stream = io.StringIO()
    setup_logging(Settings(state_dir=tmp_path, log_level="DEBUG"), stream=stream)
    logging.getLogger().addHandler(caplog.handler)  # setup_logging replaced the root's handlers
    caplog.set_level(logging.DEBUG)
    ask(model, [ACTIVE, OTHER, CANCELLED, STRANGER])
    for bad in ([ACTIVE, 5], [OTHER, ""]):
        with pytest.raises(InvalidInput):
            ask(model, bad)
    predictor.status = 400
    with pytest.raises(InferenceError):
        ask(model, [OTHER])
    publish(repo, Tokenizer(KEY.encode()), cutoff=at(30))
    model.store.refresh()
    assert "by-customer rows=4 scored=2" in caplog.text and "online snapshot" in caplog.text
    for raw in RAW_IDS:
        assert raw not in caplog.text and raw not in stream.getvalue()
