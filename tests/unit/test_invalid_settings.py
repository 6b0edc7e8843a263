"""An invalid setting never breaks an import; through every entry point it is one line naming it and exit 2.

The entry points: the ``churnops`` command, the model server (``python -m serving``), the
by-customer transformer (``python -m serving.transformer``) and every KFP component's body.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from kfp.dsl.python_component import PythonComponent

from churnops.platform.settings import get_settings

BAD = {"CHURNOPS_GCS_PORT": "abc"}
ONE_LINE = "Error: ConfigurationError: invalid settings: CHURNOPS_GCS_PORT: Input should be a valid integer"
# Every module a process may import before it reads its settings: the CLI, each component, each
# pipeline (through the registry), the model server and the transformer.
ENTRY_MODULES = (
    "churnops.cli.main",
    "components",
    "components.alert",
    "components.commit",
    "components.drift",
    "components.evaluate",
    "components.features",
    "components.ingest",
    "components.register",
    "components.score",
    "components.train",
    "pipelines",
    "pipelines.registry",
    "pipelines.compile",
    "pipelines.local",
    "serving",
    "serving.server",
    "serving.predictor",
    "serving.transformer",
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """``python args...`` in a fresh interpreter with the invalid setting in its environment."""
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, **BAD, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(name="bad_setting")
def fixture_bad_setting(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``CHURNOPS_GCS_PORT=abc`` in this process, with the cached settings forgotten before and after."""
    for name, value in BAD.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_importing_every_entry_point_reads_no_settings() -> None:
    imports = "; ".join(f"import {module}" for module in ENTRY_MODULES)
    result = _run("-c", f"{imports}; print('imported')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


@pytest.mark.usefixtures("bad_setting")
def test_cli_help_works_and_every_command_names_the_variable_with_exit_2() -> None:
    from churnops.cli import main as cli  # pylint: disable=import-outside-toplevel  # imported with the bad setting

    helped = CliRunner().invoke(cli.main, ["--help"])
    assert helped.exit_code == 0 and "stack" in helped.output
    for args in (["stack", "status"], ["stack", "down"], ["lake", "log"], ["model", "show"]):
        result = CliRunner().invoke(cli.main, args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.splitlines()
        assert len(lines) == 1 and lines[0].startswith(ONE_LINE), (args, result.output)


@pytest.mark.parametrize("module", ["serving.__main__", "serving.transformer"])
@pytest.mark.usefixtures("bad_setting")
def test_model_server_and_transformer_name_the_variable_and_exit_2(
    module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what the model server's module sets when it is imported
    entry = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exited:
        entry(["--model_name", "churn", "--predictor_host", "127.0.0.1:1", "--http_port", "1"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and err.startswith(ONE_LINE)


def _components() -> list[tuple[str, str]]:
    """(module, function) of every KFP component."""
    found = []
    for module in (name for name in ENTRY_MODULES if name.startswith("components.")):
        loaded = importlib.import_module(module)
        found += [
            (module, name)
            for name, value in vars(loaded).items()
            if isinstance(value, PythonComponent) and value.python_func.__module__ == module
        ]
    return found


@pytest.mark.parametrize(("module", "name"), _components())
@pytest.mark.usefixtures("bad_setting")
def test_every_component_body_names_the_variable_and_exits_2(
    module: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = getattr(importlib.import_module(module), name).python_func
    with pytest.raises(SystemExit) as exited:  # the settings are read before any argument is used
        body(**dict.fromkeys(inspect.signature(body).parameters))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and err.startswith(ONE_LINE)
