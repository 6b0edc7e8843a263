"""The by-customer transformer against a published snapshot in an embedded lake, through the server's REST route.

Requests go through :meth:`serving.server.ChurnRESTServer.infer` (the ASGI infer route: statuses and
bodies as a client sees them). The transformer reaches the predictor with its own HTTP client over
127.0.0.1, where an aiohttp server decodes every request with the predictor's strict decoder
(:class:`serving.protocol.Decoder`) and answers with its encoder, so what the transformer sends is
checked against what the real predictor accepts.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from aiohttp import web
from kserve.errors import InvalidInput
from kserve.model_repository import ModelRepository
from kserve.predictor_config import PredictorConfig
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from prometheus_client import REGISTRY

from churnops.data.privacy import Tokenizer, lake_tokenizer
from churnops.data.rotation import rotate
from churnops.data.versioning.embedded import EmbeddedRepository
from churnops.errors import ConfigurationError
from churnops.model import online as model_online
from churnops.platform.logs import setup_logging
from churnops.platform.secrets import secret_source, tokenization_key
from churnops.platform.settings import Settings
from churnops.training import online
from churnops.training.features import FEATURE_SPEC
from serving.protocol import (
    LABEL,
    PROBABILITY,
    Batch,
    Decoder,
    TooManyRequests,
    bytes_tensor,
    rest_response,
    text_elements,
)
from serving.server import ChurnRESTServer
from serving.transformer import ERROR, UNKNOWN, CallerLimit, CustomerTransformer, inactive_reason
from tests.conftest import free_port
from tests.support.asgi_infer import post_infer
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
        self.during: Callable[[], None] | None = None  # runs while a request is at the predictor
        self.delay_s = 0.0  # answer this late

    @staticmethod
    def probability(batch: Batch) -> np.ndarray:
        """A deterministic function of the rows (recency and plan), so rows cannot be swapped unnoticed."""
        recency = np.nan_to_num(batch.numeric[:, FEATURE_SPEC.numeric.index("recency_h")], nan=0.0)
        premium = np.array([plan == "premium" for plan in batch.categorical[FEATURE_SPEC.categorical.index("plan")]])
        return 1 / (1 + np.exp(-(recency - 10) / 5)) * np.where(premium, 0.5, 1.0)

    async def handle(self, request: web.Request) -> web.Response:
        """The server's handler."""
        if self.during is not None:
            self.during()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status is not None:
            return web.json_response({"error": "no"}, status=self.status)
        length = request.headers.get("inference-header-content-length")
        batch, options = self.decoder.from_rest(await request.read(), int(length) if length else None)
        self.batches.append(batch)
        probability = self.probability(batch)
        body, header = rest_response(
            MODEL,
            "7",
            {"model_version": "7", "registered_model": "churn-classifier"},
            options,
            {PROBABILITY: ("FP64", probability), LABEL: ("INT64", (probability >= 0.5).astype(np.int64))},
        )
        return web.Response(
            body=body,
            headers={"content-type": "application/json"}
            if header is None
            else {"content-type": "application/octet-stream", "inference-header-content-length": str(header)},
        )


def snapshot_frames(tokenizer: Tokenizer) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two active customers (one premium, heard of within the ghost span), one cancelled at hour 10."""
    a, b, c = (tokenizer.token(value) for value in (ACTIVE, OTHER, CANCELLED))
    events = events_frame([event(a, 1), event(a, 20.5, "purchase", amount=5.0), event(b, 13), event(c, 2)])
    subs = subscriptions_frame(
        [record(a, 0), record(b, 0, plan="premium"), record(c, 0), record(c, 10, status="cancelled", cancel_hours=10)]
    )
    return events, subs


def publish(
    repo: EmbeddedRepository, tokenizer: Tokenizer, cutoff: pd.Timestamp | None = None
) -> model_online.OnlineSnapshot:
    """Build the snapshot with the library and publish it; return what the lake now holds."""
    events, subs = snapshot_frames(tokenizer)
    features, inactive, cut = online.build_snapshot(events, subs, FEATURE_SPEC, cutoff=cutoff)
    model_online.publish_snapshot(
        repo, model_online.OnlineSnapshot(features, inactive, repo.head("main"), cut, FEATURE_SPEC, "")
    )
    return model_online.load_snapshot(repo)


class Setup:  # pylint: disable=too-few-public-methods  # the fixture's parts, and the call every test makes
    """A loaded transformer behind the REST server, its predictor double and the lake."""

    def __init__(
        self,
        model: CustomerTransformer,
        predictor: PredictorDouble,
        repo: EmbeddedRepository,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.model, self.predictor, self.repo, self.loop = model, predictor, repo, loop
        self.headers: dict[bytes, bytes] = {}  # of the last response
        repository = ModelRepository()
        repository.update(model)
        self.server = ChurnRESTServer(
            "kserve.model_server:app", DataPlane(repository), ModelRepositoryExtension(repository), 0
        )

    def post(self, body: bytes, header_length: int | None = None, caller: str = "") -> tuple[int, dict[str, Any]]:
        """POST ``body`` to the infer route (ASGI) from ``caller``; the status and the JSON body, binary outputs
        decoded (and the response headers under ``"headers"``)."""
        status, headers, content = self.loop.run_until_complete(
            post_infer(self.server, MODEL, body, header_length, caller)
        )
        self.headers = headers
        length = headers.get(b"inference-header-content-length")
        answer = orjson.loads(content[: int(length)] if length else content)
        offset = int(length or 0)
        for output in answer.get("outputs", []):
            size = output.pop("parameters", {}).get("binary_data_size")
            if size is not None:
                raw = content[offset : offset + size]
                output["data"] = (
                    [t.decode() for t in text_elements(raw, "")]
                    if output["datatype"] == "BYTES"
                    else np.frombuffer(raw, "<f8" if output["datatype"] == "FP64" else "<i8").tolist()
                )
                offset += size
        return status, answer


def v2(ids: list[Any], datatype: str = "BYTES", **fields: Any) -> bytes:
    """A JSON V2 request with one ``customer_id`` tensor."""
    return orjson.dumps(
        {
            "id": "r1",
            "inputs": [{"name": "customer_id", "datatype": datatype, "shape": [len(ids)], "data": ids}],
            **fields,
        }
    )


@pytest.fixture(name="setup")
def fixture_setup(tmp_path: Path) -> Iterator[Setup]:
    """A loaded transformer over a published snapshot, its predictor double and the lake."""
    settings = Settings(state_dir=tmp_path / "state", tokenization_key=KEY, online_refresh_seconds=3600)
    repo = EmbeddedRepository(tmp_path / "lake")
    repo.ensure()
    publish(repo, Tokenizer(tokenization_key(settings)))
    predictor, loop, port = PredictorDouble(), asyncio.new_event_loop(), free_port()
    app = web.Application()
    app.router.add_post(f"/v2/models/{MODEL}/infer", predictor.handle)
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    model = CustomerTransformer(MODEL, settings, repo=repo, predictor=PredictorConfig(f"127.0.0.1:{port}", "v2"))
    model.load()
    yield Setup(model, predictor, repo, loop)
    model.stop()
    loop.run_until_complete(runner.cleanup())
    loop.close()


def ask(setup: Setup, ids: list[Any], datatype: str = "BYTES", **fields: Any) -> dict[str, Any]:
    """A JSON request by id that must succeed; its body."""
    status, answer = setup.post(v2(ids, datatype, **fields))
    assert status == 200, answer
    return answer


def outputs(answer: dict[str, Any]) -> dict[str, list[Any]]:
    """Output name -> values (NaN for JSON null)."""
    return {o["name"]: [np.nan if v is None else v for v in o["data"]] for o in answer["outputs"]}


def counted(metric: str, outcome: str) -> float:
    """A transformer counter's value so far."""
    return REGISTRY.get_sample_value(f"churnops_transformer_{metric}_total", {"outcome": outcome}) or 0.0


def test_a_batch_gets_per_row_answers_in_request_order(setup: Setup) -> None:
    snapshot = model_online.load_snapshot(setup.repo)
    before = {outcome: counted("rows", outcome) for outcome in ("found", "not_found")}
    requests_before = counted("requests", "ok")
    answer = ask(setup, [STRANGER, ACTIVE, CANCELLED, OTHER, ACTIVE])

    (batch,) = setup.predictor.batches  # one predictor call with the three scorable rows
    assert batch.rows == 3
    tokenizer = Tokenizer(KEY.encode())
    expected_rows = snapshot.features.loc[[tokenizer.token(v) for v in (ACTIVE, OTHER, ACTIVE)]]
    np.testing.assert_array_equal(batch.numeric, expected_rows[list(FEATURE_SPEC.numeric)].to_numpy(dtype=float))
    assert [list(c) for c in batch.categorical] == [
        [None if pd.isna(v) else v for v in expected_rows[c]] for c in FEATURE_SPEC.categorical
    ]

    values = outputs(answer)
    probability = PredictorDouble.probability(batch)
    assert np.isnan(values[PROBABILITY][0]) and np.isnan(values[PROBABILITY][2])
    assert [values[PROBABILITY][i] for i in (1, 3, 4)] == probability.tolist()
    assert values[LABEL] == [-1, int(probability[0] >= 0.5), -1, int(probability[1] >= 0.5), int(probability[2] >= 0.5)]
    assert values[ERROR] == [UNKNOWN, "", inactive_reason("cancelled"), "", ""]
    assert answer["model_version"] == "7" and answer["id"] == "r1"
    assert answer["parameters"] == {
        "data_commit": snapshot.data_commit,
        "cutoff": snapshot.cutoff.isoformat(),
        "snapshot_commit": snapshot.commit_id,
        "model_version": "7",
        "registered_model": "churn-classifier",
    }
    assert counted("rows", "found") - before["found"] == 3 and counted("rows", "not_found") - before["not_found"] == 2
    assert counted("requests", "ok") - requests_before == 1


def test_a_batch_without_a_scorable_customer_is_answered_without_the_predictor(setup: Setup) -> None:
    answer = ask(setup, [CANCELLED, STRANGER])
    values = outputs(answer)
    assert not setup.predictor.batches
    assert values[ERROR] == [inactive_reason("cancelled"), UNKNOWN] and values[LABEL] == [-1, -1]
    assert "model_version" not in answer["parameters"]


def test_requested_outputs_are_the_ones_returned(setup: Setup) -> None:
    answer = ask(setup, [ACTIVE], outputs=[{"name": ERROR}, {"name": PROBABILITY}])
    assert [o["name"] for o in answer["outputs"]] == [ERROR, PROBABILITY]
    status, refused = setup.post(v2([ACTIVE], outputs=[{"name": "score"}]))
    assert status == 400 and "unknown output at outputs[0]" in refused["error"]


def test_binary_ids_and_binary_outputs(setup: Setup) -> None:
    ids = [ACTIVE, STRANGER, OTHER]
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "customer_id",
                    "datatype": "BYTES",
                    "shape": [3],
                    "parameters": {"binary_data_size": len(bytes_tensor(ids))},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    status, answer = setup.post(header + bytes_tensor(ids), len(header))
    assert status == 200
    values = outputs(answer)
    assert values[ERROR] == ["", UNKNOWN, ""] and values[LABEL][1] == -1 and np.isnan(values[PROBABILITY][1])
    assert values[PROBABILITY][0::2] == PredictorDouble.probability(setup.predictor.batches[0]).tolist()
    status, answer = setup.post(header + bytes_tensor(ids)[:-2], len(header))
    assert status == 400 and "customer_id" in answer["error"]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "'inputs' must be a non-empty list"),
        ([{"name": "customer", "datatype": "BYTES", "shape": [1], "data": [ACTIVE]}], r"unknown input at inputs[0]"),
        (
            [
                {"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": [ACTIVE]},
                {"name": "x", "datatype": "BYTES", "shape": [1], "data": ["1"]},
            ],
            r"unknown input at inputs[1]",
        ),
        ([{"name": "customer_id", "datatype": "INT64", "shape": [1], "data": [7]}], "must be BYTES"),
        ([{"name": "customer_id", "datatype": "BYTES", "shape": [0], "data": []}], "has no rows"),
        ([{"name": "customer_id", "datatype": "BYTES", "shape": [3], "data": [ACTIVE, OTHER]}], "shape"),
        ([{"name": "customer_id", "datatype": "BYTES", "shape": [2], "data": [ACTIVE, 5]}], "element 1 is not text"),
        ([{"name": "customer_id", "datatype": "BYTES", "shape": [2], "data": [ACTIVE, ""]}], "element 1 is empty"),
        ([{"name": "customer_id", "datatype": "BYTES", "shape": [2], "data": [ACTIVE, None]}], "element 1 is not text"),
        ([{"name": ACTIVE, "datatype": "BYTES", "shape": [1], "data": [ACTIVE]}], r"unknown input at inputs[0]"),
    ],
)
def test_a_request_that_is_bad_as_a_whole_is_refused_without_echoing_ids(
    setup: Setup, inputs: list[dict[str, Any]], message: str
) -> None:
    status, answer = setup.post(orjson.dumps({"inputs": inputs}))
    assert status == 400 and set(answer) == {"error"}
    assert message in answer["error"]
    assert not any(raw in answer["error"] for raw in RAW_IDS)
    assert not setup.predictor.batches


def test_batches_over_the_limit_and_other_routes_are_refused(setup: Setup) -> None:
    setup.model.max_rows = 2
    status, answer = setup.post(v2([ACTIVE, OTHER, ACTIVE]))
    assert status == 400 and "at most 2 per request" in answer["error"]
    with pytest.raises(InvalidInput, match="V2"):  # kserve's own request path (its V1 route)
        asyncio.run(setup.model({"instances": [ACTIVE]}, {}))


def test_predictor_failures_are_server_errors_with_a_reason(setup: Setup) -> None:
    errors_before = counted("requests", "error")
    setup.predictor.status = 400
    status, answer = setup.post(v2([ACTIVE]))
    assert status == 500 and "do not match the served model's inputs" in answer["error"]
    setup.predictor.status = 503
    status, answer = setup.post(v2([ACTIVE]))
    assert status == 503 and "predictor failed (503)" in answer["error"]
    assert counted("requests", "error") - errors_before == 2


def test_an_unreachable_predictor_is_a_503(setup: Setup) -> None:
    setup.model.predictor = PredictorConfig(f"127.0.0.1:{free_port()}", "v2", predictor_request_retries=1)
    status, answer = setup.post(v2([ACTIVE, STRANGER]))  # the connection is refused (twice)
    assert status == 503 and answer == {"error": "the predictor cannot be reached (ClientConnectorError)"}


def test_a_predictor_slower_than_the_timeout_is_a_503_and_the_next_request_is_served(setup: Setup) -> None:
    usual = setup.model.config
    setup.model.predictor = PredictorConfig(usual.predictor_host, "v2", predictor_request_timeout_seconds=0.2)
    setup.predictor.delay_s = 0.6
    status, answer = setup.post(v2([ACTIVE]))
    assert status == 503 and answer == {"error": "the predictor cannot be reached (TimeoutError)"}
    setup.model.predictor, setup.predictor.delay_s = usual, 0.0
    assert outputs(ask(setup, [ACTIVE]))["error"] == [""]


def test_a_request_in_flight_during_a_swap_is_answered_from_its_snapshot(setup: Setup) -> None:
    first = model_online.load_snapshot(setup.repo)
    swapped: list[model_online.OnlineSnapshot] = []

    def swap() -> None:  # a newer snapshot is published and loaded while the request is at the predictor
        setup.predictor.during = None
        swapped.append(publish(setup.repo, Tokenizer(KEY.encode()), cutoff=at(30)))
        assert setup.model.store.refresh() is True

    setup.predictor.during = swap
    late = ask(setup, [ACTIVE])
    assert swapped and setup.model.store.current.commit_id == swapped[0].commit_id
    assert late["parameters"]["snapshot_commit"] == first.commit_id
    assert late["parameters"]["cutoff"] == first.cutoff.isoformat()
    # scored on the old snapshot's row: recency at the first cutoff
    old_recency = first.features.loc[Tokenizer(KEY.encode()).token(ACTIVE), "recency_h"]
    assert setup.predictor.batches[0].numeric[0, FEATURE_SPEC.numeric.index("recency_h")] == old_recency
    assert ask(setup, [ACTIVE])["parameters"]["cutoff"] == swapped[0].cutoff.isoformat() == at(30).isoformat()
    assert setup.model.store.refresh() is False


def test_the_background_refresh_picks_up_a_newer_snapshot(setup: Setup) -> None:
    store = setup.model.store
    store.stop()
    store.interval_s = 0.05
    store.start()
    newer = publish(setup.repo, Tokenizer(KEY.encode()), cutoff=at(30))
    for _ in range(200):
        if store.current.commit_id == newer.commit_id:
            break
        store._stop.wait(0.05)  # pylint: disable=protected-access  # wait on the store's own clock
    assert store.current.commit_id == newer.commit_id


def test_after_a_key_rotation_the_next_snapshot_is_read_with_the_new_key_chain(setup: Setup) -> None:
    """A version is added to the key secret and the lake re-tokenized (``churnops privacy rotate-key``): the
    transformer answers from the old snapshot with the old chain until the refresh, then from the re-tokenized
    snapshot with the new chain, without a restart."""
    settings = setup.model.settings
    secret_source(settings).add_version(settings.tokenization_key_secret)
    old, new = Tokenizer(KEY.encode()), lake_tokenizer(settings)
    assert new.previous is not None and new.previous.key_id == old.key_id
    assert outputs(ask(setup, [ACTIVE, CANCELLED]))[ERROR] == ["", inactive_reason("cancelled")]

    rotate(setup.repo, new)
    assert setup.model.store.refresh() is True
    assert setup.model.store.current.tokenizer.key_id == new.key_id
    assert new.token(ACTIVE) in setup.model.store.current.positions  # the lake holds the new chain's tokens
    assert outputs(ask(setup, [ACTIVE, CANCELLED, STRANGER]))[ERROR] == ["", inactive_reason("cancelled"), UNKNOWN]


def test_a_key_version_the_lake_does_not_use_yet_is_not_used_to_look_customers_up(tmp_path: Path) -> None:
    """A version was added to the secret but the lake not re-tokenized yet: a transformer started now reads the
    snapshot with the chain its data commit recorded, not the newest one; a snapshot under a chain none of the
    versions makes is refused at start with the remedy."""
    settings = Settings(state_dir=tmp_path / "state", tokenization_key=KEY, online_refresh_seconds=3600)
    repo = EmbeddedRepository(tmp_path / "lake")
    repo.ensure()
    old = Tokenizer(KEY.encode())
    repo.put_objects("main", {"events/ingested.json": b"{}"})
    repo.commit("main", "ingest", {"tokenizer_key_id": old.key_id})
    publish(repo, old)
    assert repo.commit_info(model_online.snapshot_commit(repo) or "").metadata["tokenizer_key_id"] == old.key_id
    secret_source(settings).add_version(settings.tokenization_key_secret)
    model = CustomerTransformer(MODEL, settings, repo=repo, predictor=PredictorConfig("127.0.0.1:9", "v2"))
    model.load()
    try:
        assert model.store.current.tokenizer.key_id == old.key_id and old.token(ACTIVE) in model.store.current.positions
    finally:
        model.stop()
    other = Settings(state_dir=tmp_path / "other", tokenization_key="another-key-of-32-bytes-0123456789ab")
    stranger = CustomerTransformer(MODEL, other, repo=repo, predictor=PredictorConfig("127.0.0.1:9", "v2"))
    with pytest.raises(ConfigurationError, match="none of the 1 key versions makes"):
        stranger.load()


def test_no_raw_customer_id_reaches_a_log_line(setup: Setup, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    stream = io.StringIO()
    setup_logging(Settings(state_dir=tmp_path, log_level="DEBUG"), stream=stream)
    logging.getLogger().addHandler(caplog.handler)  # setup_logging replaced the root's handlers
    caplog.set_level(logging.DEBUG)
    ask(setup, [ACTIVE, OTHER, CANCELLED, STRANGER])
    for bad in ([ACTIVE, 5], [OTHER, ""]):
        assert setup.post(v2(bad))[0] == 400
    setup.predictor.status = 400
    assert setup.post(v2([OTHER]))[0] == 500
    publish(setup.repo, Tokenizer(KEY.encode()), cutoff=at(30))
    setup.model.store.refresh()
    assert "by-customer rows=4 scored=2" in caplog.text and "online snapshot" in caplog.text
    assert "bad inference request" in caplog.text and "the predictor answered 400" in caplog.text
    for raw in RAW_IDS:
        assert raw not in caplog.text and raw not in stream.getvalue()


def test_a_caller_past_its_ids_per_minute_gets_429_and_others_are_still_served(setup: Setup) -> None:
    setup.model.limit = CallerLimit(per_minute=5)
    assert setup.post(v2([ACTIVE, OTHER, STRANGER]), caller="a@x")[0] == 200
    batches = len(setup.predictor.batches)
    status, answer = setup.post(v2([ACTIVE, OTHER, STRANGER]), caller="a@x")
    assert status == 429 and "more than 5 customer ids in a minute" in answer["error"]
    assert int(setup.headers[b"retry-after"]) >= 1
    assert len(setup.predictor.batches) == batches  # refused before any lookup or predictor call
    assert setup.post(v2([ACTIVE, OTHER]), caller="a@x")[0] == 200  # what is left (2) may still be asked
    assert setup.post(v2([ACTIVE, OTHER, STRANGER]), caller="b@x")[0] == 200  # each caller has its own allowance


def test_the_allowance_refills_continuously_and_a_refusal_spends_nothing() -> None:
    limit = CallerLimit(per_minute=60)  # one id a second
    limit.take("a", 60, now=0.0)
    with pytest.raises(TooManyRequests) as refused:
        limit.take("a", 10, now=0.0)
    assert refused.value.status == 429 and refused.value.retry_after_s == 10
    limit.take("a", 10, now=10.0)  # ten seconds later: ten ids
    with pytest.raises(TooManyRequests):
        limit.take("a", 1, now=10.0)
    limit.take("a", 60, now=1000.0)  # never more than a minute's worth is saved up
    with pytest.raises(TooManyRequests):
        limit.take("a", 1, now=1000.0)
