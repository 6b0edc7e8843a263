"""A churn model registered on the session's MLflow server, and one model server serving it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from churnops.model import registry
from churnops.model.predict import DECISION_RULE_KEY, DecisionRule
from churnops.training.estimators import (  # the training's own logging choices
    calibrate,
    model_requirements,
    model_signature,
)
from churnops.training.evaluate import decision_rule
from churnops.training.features import FEATURE_SPEC, LABEL
from churnops.training.transform import MODEL_CODE_PATHS, SKOPS_TRUSTED_TYPES, build_model
from tests.conftest import free_port
from tests.support.auth import server_env

# MLflow's usage telemetry thread races with the registry client here (KeyError on its session id).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
REPO = Path(__file__).resolve().parents[3]
MODEL_NAME = "churn"
CATEGORIES = {
    "plan": ["basic", "standard", "premium"],
    "contract": ["monthly", "annual"],
    "payment_method": ["card", "paypal", "invoice"],
}


def feature_rows(rows: int, seed: int) -> pd.DataFrame:
    """Rows over the real feature spec, with missing values in every kind of column."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.gamma(2.0, 3.0, rows) for name in FEATURE_SPEC.numeric})
    for name in FEATURE_SPEC.numeric[::5]:
        frame.loc[rng.random(rows) < 0.15, name] = np.nan
    for name in FEATURE_SPEC.categorical:
        frame[name] = pd.array(rng.choice(CATEGORIES[name] + [None], rows), dtype=object)
    return frame[FEATURE_SPEC.columns]


@dataclass
class Registered:
    """The registered model: where it is, its version and data commit, and the fitted Pipeline."""

    tracking_uri: str
    name: str
    version: str
    data_commit: str
    pipeline: Pipeline
    logged_uri: str
    """The logged model (``models:/<logged model id>``) the version was registered from."""
    rule: DecisionRule

    @property
    def uri(self) -> str:
        """The production alias of the model."""
        return f"models:/{self.name}@production"


@pytest.fixture(scope="session", name="registered")
def fixture_registered(mlflow_tracking_uri: str) -> Registered:
    """A small XGBoost churn model, logged the way training logs it (calibrated on held-back rows, with a top-k
    decision rule whose threshold is not 0.5), registered with the production alias."""
    X = feature_rows(600, seed=0)
    score = X["monthly_charges"].fillna(5) - X["tenure_h"].fillna(5) + (X["payment_method"] == "invoice") * 3
    y = (score + np.random.default_rng(1).normal(0, 2, len(X)) > 0).astype(int).to_numpy()
    raw = build_model(FEATURE_SPEC, XGBClassifier(n_estimators=60, max_depth=4, n_jobs=1, random_state=0))
    raw.fit(X.iloc[:400], y[:400])
    pipeline = calibrate(raw, X.iloc[400:].assign(**{LABEL: y[400:]}), FEATURE_SPEC, "sigmoid")
    rule = decision_rule(
        "top_k",
        pipeline.predict_proba(X.iloc[400:])[:, 1],
        capacity_share=0.2,
        save_rate=0.3,
        customer_value=100,
        contact_cost=5,
    )
    assert abs(rule.threshold - 0.5) > 0.01, "the served labels must tell the recorded rule from the old 0.5"
    mlflow.set_tracking_uri(mlflow_tracking_uri)
    mlflow.set_registry_uri(mlflow_tracking_uri)
    name, commit = f"churn-serving-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex + "abcd1234"
    mlflow.set_experiment(name)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=model_signature(FEATURE_SPEC, X.head(5), pipeline.predict_proba(X.head(5))),
            pip_requirements=model_requirements(),
            pyfunc_predict_fn="predict_proba",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
            code_paths=list(MODEL_CODE_PATHS),
            metadata={"data_commit": commit, DECISION_RULE_KEY: rule.to_dict()},
        )
    version = registry.register_version(name, info.model_uri, tags={"data_commit": commit})
    registry.assign_alias(mlflow.MlflowClient(mlflow_tracking_uri, mlflow_tracking_uri), name, "production", version)
    return Registered(mlflow_tracking_uri, name, version, commit, pipeline, info.model_uri, rule)


class Servable(Protocol):
    """What the server needs to find a registered model."""

    @property
    def uri(self) -> str:
        """``models:/<name>@<alias>`` (or ``/<version>``)."""

    @property
    def tracking_uri(self) -> str:
        """The MLflow server holding it."""


@dataclass
class Server:
    """A running model server."""

    http: str
    grpc: str
    process: subprocess.Popen

    def url(self, path: str) -> str:
        """An absolute URL on the REST port."""
        return f"http://{self.http}{path}"


def start_server(
    registered: Servable, extra: list[str] | None = None, log: Path | None = None, level: str = "WARNING"
) -> Server:
    """Start ``python -m serving`` on free ports (logging at ``level``) and wait until it is ready."""
    http_port, grpc_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "serving",
        "--model_uri",
        registered.uri,
        "--tracking_uri",
        registered.tracking_uri,
        "--model_name",
        MODEL_NAME,
        "--http_port",
        str(http_port),
        "--grpc_port",
        str(grpc_port),
        *(extra or []),
    ]
    env = {**os.environ, "CHURNOPS_LOG_LEVEL": level, **server_env()}
    # The server outlives this function (the fixture stops it): no context managers here.
    output = open(log, "wb") if log else subprocess.DEVNULL  # pylint: disable=consider-using-with
    process = subprocess.Popen(  # pylint: disable=consider-using-with
        command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT
    )
    server = Server(f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", process)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the model server exited with {process.returncode}" + (f": {log.read_text()[-2000:]}" if log else "")
            )
        try:
            if requests.get(server.url(f"/v2/models/{MODEL_NAME}/ready"), timeout=2).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("the model server did not become ready in time")


def stop_server(server: Server) -> int:
    """SIGTERM, then wait; returns the exit code."""
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.process.kill()
        return server.process.wait()


@pytest.fixture(scope="session", name="server")
def fixture_server(registered: Registered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One model server for the session (REST and gRPC), serving the registered model's production alias."""
    server = start_server(registered, log=tmp_path_factory.mktemp("serving") / "server.log")
    yield server
    stop_server(server)
