"""``churnops serve`` maps its options onto the model server's entry point."""

from __future__ import annotations

import sys

from click.testing import CliRunner

from churnops.cli import serve
from churnops.cli.main import main


def test_options_become_the_servers_arguments(monkeypatch) -> None:
    executed: list = []
    monkeypatch.setattr(serve.os, "execve", lambda path, args, env: executed.append((path, args, env)))
    monkeypatch.setenv("CHURNOPS_MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    result = CliRunner().invoke(main, ["serve", "--http-port", "9001", "--grpc-port", "9002", "--workers", "3"])
    assert result.exit_code == 0, result.output
    assert len(executed) == 1
    path, args, env = executed[0]
    assert path == sys.executable and args[1:3] == ["-m", "serving"]
    options = dict(zip(args[3::2], args[4::2]))
    assert options == {"--model_uri": "models:/churn-classifier@production", "--http_port": "9001",
                       "--grpc_port": "9002", "--workers": "3", "--host": "127.0.0.1", "--model_name": "churn",
                       "--tracking_uri": "http://127.0.0.1:5999"}
    assert env["OMP_NUM_THREADS"] == "1"


def test_bad_options_are_refused_before_anything_starts(monkeypatch) -> None:
    monkeypatch.setattr(serve.os, "execve", lambda *_: (_ for _ in ()).throw(AssertionError("started")))
    result = CliRunner().invoke(main, ["serve", "--http-port", "0"])
    assert result.exit_code == 2 and "http-port" in result.output
