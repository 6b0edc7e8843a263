"""Churn risk by customer id end to end: ingested lake, trained model, online snapshot, predictor and
transformer as processes, V2 requests by raw id; a newer snapshot is picked up without a restart.
Both servers authenticate their callers (the transformer presents its own token to the predictor)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from churnops.data.privacy import Tokenizer
from churnops.model import online as model_online
from churnops.platform.auth import mint_local_token
from churnops.training import online
from churnops.training.features import feature_spec
from churnops.training.train import TrainingConfig, TrainingResult, load_tables
from tests.conftest import free_port
from tests.integration.training.conftest import CUSTOMERS, KEY, Lake

REPO = Path(__file__).resolve().parents[3]
MODEL = "churn"
STRANGER = "acct-zz-not-a-customer"  # an id the log scrubber's patterns do not cover


@dataclass
class Service:
    """A server process and its REST address."""

    address: str
    process: subprocess.Popen
    log: Path

    def url(self, path: str) -> str:
        """An absolute URL on the REST port."""
        return f"http://{self.address}{path}"


def start(command: list[str], port: int, log: Path, env: dict[str, str]) -> Service:
    """Start a server process writing to ``log``; do not wait."""
    # The server outlives this function (the fixture stops it): no context manager here.
    output = open(log, "wb")  # pylint: disable=consider-using-with
    process = subprocess.Popen(  # pylint: disable=consider-using-with
        command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT
    )
    return Service(f"127.0.0.1:{port}", process, log)


def wait_ready(service: Service, timeout: float = 240) -> None:
    """Until the model is ready (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"exited with {service.process.returncode}: {service.log.read_text()[-3000:]}")
        try:
            if requests.get(service.url(f"/v2/models/{MODEL}/ready"), timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"not ready in time: {service.log.read_text()[-3000:]}")


def stop(*services: Service) -> None:
    """SIGTERM to all, then wait for each."""
    for service in services:
        service.process.send_signal(signal.SIGTERM)
    for service in services:
        try:
            service.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


@dataclass
class Stack:
    """Lake, model, the first snapshot, both servers and the raw ids of the three kinds of customer."""

    lake: Lake
    result: TrainingResult
    first: model_online.OnlineSnapshot
    predictor: Service
    transformer: Service
    known: str
    cancelled: str


def raw_ids(snapshot: model_online.OnlineSnapshot) -> tuple[str, str]:
    """A raw id active in ``snapshot`` and one cancelled before its cutoff (the generator's id scheme)."""
    tokenizer = Tokenizer(KEY.encode())
    by_token = {tokenizer.token(f"CUST-{i:07d}"): f"CUST-{i:07d}" for i in range(1, CUSTOMERS + 1)}
    known = next(by_token[t] for t in snapshot.features.index if t in by_token)
    cancelled = next(by_token[t] for t, status in snapshot.inactive.items() if status == "cancelled")
    return known, cancelled


@pytest.fixture(scope="module", name="stack")
def fixture_stack(trained: tuple[Lake, TrainingResult], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An older snapshot (6 hours before the latest cutoff) published, predictor and transformer running."""
    lake, result = trained
    assert result.model_version is not None
    events, subscriptions = load_tables(lake.repo, lake.commit)
    spec = feature_spec(TrainingConfig.from_settings(lake.settings).windows_h)
    cutoff = online.latest_cutoff(events, subscriptions) - pd.Timedelta(hours=6)
    features, inactive, cutoff = online.build_snapshot(events, subscriptions, spec, cutoff=cutoff)
    model_online.publish_snapshot(
        lake.repo, model_online.OnlineSnapshot(features, inactive, lake.commit, cutoff, spec, "")
    )
    first = model_online.load_snapshot(lake.repo)

    logs = tmp_path_factory.mktemp("by-customer")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CHURNOPS_STATE_DIR": str(lake.settings.state_dir),
        "CHURNOPS_TOKENIZATION_KEY": KEY,
        "CHURNOPS_ONLINE_REFRESH_SECONDS": "0.5",
        "CHURNOPS_LOG_LEVEL": "DEBUG",
        "CHURNOPS_MLFLOW_TRACKING_URI": str(lake.settings.mlflow_tracking_uri),
    }
    predictor_port, transformer_port = free_port(), free_port()
    predictor = start(
        [
            sys.executable,
            "-m",
            "serving",
            "--model_uri",
            f"models:/{lake.settings.registered_model}/{result.model_version}",
            "--model_name",
            MODEL,
            "--http_port",
            str(predictor_port),
            "--grpc_port",
            str(free_port()),
        ],
        predictor_port,
        logs / "predictor.log",
        {**env, "CHURNOPS_LOG_LEVEL": "WARNING"},
    )
    transformer = start(
        [
            sys.executable,
            "-m",
            "serving.transformer",
            "--model_name",
            MODEL,
            "--http_port",
            str(transformer_port),
            "--predictor_host",
            f"127.0.0.1:{predictor_port}",
        ],
        transformer_port,
        logs / "transformer.log",
        env,
    )
    try:
        wait_ready(predictor)
        wait_ready(transformer)
        yield Stack(lake, result, first, predictor, transformer, *raw_ids(first))
    finally:
        stop(transformer, predictor)


def bearer(stack: Stack, account: str, audience: str) -> dict[str, str]:
    """``Authorization`` of ``account`` for ``audience``, signed by the local key the servers trust."""
    return {"Authorization": f"Bearer {mint_local_token(stack.lake.settings, account, audience)}"}


def ask(stack: Stack, ids: list[str], account: str | None = "churnops-deployer") -> requests.Response:
    """POST raw customer ids to the transformer as ``account`` (None: without a token)."""
    auth = bearer(stack, account, stack.lake.settings.transformer_audience) if account else None
    return requests.post(
        stack.transformer.url(f"/v2/models/{MODEL}/infer"),
        timeout=30,
        headers=auth,
        json={"id": "q", "inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [len(ids)], "data": ids}]},
    )


def by_id(stack: Stack, ids: list[str]) -> dict[str, Any]:
    """Ask the transformer by raw customer id (as the deployer, an allowed caller)."""
    response = ask(stack, ids)
    assert response.status_code == 200, response.text
    body = response.json()
    body["values"] = {o["name"]: o["data"] for o in body["outputs"]}
    return body


def predictor_answer(stack: Stack, snapshot: model_online.OnlineSnapshot, raw_id: str) -> dict[str, Any]:
    """What the predictor returns for the customer's snapshot row, asked directly with that row."""
    row = snapshot.features.loc[Tokenizer(KEY.encode()).token(raw_id)]
    inputs = []
    for name in snapshot.spec.numeric:
        value = float(row[name]) if pd.notna(row[name]) else None
        inputs.append({"name": name, "datatype": "FP64", "shape": [1], "data": [value]})
    for name in snapshot.spec.categorical:
        inputs.append(
            {"name": name, "datatype": "BYTES", "shape": [1], "data": [None if pd.isna(row[name]) else str(row[name])]}
        )
    response = requests.post(
        stack.predictor.url(f"/v2/models/{MODEL}/infer"),
        json={"inputs": inputs},
        timeout=30,
        headers=bearer(stack, "churnops-deployer", stack.lake.settings.predictor_audience),
    )
    assert response.status_code == 200, response.text
    return {o["name"]: o["data"][0] for o in response.json()["outputs"]} | {
        "model_version": response.json()["model_version"]
    }


def test_a_batch_by_raw_id_gets_the_predictors_answer_for_the_known_customer_and_errors_for_the_others(
    stack: Stack,
) -> None:
    body = by_id(stack, [stack.known, STRANGER, stack.cancelled])

    expected = predictor_answer(stack, stack.first, stack.known)
    values = body["values"]
    assert values["churn_probability"][0] == expected["churn_probability"]
    assert values["churn_label"][0] == expected["churn_label"]
    assert values["churn_probability"][1:] == [None, None] and values["churn_label"][1:] == [-1, -1]
    assert values["error"][0] == ""
    assert values["error"][1].startswith("unknown customer")
    assert "not active" in values["error"][2] and "cancelled" in values["error"][2]
    assert body["model_version"] == expected["model_version"] == stack.result.model_version
    assert body["parameters"]["data_commit"] == stack.lake.commit
    assert body["parameters"]["cutoff"] == stack.first.cutoff.isoformat()
    assert body["parameters"]["snapshot_commit"] == stack.first.commit_id


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [{"name": "customer", "datatype": "BYTES", "shape": [1], "data": [STRANGER]}]}, "unknown input"),
        ({"inputs": [{"name": "customer_id", "datatype": "INT64", "shape": [1], "data": [7]}]}, "must be BYTES"),
        ({"inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [0], "data": []}]}, "no rows"),
        ({"inputs": "customer_id"}, "'inputs' must be a non-empty list"),
    ],
)
def test_a_bad_request_is_a_4xx_with_a_json_error_that_echoes_no_id(stack: Stack, body: dict, message: str) -> None:
    response = requests.post(
        stack.transformer.url(f"/v2/models/{MODEL}/infer"),
        json=body,
        timeout=30,
        headers=bearer(stack, "churnops-deployer", stack.lake.settings.transformer_audience),
    )
    assert 400 <= response.status_code < 500
    error = response.json()["error"]
    assert message in error and STRANGER not in error


def test_a_newer_snapshot_is_served_without_a_restart_and_no_raw_id_is_logged(stack: Stack) -> None:
    newer = online.refresh_online_features(stack.lake.settings, repo=stack.lake.repo)
    assert newer.cutoff > stack.first.cutoff
    deadline = time.monotonic() + 60
    body = by_id(stack, [stack.known])
    while body["parameters"]["snapshot_commit"] != newer.commit_id and time.monotonic() < deadline:
        time.sleep(0.2)
        body = by_id(stack, [stack.known])
    assert body["parameters"]["snapshot_commit"] == newer.commit_id
    assert body["parameters"]["cutoff"] == newer.cutoff.isoformat()
    assert stack.transformer.process.poll() is None  # the same process
    expected = predictor_answer(stack, newer, stack.known)
    assert body["values"]["churn_probability"] == [expected["churn_probability"]]
    old = stack.first.features.loc[Tokenizer(KEY.encode()).token(stack.known)]
    new = newer.features.loc[Tokenizer(KEY.encode()).token(stack.known)]
    assert not np.array_equal(old.to_numpy(dtype=object), new.to_numpy(dtype=object))  # the row really changed

    log = stack.transformer.log.read_text()
    assert "online snapshot" in log and "by-customer rows=" in log  # the log was written at DEBUG
    for raw in (stack.known, stack.cancelled, STRANGER):
        assert raw not in log


def test_the_transformer_refuses_anonymous_and_unlisted_callers_and_serves_listed_ones(stack: Stack) -> None:
    anonymous = ask(stack, [stack.known], account=None)
    assert anonymous.status_code == 401 and "bearer token" in anonymous.json()["error"]
    # the transformer's own account may call the predictor, not the transformer
    unlisted = ask(stack, [stack.known], account="churnops-transformer")
    assert unlisted.status_code == 403 and unlisted.json()["error"]
    for_predictor = requests.post(
        stack.transformer.url(f"/v2/models/{MODEL}/infer"),
        timeout=30,
        json={},
        headers=bearer(stack, "churnops-deployer", stack.lake.settings.predictor_audience),
    )
    assert for_predictor.status_code == 401  # a token for another service
    served = ask(stack, [stack.known])  # scored: the transformer's own token got it past the predictor
    assert served.status_code == 200 and served.json()["outputs"][2]["data"] == [""]


def test_more_ids_than_a_request_may_hold_is_400(stack: Stack) -> None:
    limit = stack.lake.settings.transformer_max_ids_per_request
    refused = ask(stack, [STRANGER] * (limit + 1))
    assert refused.status_code == 400 and f"at most {limit} per request" in refused.json()["error"]
