"""Where this process's MLflow credentials go: ``Authorization`` directly, ``X-MLflow-Authorization`` behind a proxy."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from mlflow.tracking.request_header.registry import resolve_request_headers
from pydantic import SecretStr

from churnops.platform.mlflow_login import (
    FORWARDED_HEADER,
    FORWARDED_VARIABLE,
    MLFLOW_LOGIN_VARIABLES,
    mlflow_password_file,
    use_mlflow_credentials,
)
from churnops.platform.settings import Settings


@pytest.fixture(autouse=True, name="clean_environment")
def fixture_clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MLflow login in the environment before each test (restored after)."""
    for variable in (*MLFLOW_LOGIN_VARIABLES, FORWARDED_VARIABLE):
        monkeypatch.setenv(variable, "placeholder")
        monkeypatch.delenv(variable)


def test_a_direct_address_gets_the_user_and_password_and_no_forwarded_header(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, mlflow_username="churnops-deployer", mlflow_password=SecretStr("pw"))
    assert use_mlflow_credentials(settings)

    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == (
        "churnops-deployer",
        "pw",
    )
    assert FORWARDED_HEADER not in resolve_request_headers()


def test_behind_the_proxy_the_credentials_go_in_mlflows_forwarded_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "someone")  # would be sent in Authorization, the API server's
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "else")
    user = "churnops-training"
    path = mlflow_password_file(Settings(state_dir=tmp_path), user)
    path.parent.mkdir(parents=True)
    path.write_text("from-the-local-stack\n", encoding="utf-8")
    assert use_mlflow_credentials(Settings(state_dir=tmp_path, mlflow_username=user), forwarded=True)

    header = resolve_request_headers()[FORWARDED_HEADER]  # what MLflow's REST client adds to every request
    assert header == "Basic " + base64.b64encode(b"churnops-training:from-the-local-stack").decode()
    assert FORWARDED_HEADER == "X-MLflow-Authorization"

    assert not set(MLFLOW_LOGIN_VARIABLES) & set(os.environ)


def test_without_a_password_nothing_is_set(tmp_path: Path) -> None:
    assert not use_mlflow_credentials(Settings(state_dir=tmp_path), forwarded=True)
    assert FORWARDED_HEADER not in resolve_request_headers()
