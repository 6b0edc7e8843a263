"""Where this process's MLflow credentials go: ``Authorization`` directly; behind a proxy, the value the
client's forwarder sends in ``X-MLflow-Authorization``, never the environment."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from churnops.platform.mlflow_login import (
    MLFLOW_LOGIN_VARIABLES,
    mlflow_authorization,
    mlflow_password_file,
    use_mlflow_credentials,
)
from churnops.platform.settings import Settings
from tests.support.secret_manager_double import SecretManagerDouble


@pytest.fixture(autouse=True, name="clean_environment")
def fixture_clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MLflow login in the environment before each test (restored after)."""
    for variable in MLFLOW_LOGIN_VARIABLES:
        monkeypatch.setenv(variable, "placeholder")
        monkeypatch.delenv(variable)


def test_a_direct_address_gets_the_user_and_password(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, mlflow_username="churnops-deployer", mlflow_password=SecretStr("pw"))
    assert use_mlflow_credentials(settings)

    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == (
        "churnops-deployer",
        "pw",
    )


def test_the_forwarded_credentials_are_the_users_basic_login_and_set_nothing(tmp_path: Path) -> None:
    user = "churnops-training"
    path = mlflow_password_file(Settings(state_dir=tmp_path), user)
    path.parent.mkdir(parents=True)
    path.write_text("from-the-local-stack\n", encoding="utf-8")

    value = mlflow_authorization(Settings(state_dir=tmp_path, mlflow_username=user))

    assert value == "Basic " + base64.b64encode(b"churnops-training:from-the-local-stack").decode()
    assert not set(MLFLOW_LOGIN_VARIABLES) & set(os.environ)


def test_without_a_password_nothing_is_set(tmp_path: Path) -> None:
    assert not use_mlflow_credentials(Settings(state_dir=tmp_path))
    assert mlflow_authorization(Settings(state_dir=tmp_path)) is None
    assert not set(MLFLOW_LOGIN_VARIABLES) & set(os.environ)


def test_on_gke_the_password_is_the_users_secret_in_secret_manager(tmp_path: Path) -> None:
    """A pipeline task or a build reads its own user's password from Secret Manager (its identity's grant);
    a process whose identity may not read it (the predictor, which never calls MLflow) gets no login."""
    with SecretManagerDouble() as double:
        double.add_version("proj", "churnops-mlflow-password-churnops-scoring", b"scoring-password\n")
        settings = {
            "profile": "gke",
            "secrets_backend": "gcp",
            "secret_manager_endpoint": double.url,
            "gcp_project": "proj",
            "state_dir": tmp_path,
        }
        value = mlflow_authorization(Settings(**settings, mlflow_username="churnops-scoring"))
        assert value == "Basic " + base64.b64encode(b"churnops-scoring:scoring-password").decode()
        assert mlflow_authorization(Settings(**settings, mlflow_username="churnops-training")) is None
        assert not use_mlflow_credentials(Settings(**settings, mlflow_username="churnops-training"))
    assert not set(MLFLOW_LOGIN_VARIABLES) & set(os.environ)
