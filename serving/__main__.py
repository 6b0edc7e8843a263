"""Entry point of the churn model server (``python -m serving``), shaped like KServe's sklearnserver.

Arguments are kserve's model-server arguments (``--http_port``, ``--grpc_port``, ``--workers``,
``--model_name``, ...) plus:

- ``--model_uri``: ``models:/<name>@<alias>``, ``models:/<name>/<version>`` or a directory holding an
  MLflow model (default ``/mnt/models``, where KServe's storage initializer puts it);
- ``--tracking_uri``: the MLflow server for ``models:/`` (default: ``CHURNOPS_MLFLOW_TRACKING_URI``);
- ``--model_version``: the version a local directory holds (reported in metadata and responses);
- ``--host``: the interface to bind (default 127.0.0.1; ``0.0.0.0`` inside a container);
- ``--max_batch_rows``: the largest batch accepted (larger ones get 413);
- ``--no_micro_batching``: score every request alone (by default the requests waiting at the same
  moment share one booster call, see :mod:`serving.batching`).

Callers: every route but the probes needs a bearer token of an account in ``predictor_callers``
(settings) for ``predictor_audience`` (:mod:`churnops.platform.auth`).

One OpenMP thread per process: more threads collapse under concurrent load on small machines.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

# pylint: disable=wrong-import-position  # the thread limit above must precede numpy/xgboost imports
import argparse  # noqa: E402

from kserve import model_server  # noqa: E402

from churnops.platform.auth import Authenticator  # noqa: E402
from churnops.platform.logs import setup_logging  # noqa: E402
from churnops.platform.mlflow_login import use_mlflow_credentials  # noqa: E402
from churnops.platform.settings import settings_or_exit  # noqa: E402
from serving.predictor import ChurnPredictor  # noqa: E402
from serving.protocol import DEFAULT_MAX_ROWS  # noqa: E402
from serving.server import ChurnModelServer  # noqa: E402

DEFAULT_MODEL_URI = "/mnt/models"


def parser() -> argparse.ArgumentParser:
    """kserve's model-server arguments plus the churn predictor's."""
    parsed = argparse.ArgumentParser(parents=[model_server.parser], description=__doc__.splitlines()[0])
    parsed.add_argument("--model_uri", default=DEFAULT_MODEL_URI, help="models:/<name>@<alias> or a model directory")
    parsed.add_argument("--tracking_uri", default=None, help="MLflow tracking/registry server for models:/ URIs")
    parsed.add_argument("--model_version", default=None, help="version label of a model loaded from a directory")
    parsed.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parsed.add_argument("--max_batch_rows", type=int, default=DEFAULT_MAX_ROWS, help="largest batch accepted")
    parsed.add_argument(
        "--no_micro_batching",
        action="store_true",
        help="score every request alone (by default concurrent requests share one booster call)",
    )
    return parsed


def main(argv: list[str] | None = None) -> None:
    """Load the model and serve it until SIGTERM/SIGINT."""
    args, _ = parser().parse_known_args(argv)
    settings = settings_or_exit()
    setup_logging(settings)
    use_mlflow_credentials(settings)  # models:/ URIs are read from the registry as the settings' MLflow user
    model = ChurnPredictor(
        args.model_name,
        args.model_uri,
        tracking_uri=args.tracking_uri or settings.mlflow_tracking_uri,
        model_version=args.model_version,
        max_rows=args.max_batch_rows,
        micro_batching=not args.no_micro_batching,
    )
    model.load()
    auth = Authenticator.for_service(settings, settings.predictor_audience, settings.predictor_callers)
    ChurnModelServer(
        auth,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_threads=args.max_threads,
        enable_grpc=args.enable_grpc,
        enable_docs_url=False,
        enable_latency_logging=False,
    ).start([model])


if __name__ == "__main__":
    main()
