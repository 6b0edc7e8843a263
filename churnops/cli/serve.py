"""``churnops serve``: run the churn model server (``python -m serving``) in the foreground.

The library never imports the model server; this command replaces its own process with the
server's entry point, mapping its options onto the server's arguments.
"""

from __future__ import annotations

import os
import sys

import click

from churnops.platform.settings import get_settings


def server_command(model_uri: str, http_port: int, grpc_port: int, workers: int, host: str, model_name: str,
                   tracking_uri: str | None) -> list[str]:
    """The ``python -m serving`` command line for these options."""
    command = [sys.executable, "-m", "serving", "--model_uri", model_uri, "--http_port", str(http_port),
               "--grpc_port", str(grpc_port), "--workers", str(workers), "--host", host, "--model_name", model_name]
    if tracking_uri:
        command += ["--tracking_uri", tracking_uri]
    return command


@click.command("serve")
@click.option("--model-uri", default=None, metavar="URI",
              help="models:/<name>@<alias>, models:/<name>/<version> or a model directory. "
                   "Default: models:/<registered model>@production.")
@click.option("--http-port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=8081, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="REST worker processes.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--model-name", default="churn", show_default=True, help="Name in the /v2/models/<name> paths.")
def serve_command(model_uri: str | None, http_port: int, grpc_port: int, workers: int, host: str,
                  model_name: str) -> None:
    """Serve the churn model over KServe V2 (REST and gRPC) until interrupted."""
    settings = get_settings()
    uri = model_uri or f"models:/{settings.registered_model}@production"
    command = server_command(uri, http_port, grpc_port, workers, host, model_name, settings.mlflow_tracking_uri)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    click.echo(f"serving {uri} as {model_name!r} on http://{host}:{http_port} (gRPC {host}:{grpc_port})")
    os.execve(sys.executable, command, env)
