"""Every command that touches MLflow answers a missing model, a missing alias and an unreachable server
with one line and exit status 2 (the registry's domain errors), never a traceback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from churnops.cli import main as cli
from churnops.platform.settings import get_settings
from tests.conftest import free_port

MODEL_COMMANDS = (
    ["model", "promote", "--to", "staging"],
    ["model", "promote", "--to", "production"],
    ["model", "rollback"],
    ["model", "source", "--alias", "staging"],
    ["drift", "check", "--no-refresh"],
    ["drift", "check", "--no-refresh", "--model", "999"],
)


def _use_server(env: pytest.MonkeyPatch, uri: str) -> str:
    """Point the commands at the MLflow server at ``uri``; return the model name nothing registered."""
    env.setenv("CHURNOPS_MLFLOW_TRACKING_URI", uri)
    env.setenv("CHURNOPS_MLFLOW_PORT", uri.rsplit(":", 1)[1])  # what `reproduce` checks is up
    get_settings.cache_clear()
    return get_settings().registered_model


def _one_line(args: list[str]) -> str:
    """Run ``churnops args``; require exit status 2 and one line without a traceback; return the line."""
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2, (args, result.output, result.exception)
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), (args, result.output)
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(name="registry_env")
def fixture_registry_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """A fresh state folder, a model name nothing registered, and MLflow without request retries."""
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CHURNOPS_REGISTERED_MODEL", f"missing-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.mark.parametrize("args", [*MODEL_COMMANDS, ["model", "show"], ["runs", "compare"]])
def test_an_unreachable_server_is_registry_unavailable(registry_env: pytest.MonkeyPatch, args: list[str]) -> None:
    registry_env.setenv("CHURNOPS_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    assert _one_line(args).startswith("Error: RegistryUnavailable: MLflow tracking server unreachable")


def test_reproduce_with_an_unreachable_server_says_the_service_is_down(registry_env: pytest.MonkeyPatch) -> None:
    registry_env.setenv("CHURNOPS_MLFLOW_PORT", str(free_port()))
    assert _one_line(["reproduce", "churn-classifier@production"]).startswith("Error: StackNotRunning:")


@pytest.mark.parametrize(
    "args", [*MODEL_COMMANDS, ["reproduce", "{model}@production"], ["runs", "compare", "--experiment", "{model}"]]
)
def test_a_missing_model_is_a_registry_error_naming_it(
    registry_env: pytest.MonkeyPatch, mlflow_tracking_uri: str, args: list[str]
) -> None:
    model = _use_server(registry_env, mlflow_tracking_uri)
    line = _one_line([arg.format(model=model) for arg in args])
    assert line.startswith(("Error: RegistryError: ", "Error: RegistryNotFound: "))
    assert model in line or "999" in line


@pytest.mark.parametrize("args", [*MODEL_COMMANDS, ["reproduce", "{model}@production"]])
def test_a_missing_alias_is_a_registry_error_naming_it(
    registry_env: pytest.MonkeyPatch, mlflow_tracking_uri: str, args: list[str]
) -> None:
    model = _use_server(registry_env, mlflow_tracking_uri)
    MlflowClient(mlflow_tracking_uri, registry_uri=mlflow_tracking_uri).create_registered_model(model)
    line = _one_line([arg.format(model=model) for arg in args])
    assert line.startswith(("Error: RegistryError: ", "Error: RegistryNotFound: "))
    assert any(alias in line for alias in ("'candidate'", "'staging'", "'production'", "999")), line


def test_a_model_with_no_versions_is_shown_as_such(registry_env: pytest.MonkeyPatch, mlflow_tracking_uri: str) -> None:
    model = _use_server(registry_env, mlflow_tracking_uri)
    result = CliRunner().invoke(cli.main, ["model", "show"])
    assert result.exit_code == 0 and result.output.strip() == f"no versions of {model!r} are registered"
