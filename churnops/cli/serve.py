"""``churnops serve``: run the churn model server (``python -m serving``) in the foreground.

The library never imports the model server; this command replaces its own process with the
server's entry point, mapping its options onto the server's arguments. With ``--by-customer`` it
runs two processes instead, the predictor and the by-customer transformer
(``python -m serving.transformer``) pointed at it, and stops both when either exits or on
Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from types import FrameType

import click

from churnops.platform.settings import get_settings


def server_command(
    model_uri: str, http_port: int, grpc_port: int, workers: int, host: str, model_name: str, tracking_uri: str | None
) -> list[str]:
    """The ``python -m serving`` command line for these options."""
    command = [
        sys.executable,
        "-m",
        "serving",
        "--model_uri",
        model_uri,
        "--http_port",
        str(http_port),
        "--grpc_port",
        str(grpc_port),
        "--workers",
        str(workers),
        "--host",
        host,
        "--model_name",
        model_name,
    ]
    if tracking_uri:
        command += ["--tracking_uri", tracking_uri]
    return command


def transformer_command(http_port: int, host: str, model_name: str, predictor: str) -> list[str]:
    """The ``python -m serving.transformer`` command line: V2 REST on ``http_port``, forwarding to ``predictor``."""
    return [
        sys.executable,
        "-m",
        "serving.transformer",
        "--http_port",
        str(http_port),
        "--host",
        host,
        "--model_name",
        model_name,
        "--predictor_host",
        predictor,
        "--predictor_protocol",
        "v2",
    ]


def loopback_if_unspecified(host: str) -> str:
    """Where a local client reaches a server bound to ``host`` (every interface: loopback)."""
    try:
        unspecified = ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a host name
        return host
    return "127.0.0.1" if unspecified else host


def run_together(commands: list[list[str]], env: dict[str, str]) -> int:
    """Run ``commands`` side by side until one exits or a signal arrives; stop the rest; return the first exit code."""
    processes = [subprocess.Popen(command, env=env) for command in commands]  # pylint: disable=consider-using-with
    stopping: list[int] = []

    def stop(signum: int, _: FrameType | None) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = None
        while code is None and not stopping:
            code = next((p.returncode for p in processes if p.poll() is not None), None)
            time.sleep(0.2)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
            process.wait()
        return 0 if stopping and code is None else int(code or 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command("serve")
@click.option(
    "--model-uri",
    default=None,
    metavar="URI",
    help="models:/<name>@<alias>, models:/<name>/<version> or a model directory. "
    "Default: models:/<registered model>@production.",
)
@click.option("--http-port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=8081, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="REST worker processes.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--model-name", default="churn", show_default=True, help="Name in the /v2/models/<name> paths.")
@click.option(
    "--by-customer",
    is_flag=True,
    help="Also start the by-customer transformer (V2 requests with a customer_id tensor; features from "
    "the latest online snapshot in the lake) in front of the predictor.",
)
@click.option(
    "--transformer-port",
    type=click.IntRange(1, 65535),
    default=8090,
    show_default=True,
    help="REST port of the transformer (with --by-customer).",
)
def serve_command(
    model_uri: str | None,
    http_port: int,
    grpc_port: int,
    workers: int,
    host: str,
    model_name: str,
    by_customer: bool,
    transformer_port: int,
) -> None:
    """Serve the churn model over KServe V2 (REST and gRPC) until interrupted."""
    settings = get_settings()
    uri = model_uri or f"models:/{settings.registered_model}@production"
    command = server_command(uri, http_port, grpc_port, workers, host, model_name, settings.mlflow_tracking_uri)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    click.echo(f"serving {uri} as {model_name!r} on http://{host}:{http_port} (gRPC {host}:{grpc_port})")
    if not by_customer:
        os.execve(sys.executable, command, env)
        return
    if transformer_port in (http_port, grpc_port):
        raise click.BadParameter("must differ from the predictor's ports", param_hint="--transformer-port")
    local = loopback_if_unspecified(host)
    predictor = f"[{local}]:{http_port}" if ":" in local else f"{local}:{http_port}"
    click.echo(
        f"by customer id on http://{host}:{transformer_port}/v2/models/{model_name}/infer "
        f"(transformer -> predictor {predictor})"
    )
    code = run_together([command, transformer_command(transformer_port, host, model_name, predictor)], env)
    raise SystemExit(code)
