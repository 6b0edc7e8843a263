"""The command line reports domain errors as one clear line (exit 2); a bug keeps its traceback."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from churnops.cli import demo
from churnops.cli import main as cli
from churnops.data.versioning import open_repository
from churnops.platform.settings import get_settings
from churnops.platform.storage import StorageUnavailable
from tests.conftest import free_port


@pytest.fixture(name="dead_stack")
def fixture_dead_stack(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    """Settings whose local services listen nowhere; root logging restored afterwards."""
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CHURNOPS_GCS_PORT", str(free_port()))
    monkeypatch.setenv("CHURNOPS_MLFLOW_PORT", str(free_port()))
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "--hour", "2026-11-01T05"],
        ["data", "generate", "--hours", "1", "--customers", "5"],
        ["train", "--latest"],
    ],
)
@pytest.mark.usefixtures("dead_stack")
def test_commands_needing_a_stopped_service_say_how_to_start_it(args: list[str]) -> None:
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2
    assert "StackNotRunning: not running" in result.output and "churnops stack up" in result.output
    assert len(result.output.splitlines()) == 1
    assert "Traceback" not in result.output


def _ingest_raising(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    monkeypatch.setattr(cli, "require_services", lambda *_: None)

    def failing(*_args: object) -> None:
        raise error

    monkeypatch.setattr(cli.ingest, "ingest_hour", failing)


@pytest.mark.usefixtures("dead_stack")
def test_domain_errors_become_one_scrubbed_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    _ingest_raising(monkeypatch, StorageUnavailable("storage backend unavailable for jane@example.com\nsecond line"))
    result = CliRunner().invoke(cli.main, ["ingest", "--hour", "2026-11-01T05"])
    assert result.exit_code == 2
    assert result.output.splitlines() == ["Error: StorageUnavailable: storage backend unavailable for [REDACTED]"]
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("dead_stack")
def test_debug_prints_the_traceback_of_a_domain_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _ingest_raising(monkeypatch, StorageUnavailable("storage backend unavailable"))
    result = CliRunner().invoke(cli.main, ["--debug", "ingest", "--hour", "2026-11-01T05"])
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.output and "in failing" in result.output
    assert result.output.splitlines()[-1] == "Error: StorageUnavailable: storage backend unavailable"


@pytest.mark.usefixtures("dead_stack")
def test_a_bug_is_not_disguised_as_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _ingest_raising(monkeypatch, KeyError("columns"))
    result = CliRunner().invoke(cli.main, ["ingest", "--hour", "2026-11-01T05"])
    assert result.exit_code == 1
    assert isinstance(result.exception, KeyError)  # uncaught: the interpreter prints its traceback
    assert "Error:" not in result.output


@pytest.mark.usefixtures("dead_stack")
def test_a_malformed_hour_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli.main, ["ingest", "--hour", "yesterday"])
    assert result.exit_code == 2
    assert "is not an hour like 2026-11-01T05" in result.output


@pytest.mark.usefixtures("dead_stack")
def test_lake_log_lists_what_main_published_with_its_accounting() -> None:
    repo = open_repository(get_settings())
    repo.ensure()
    for hour, rows in (("2026-11-01T05", 10), ("2026-11-01T06", 7)):
        branch = f"ingest-{hour}"
        repo.create_branch(branch)
        repo.put_objects(branch, {f"events/{hour}.parquet": b"x" * rows})
        metadata = {"hour": hour, "accounting": json.dumps({"rows_in": rows, "rows_published": rows})}
        repo.commit(branch, f"ingest {hour}", metadata)
        repo.merge(branch, "main", f"publish ingest {hour}", metadata)
    result = CliRunner().invoke(cli.main, ["lake", "log", "--limit", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[3] for line in lines] == ["2026-11-01T06", "2026-11-01T05"]  # merges only, newest first
    assert "rows_in=7 rows_published=7" in lines[0]
    shown = json.loads(CliRunner().invoke(cli.main, ["lake", "show", lines[0].split()[0]]).output)
    assert shown["id"] == repo.head("main") and shown["metadata"]["hour"] == "2026-11-01T06"


@pytest.mark.parametrize("exported", ["state", "demo"])
def test_stack_down_stops_what_a_kept_demo_left_running(
    exported: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """Whether ``CHURNOPS_STATE_DIR`` names the user's state folder or, as the README's tour says, the demo's."""
    demo_run = tmp_path / "demo" / "run"
    demo_run.mkdir(parents=True)
    servers = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "serving", name])  # pylint: disable=consider-using-with
        for name in demo.PROCESSES
    ]
    try:
        for name, process in zip(demo.PROCESSES, servers):
            (demo_run / f"{name}.pid").write_text(str(process.pid), encoding="utf-8")
        monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path if exported == "state" else tmp_path / "demo"))
        monkeypatch.setenv("CHURNOPS_GCS_PORT", str(free_port()))
        monkeypatch.setenv("CHURNOPS_MLFLOW_PORT", str(free_port()))
        get_settings.cache_clear()
        result = CliRunner().invoke(cli.main, ["stack", "down"])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "stopped: demo model server and transformer"
        assert all(process.poll() is not None for process in servers)  # ended (and reaped by the command)
        assert not list(demo_run.glob("*.pid"))
    finally:
        get_settings.cache_clear()
        for process in servers:
            process.kill()
            process.wait()


def test_the_commands_judging_a_registered_version_take_the_same_model_option() -> None:
    """``drift check`` and ``model performance`` name the version alike: ``--model ALIAS|VERSION``, production."""
    for group, command in (("drift", "check"), ("model", "performance")):
        context = click.Context(cli.main)
        sub = cli.main.get_command(context, group)
        assert isinstance(sub, click.Group)
        judged = sub.get_command(context, command)
        assert judged is not None
        (option,) = [param for param in judged.params if "--model" in param.opts]
        assert (option.name, option.metavar, option.default, option.required) == (
            "model_ref",
            "ALIAS|VERSION",
            "production",
            False,
        ), (group, command)
        assert "--model ALIAS|VERSION" in CliRunner().invoke(cli.main, [group, command, "--help"]).output
