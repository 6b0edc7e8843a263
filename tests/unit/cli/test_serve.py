"""``churnops serve`` maps its options onto the model server's entry point."""

from __future__ import annotations

import os
import sys
import time

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
    assert options == {
        "--model_uri": "models:/churn-classifier@production",
        "--http_port": "9001",
        "--grpc_port": "9002",
        "--workers": "3",
        "--host": "127.0.0.1",
        "--model_name": "churn",
        "--tracking_uri": "http://127.0.0.1:5999",
    }
    assert env["OMP_NUM_THREADS"] == "1"


def test_bad_options_are_refused_before_anything_starts(monkeypatch) -> None:
    monkeypatch.setattr(serve.os, "execve", lambda *_: (_ for _ in ()).throw(AssertionError("started")))
    result = CliRunner().invoke(main, ["serve", "--http-port", "0"])
    assert result.exit_code == 2 and "http-port" in result.output


def test_by_customer_runs_the_predictor_and_a_transformer_pointed_at_it(monkeypatch) -> None:
    started: list = []
    monkeypatch.setattr(serve.os, "execve", lambda *_: (_ for _ in ()).throw(AssertionError("exec")))
    monkeypatch.setattr(serve, "run_together", lambda commands, env: started.append((commands, env)) or 0)
    result = CliRunner().invoke(
        main,
        [
            "serve",
            "--by-customer",
            "--http-port",
            "9001",
            "--grpc-port",
            "9002",
            "--transformer-port",
            "9003",
            "--host",
            "0.0.0.0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(started) == 1
    (predictor, transformer), env = started[0]
    assert predictor[1:3] == ["-m", "serving"] and dict(zip(predictor[3::2], predictor[4::2]))["--http_port"] == "9001"
    assert transformer[1:3] == ["-m", "serving.transformer"]
    assert dict(zip(transformer[3::2], transformer[4::2])) == {
        "--http_port": "9003",
        "--host": "0.0.0.0",
        "--model_name": "churn",
        "--predictor_host": "127.0.0.1:9001",
        "--predictor_protocol": "v2",
    }
    assert "http://0.0.0.0:9001" in result.output and "http://0.0.0.0:9003/v2/models/churn/infer" in result.output
    assert env["OMP_NUM_THREADS"]


def test_by_customer_is_documented_and_its_port_must_be_free(monkeypatch) -> None:
    assert "--by-customer" in CliRunner().invoke(main, ["serve", "--help"]).output
    monkeypatch.setattr(serve, "run_together", lambda *_: (_ for _ in ()).throw(AssertionError("started")))
    result = CliRunner().invoke(main, ["serve", "--by-customer", "--transformer-port", "8080"])
    assert result.exit_code == 2 and "transformer-port" in result.output


def test_run_together_stops_the_other_process_when_one_exits() -> None:
    started = time.monotonic()
    code = serve.run_together(
        [[sys.executable, "-c", "import sys; sys.exit(4)"], [sys.executable, "-c", "import time; time.sleep(120)"]],
        env=dict(os.environ),
    )
    assert code == 4 and time.monotonic() - started < 30
