"""`stack up` never adopts a service it did not start: a held port is refused with the setting to change."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from churnops.cli import main as cli
from churnops.local.localstack import LocalStack, PortTaken
from churnops.platform.settings import Settings, get_settings
from tests.conftest import free_port


class _Healthy(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 200, as a tracking server's /health does."""

    def do_GET(self) -> None:  # pylint: disable=invalid-name  # the name http.server calls
        """200 OK."""
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, format: str, *args: object) -> None:  # pylint: disable=redefined-builtin
        del format, args


@pytest.fixture(name="foreign_port")
def fixture_foreign_port() -> Iterator[int]:
    """A port on 127.0.0.1 held by a healthy HTTP service that no stack started."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_up_refuses_a_healthy_foreign_service_and_starts_nothing(tmp_path: Path, foreign_port: int) -> None:
    settings = Settings(state_dir=tmp_path, gcs_port=free_port(), mlflow_port=foreign_port)
    stack = LocalStack(settings)
    with pytest.raises(PortTaken, match=rf"mlflow: port {foreign_port} on 127\.0\.0\.1 .* CHURNOPS_MLFLOW_PORT"):
        stack.up()
    assert not (tmp_path / "run").exists()  # refused before anything was started, fake-gcs-server included
    assert [status.pid for status in stack.status()] == [None, None]


def test_up_refuses_when_its_own_process_is_alive_but_another_holds_the_port(tmp_path: Path, foreign_port: int) -> None:
    settings = Settings(state_dir=tmp_path, gcs_port=free_port(), mlflow_port=foreign_port)
    stack = LocalStack(settings, only=("mlflow",))
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # pylint: disable=consider-using-with
    try:  # the recorded process (alive, listening on nothing) is killed in `finally`
        (tmp_path / "run").mkdir()
        record = {"pid": ours.pid, "create_time": psutil.Process(ours.pid).create_time(), "argv": []}
        (tmp_path / "run" / "mlflow.json").write_text(json.dumps(record), encoding="utf-8")
        with pytest.raises(PortTaken, match=str(foreign_port)):
            stack.up()
    finally:
        ours.kill()
        ours.wait()


def test_stack_status_names_a_foreign_service_and_exits_1(
    tmp_path: Path, foreign_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CHURNOPS_GCS_PORT", str(free_port()))
    monkeypatch.setenv("CHURNOPS_MLFLOW_PORT", str(foreign_port))
    monkeypatch.setattr(cli, "setup_logging", lambda _settings: None)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.main, ["stack", "status"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    states = {line.split()[0]: line.split()[1] for line in result.output.splitlines()}
    assert states == {"fake-gcs-server": "down", "mlflow": "foreign"}


def test_stack_up_command_prints_one_line_and_exits_2(
    tmp_path: Path, foreign_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CHURNOPS_GCS_PORT", str(foreign_port))
    monkeypatch.setenv("CHURNOPS_MLFLOW_PORT", str(free_port()))
    monkeypatch.setattr(cli, "setup_logging", lambda _settings: None)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.main, ["stack", "up"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: PortTaken: fake-gcs-server: port {foreign_port} on 127.0.0.1 is held by a process this stack did "
        f"not start (state {tmp_path.resolve()}); stop that process or set CHURNOPS_GCS_PORT to a free port"
    ]
