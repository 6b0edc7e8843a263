"""Serving benchmark: this model server against its peers, on one registered churn model, on 127.0.0.1.

Servers (each started here, each given the same model directory, each bound to 127.0.0.1):

- ``churnops``: ``python -m serving`` (strict V2 route, compiled fast path, micro-batching), 2 REST workers;
  ``churnops-unbatched`` is the same server with ``--no_micro_batching`` (not a peer: it shows what
  micro-batching brings);
- ``kserve-pipeline``: a plain ``kserve.Model`` that calls the Pipeline's ``predict_proba`` per
  request, 2 REST workers;
- ``mlserver``: MLServer 1.7.1 with its MLflow runtime, 2 parallel workers, without and with
  adaptive batching (``max_batch_size`` 32, ``max_batch_time`` 5 ms). MLServer lives in a separate
  virtual environment (``--peer-venv``, created on first use with the model's own library versions
  and ``uvloop<0.22``, which MLServer 1.7.1 needs); it is never part of requirements.lock.

Load: a separate process (``load`` mode of this script, on uvloop) keeps ``concurrency`` HTTP/1.1 keep-alive
connections busy with the same V2 JSON request for a fixed time after a warm-up, and reports
rows/s, p50 and p99. Ceiling: single-thread ``Booster.inplace_predict`` on rows already transformed.

The model: ``--model-uri`` (``models:/...`` or a directory holding an XGBoost churn model); by
default the script builds the demo's data (generated, ingested and trained on a temporary embedded
stack) and takes that training's XGBoost model, whichever model its gate registers.
Every process competes for the same cores: the figures are for this machine at this moment.
The churnops servers authenticate their callers: the load generator sends a bearer token minted by
the local signer of the run's state folder (the servers verify it once and then find it in their
cache), and the transformer's ids-per-minute limit is lifted for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# pylint: disable=wrong-import-position  # the thread limit above must precede numpy/xgboost imports
import numpy as np  # noqa: E402
import requests  # noqa: E402
import uvloop  # noqa: E402
from kserve import Model  # noqa: E402
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse  # noqa: E402

from churnops.platform.auth import Authenticator, mint_local_token  # noqa: E402
from churnops.platform.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder is on sys.path and its name would shadow the `serving` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
PEER_VENV = ROOT / ".bench" / "serving-peers"
DEMO_MODEL = ROOT / ".bench" / "demo-xgboost-model"  # the demo's XGBoost model, built once and reused
MODEL = "churn"
BATCHES = (1, 64)
CONCURRENCY = (8, 32)
PEER_PINS = ("scikit-learn", "xgboost-cpu", "skops", "mlflow", "pandas", "numpy", "scipy", "cloudpickle")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------------ model


def demo_model(state: Path) -> str:
    """Generate, ingest and train the demo's model on a temporary embedded stack; return its directory."""
    # pylint: disable=import-outside-toplevel  # only this path needs the local stack
    from datetime import datetime, timedelta, timezone

    import mlflow

    from churnops.data.ingest import ingest_hour
    from churnops.local import datagen
    from churnops.local.localstack import LocalStack
    from churnops.platform.storage import ensure_bucket, storage_client
    from churnops.training.estimators import CHALLENGER
    from churnops.training.train import train_from_commit

    settings = Settings(state_dir=state, gcs_port=free_port(), mlflow_port=free_port(), raw_bucket="bench-raw")
    stack = LocalStack(settings)
    stack.up()
    try:
        first = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=51)
        generated = datagen.generate(hours=48, customers=2000, start=first, seed=0)
        client = storage_client(settings)
        ensure_bucket(client, settings.raw_bucket)
        datagen.upload(client, settings.raw_bucket, generated.objects)
        for offset in range(48):
            ingest_hour(settings, first + timedelta(hours=offset))
        result = train_from_commit(settings, None, seed=42)
        # The XGBoost model of this training, whichever model the gate registered: the figures are for it.
        client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
        logged = client.search_logged_models(
            experiment_ids=[result.experiment_id], filter_string=f"source_run_id = '{result.run_ids[CHALLENGER]}'"
        )
        if len(logged) != 1:
            raise SystemExit(
                f"expected one logged XGBoost model in run {result.run_ids[CHALLENGER]}, got {len(logged)}"
            )
        uri = logged[0].model_uri
        print(
            f"model: {uri}, the {CHALLENGER} model of the demo's training (data commit {result.data_commit[:12]}; "
            f"the gate registered {result.gate.winner or 'nothing'} as version {result.model_version})",
            flush=True,
        )
        DEMO_MODEL.parent.mkdir(parents=True, exist_ok=True)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(state / "model"), tracking_uri=settings.mlflow_tracking_uri
        )
        shutil.copytree(local, DEMO_MODEL, dirs_exist_ok=True)
        return str(DEMO_MODEL)
    finally:
        stack.down()


def local_model(uri: str, state: Path) -> str:
    """A local directory holding the model ``uri`` names."""
    if not uri.startswith("models:/"):
        return uri
    import mlflow  # pylint: disable=import-outside-toplevel

    return mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(state / "model"))


# ------------------------------------------------------------------------------------------ requests


def sample_rows(model_dir: str, rows: int) -> tuple[Any, Any, set[str]]:
    """(Pipeline, feature rows, numeric column names): synthetic rows over the model's columns and categories."""
    import mlflow  # pylint: disable=import-outside-toplevel
    import pandas as pd  # pylint: disable=import-outside-toplevel

    from churnops.model.fastpath import model_columns  # pylint: disable=import-outside-toplevel

    pipeline = mlflow.sklearn.load_model(model_dir)
    numeric, categorical = model_columns(pipeline)
    rng = np.random.default_rng(0)
    onehot = pipeline.named_steps["transform"].named_steps["columns"].named_transformers_["categorical"]
    categories = onehot.named_steps["onehot"].categories_
    frame = pd.DataFrame({name: rng.gamma(2.0, 3.0, rows) for name in numeric})
    for name, values in zip(categorical, categories):
        frame[name] = rng.choice([str(v) for v in values], rows)
    return pipeline, frame[[*numeric, *categorical]], set(numeric)


def v2_body(frame: Any, numeric: set[str]) -> bytes:
    """The same V2 JSON request for every server (content types that MLServer's codecs need are parameters)."""
    inputs = []
    for name in frame.columns:
        tensor: dict[str, Any] = {
            "name": name,
            "shape": [len(frame)],
            "datatype": "FP64" if name in numeric else "BYTES",
            "data": frame[name].tolist(),
        }
        if name not in numeric:
            tensor["parameters"] = {"content_type": "str"}
        inputs.append(tensor)
    return json.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs}).encode()


# ------------------------------------------------------------------------------------------ load generator


async def _client(
    host: str, port: int, request: bytes, until: float, warm: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if started >= warm:
                if status == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors.append(status)
    finally:
        writer.close()


def token(state: Path, audience: str) -> str:
    """A bearer token of an allowed caller, signed by the local signer under ``state``."""
    return mint_local_token(Settings(state_dir=state), "churnops-deployer", audience)


def run_load(
    port: int, body: bytes, concurrency: int, seconds: float, warmup: float, bearer: str = ""
) -> dict[str, Any]:
    """Keep ``concurrency`` connections busy for warmup + seconds; statistics of the measured part."""
    auth = f"Authorization: Bearer {bearer}\r\n" if bearer else ""
    request = (
        f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors: list[int] = []

    async def clients() -> None:
        now = time.perf_counter()
        await asyncio.gather(
            *(
                _client("127.0.0.1", port, request, now + warmup + seconds, now + warmup, latencies, errors)
                for _ in range(concurrency)
            )
        )

    uvloop.run(clients())  # the lighter event loop leaves more of the shared cores to the server under test
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "errors": len(errors),
        "seconds": seconds,
        "p50_ms": 1000 * statistics.median(ordered) if ordered else float("nan"),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan"),
    }


def measure(
    port: int,
    body: bytes,
    rows: int,
    concurrency: int,
    seconds: float,
    warmup: float,  # pylint: disable=too-many-arguments,too-many-positional-arguments
    bearer: str = "",
) -> dict[str, Any]:
    """Run the load generator in its own process and return its figures (with rows/s)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        handle.write(body)
        handle.flush()
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "load",
                "--port",
                str(port),
                "--body",
                handle.name,
                "--concurrency",
                str(concurrency),
                "--seconds",
                str(seconds),
                "--warmup",
                str(warmup),
                "--token",
                bearer,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + warmup + 120,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    result["rows_per_s"] = result["requests"] * rows / seconds
    return result


# ------------------------------------------------------------------------------------------ servers


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 600) -> None:
    """Wait for the V2 model-ready endpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/v2/models/{MODEL}/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("server not ready in time")


def start(kind: str, model_dir: str, peer_venv: Path, work: Path) -> tuple[subprocess.Popen, int]:
    """Start one server; return (process, HTTP port)."""
    http, grpc = free_port(), free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CHURNOPS_LOG_LEVEL": "WARNING",
        "CHURNOPS_STATE_DIR": str(work / "state"),
    }
    if kind in ("churnops", "churnops-unbatched"):
        command = [
            sys.executable,
            "-m",
            "serving",
            "--model_uri",
            model_dir,
            "--model_name",
            MODEL,
            "--http_port",
            str(http),
            "--grpc_port",
            str(grpc),
            "--workers",
            "2",
            "--model_version",
            "bench",
            *(["--no_micro_batching"] if kind == "churnops-unbatched" else []),
        ]
    elif kind == "kserve-pipeline":
        command = [
            sys.executable,
            __file__,
            "pipeline-peer",
            "--model",
            model_dir,
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
        ]
    else:
        folder = work / kind
        (folder / MODEL).mkdir(parents=True, exist_ok=True)
        settings = {
            "host": "127.0.0.1",
            "http_port": http,
            "grpc_port": grpc,
            "metrics_port": free_port(),
            "parallel_workers": 2,
        }
        model: dict[str, Any] = {
            "name": MODEL,
            "implementation": "mlserver_mlflow.MLflowRuntime",
            "parameters": {"uri": model_dir},
        }
        if kind == "mlserver-batching":
            model.update(max_batch_size=32, max_batch_time=0.005)
        (folder / "settings.json").write_text(json.dumps(settings))
        (folder / MODEL / "model-settings.json").write_text(json.dumps(model))
        command = [str(peer_venv / "bin" / "mlserver"), "start", str(folder)]
    log = open(work / f"{kind}.log", "wb")  # pylint: disable=consider-using-with  # lives as long as the server
    # MLServer keeps its multiprocess metrics in ./.metrics: run it from the temporary folder
    cwd = work if kind.startswith("mlserver") else ROOT
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
    wait_ready(http, process)
    return process, http


def stop(process: subprocess.Popen) -> None:
    """SIGTERM and wait."""
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ensure_peer_venv(path: Path) -> None:
    """MLServer and its MLflow runtime in a virtual environment of their own, with the model's library versions."""
    if (path / "bin" / "mlserver").exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pins = [f"{name}=={metadata.version(name)}" for name in PEER_PINS]
    subprocess.run(
        [
            str(path / "bin" / "pip"),
            "install",
            "--quiet",
            "mlserver==1.7.1",
            "mlserver-mlflow==1.7.1",
            "uvloop<0.22",
            *pins,
        ],
        check=True,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )


class PipelinePerRequest(Model):
    """The second peer: a plain kserve.Model that decodes to a DataFrame and calls predict_proba per request."""

    def __init__(self, model_dir: str) -> None:
        super().__init__(MODEL)
        import mlflow  # pylint: disable=import-outside-toplevel

        self.pipeline = mlflow.sklearn.load_model(model_dir)
        self.ready = True

    async def predict(self, payload: InferRequest, headers: Any = None, response_headers: Any = None) -> Any:
        import pandas as pd  # pylint: disable=import-outside-toplevel

        frame = pd.DataFrame(
            {t.name: [v.decode() if isinstance(v, bytes) else v for v in t.as_numpy()] for t in payload.inputs}
        )
        probability = self.pipeline.predict_proba(frame)[:, 1]
        output = InferOutput("churn_probability", [len(probability)], "FP64")
        output.set_data_from_numpy(probability.astype(np.float64), binary_data=False)
        return InferResponse(payload.id or "", MODEL, [output])


def pipeline_peer(model_dir: str, http_port: int, grpc_port: int) -> None:
    """Serve :class:`PipelinePerRequest` with 2 REST workers on 127.0.0.1 (kserve's own routes)."""
    # pylint resolves `serving` to this file, not to the package (the script drops its folder from sys.path)
    from serving.server import ChurnModelServer  # pylint: disable=import-error,no-name-in-module,import-outside-toplevel

    settings = Settings()  # the peer authenticates like the churnops server, so both pay for it
    auth = Authenticator.for_service(settings, settings.predictor_audience, settings.predictor_callers)
    ChurnModelServer(
        auth, host="127.0.0.1", http_port=http_port, grpc_port=grpc_port, workers=2, enable_latency_logging=False
    ).start([PipelinePerRequest(model_dir)])


# ------------------------------------------------------------------------------------------ ceiling


def ceiling(pipeline: Any, frame: Any, seconds: float = 3.0) -> dict[int, float]:
    """Rows/s of single-thread inplace_predict on already transformed rows, per batch size."""
    booster = pipeline.named_steps["model"].get_booster()
    booster.set_param({"nthread": 1})
    matrix = pipeline.named_steps["transform"].transform(frame)
    result = {}
    for batch in BATCHES:
        rows, calls, started = matrix[:batch], 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            booster.inplace_predict(rows)
            calls += 1
        result[batch] = calls * batch / (time.perf_counter() - started)
    return result


def report(results: dict[tuple[str, int, int], dict[str, Any]], top: dict[int, float]) -> None:
    """The table and the ratios the targets are stated in."""
    print(
        f"\n{'server':20} {'batch':>5} {'conc':>4} {'rows/s':>10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6}"
    )
    for (kind, batch, conc), r in results.items():
        print(
            f"{kind:20} {batch:>5} {conc:>4} {r['rows_per_s']:>10.0f} {r['requests'] / r['seconds']:>8.0f} "
            f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>6}"
        )
    for batch in BATCHES:
        print(f"{'ceiling (inplace)':20} {batch:>5} {'-':>4} {top[batch]:>10.0f}")
    print()
    for batch in BATCHES:
        ours = max(r["rows_per_s"] for (k, b, _), r in results.items() if k == "churnops" and b == batch)
        peers = {
            k: max(r["rows_per_s"] for (k2, b, _), r in results.items() if k2 == k and b == batch)
            for k in {k for (k, b, _) in results if not k.startswith("churnops") and b == batch}
        }
        if peers:
            best = max(peers, key=peers.__getitem__)
            print(
                f"batch {batch:>2}: churnops {ours:.0f} rows/s = {ours / peers[best]:.1f}x the best peer "
                f"({best}, {peers[best]:.0f} rows/s; target >= 5x)"
            )
        print(
            f"batch {batch:>2}: churnops = {ours / top[batch]:.2f} of the ceiling ({top[batch]:.0f} rows/s"
            f"{'; target >= 0.3' if batch == 64 else ''})"
        )
    for batch in BATCHES:
        for conc in CONCURRENCY:
            if ("churnops", batch, conc) in results and ("churnops-unbatched", batch, conc) in results:
                on, off = results[("churnops", batch, conc)], results[("churnops-unbatched", batch, conc)]
                print(
                    f"micro-batching, batch {batch:>2}, concurrency {conc:>2}: {on['rows_per_s']:.0f} rows/s "
                    f"(p99 {on['p99_ms']:.1f} ms) with, {off['rows_per_s']:.0f} rows/s (p99 {off['p99_ms']:.1f} ms) "
                    f"without: {on['rows_per_s'] / off['rows_per_s']:.2f}x"
                )
    if ("churnops", 1, 8) in results:
        print(f"batch  1, concurrency 8: churnops p99 {results[('churnops', 1, 8)]['p99_ms']:.2f} ms (target <= 15 ms)")


# ------------------------------------------------------------------------------------------ by customer id


def publish_synthetic_snapshot(
    model_dir: str, state: Path, key: str, customers: int = 2000
) -> tuple[Any, Any, list[str]]:
    """A snapshot of ``customers`` synthetic feature rows (:func:`sample_rows`) in an embedded lake under ``state``.

    Returns (feature rows, numeric column names, raw customer ids in row order).
    """
    # pylint: disable=import-outside-toplevel  # only the by-customer mode needs the lake and the tokenizer
    import pandas as pd

    from churnops.data.privacy import Tokenizer
    from churnops.data.versioning.embedded import EmbeddedRepository
    from churnops.model.online import OnlineSnapshot, publish_snapshot
    from churnops.model.spec import FeatureSpec
    from churnops.training.features import FEATURE_SPEC

    _, frame, numeric = sample_rows(model_dir, customers)
    ids = [f"CUST-{i:07d}" for i in range(1, customers + 1)]
    tokenizer = Tokenizer(key.encode())
    features = frame.set_axis(pd.Index([tokenizer.token(i) for i in ids], name="customer_token"))
    repo = EmbeddedRepository(state / "lake")
    repo.ensure()
    spec = FeatureSpec(
        tuple(c for c in frame.columns if c in numeric),
        tuple(c for c in frame.columns if c not in numeric),
        FEATURE_SPEC.windows_h,
    )
    inactive = pd.Series([], dtype=object, name="status", index=pd.Index([], name="customer_token"))
    publish_snapshot(repo, OnlineSnapshot(features, inactive, repo.head("main"), pd.Timestamp.now(tz="UTC"), spec, ""))
    return frame, numeric, ids


def by_customer(model_uri: str | None, seconds: float, warmup: float) -> None:
    """By-id requests through transformer + predictor, next to the same rows sent to the predictor alone.

    The snapshot is synthetic (:func:`publish_synthetic_snapshot`); every by-id request asks for
    existing customers (64 distinct ones at batch 64). The predictor runs as in ``compare``
    (2 REST workers), the transformer as one process.
    """
    key = "benchmark-tokenization-key-0123456789"
    results: dict[tuple[str, int, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-by-customer-") as tmp:
        work = Path(tmp)
        model_dir = (
            local_model(model_uri, work)
            if model_uri
            else (str(DEMO_MODEL) if (DEMO_MODEL / "MLmodel").exists() else demo_model(work / "stack"))
        )
        frame, numeric, ids = publish_synthetic_snapshot(model_dir, work / "state", key)
        predictor, port = start("churnops", model_dir, PEER_VENV, work)
        transformer_port = free_port()
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "CHURNOPS_LOG_LEVEL": "WARNING",
            "CHURNOPS_STATE_DIR": str(work / "state"),
            "CHURNOPS_TOKENIZATION_KEY": key,
            "CHURNOPS_TRANSFORMER_MAX_IDS_PER_MINUTE": str(10**12),
        }
        settings = Settings(state_dir=work / "state")
        to_predictor = token(work / "state", settings.predictor_audience)
        to_transformer = token(work / "state", settings.transformer_audience)
        with open(work / "transformer.log", "wb") as log:
            transformer = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped in finally
                [
                    sys.executable,
                    "-m",
                    "serving.transformer",
                    "--model_name",
                    MODEL,
                    "--http_port",
                    str(transformer_port),
                    "--predictor_host",
                    f"127.0.0.1:{port}",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_ready(transformer_port, transformer)
                for batch in BATCHES:
                    rows = v2_body(frame.head(batch), numeric)
                    by_id = json.dumps(
                        {
                            "inputs": [
                                {"name": "customer_id", "datatype": "BYTES", "shape": [batch], "data": ids[:batch]}
                            ]
                        }
                    ).encode()
                    for conc in CONCURRENCY:
                        results[("predictor (features)", batch, conc)] = measure(
                            port, rows, batch, conc, seconds, warmup, to_predictor
                        )
                        results[("by id (transformer)", batch, conc)] = measure(
                            transformer_port, by_id, batch, conc, seconds, warmup, to_transformer
                        )
            finally:
                stop(transformer)
                stop(predictor)
    by_customer_report(results)


def by_customer_report(results: dict[tuple[str, int, int], dict[str, Any]]) -> None:
    """The by-id figures next to the predictor alone's."""
    print(f"\n{'path':22} {'batch':>5} {'conc':>4} {'rows/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for (path, batch, conc), r in results.items():
        print(
            f"{path:22} {batch:>5} {conc:>4} {r['rows_per_s']:>10.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['errors']:>6}"
        )
    for batch in BATCHES:
        for conc in CONCURRENCY:
            alone = results[("predictor (features)", batch, conc)]
            via = results[("by id (transformer)", batch, conc)]
            print(
                f"batch {batch:>2}, concurrency {conc:>2}: by id {via['rows_per_s']:.0f} rows/s = "
                f"{via['rows_per_s'] / alone['rows_per_s']:.2f} of the predictor alone; "
                f"p99 {via['p99_ms']:.2f} ms vs {alone['p99_ms']:.2f} ms"
            )


def main() -> None:
    """Benchmark modes: the whole comparison (default), the load generator, the Pipeline peer, by customer id."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode", nargs="?", default="compare", choices=["compare", "load", "pipeline-peer", "by-customer"]
    )
    parser.add_argument("--model-uri", default=None)
    parser.add_argument("--peer-venv", type=Path, default=PEER_VENV)
    parser.add_argument("--servers", default="churnops,churnops-unbatched,kserve-pipeline,mlserver,mlserver-batching")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--port", type=int)
    parser.add_argument("--body")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--model")
    parser.add_argument("--http-port", type=int)
    parser.add_argument("--grpc-port", type=int)
    parser.add_argument("--token", default="")
    args = parser.parse_args()
    if args.mode == "load":
        print(
            json.dumps(
                run_load(
                    args.port, Path(args.body).read_bytes(), args.concurrency, args.seconds, args.warmup, args.token
                )
            )
        )
        return
    if args.mode == "by-customer":
        by_customer(args.model_uri, args.seconds, args.warmup)
        return
    if args.mode == "pipeline-peer":
        pipeline_peer(args.model, args.http_port, args.grpc_port)
        return
    kinds = args.servers.split(",")
    if any(k.startswith("mlserver") for k in kinds):
        ensure_peer_venv(args.peer_venv)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        if args.model_uri:
            model_dir = local_model(args.model_uri, work)
        elif (DEMO_MODEL / "MLmodel").exists():
            model_dir = str(DEMO_MODEL)
        else:
            model_dir = demo_model(work / "stack")
        pipeline, frame, numeric = sample_rows(model_dir, 64)
        if not hasattr(pipeline.named_steps["model"], "get_booster"):
            raise SystemExit(
                f"{model_dir} holds a {type(pipeline.named_steps['model']).__name__}: the benchmark "
                "and its inplace_predict ceiling are for the XGBoost churn model"
            )
        bodies = {batch: v2_body(frame.head(batch), numeric) for batch in BATCHES}
        top = ceiling(pipeline, frame)
        results: dict[tuple[str, int, int], dict[str, Any]] = {}
        bearer = token(work / "state", Settings().predictor_audience)  # the churnops servers' state (see start)
        for kind in kinds:
            process, port = start(kind, model_dir, args.peer_venv, work)
            try:
                for batch in BATCHES:
                    for conc in CONCURRENCY:
                        results[(kind, batch, conc)] = measure(
                            port, bodies[batch], batch, conc, args.seconds, args.warmup, bearer
                        )
                        print(kind, batch, conc, json.dumps(results[(kind, batch, conc)]), flush=True)
            finally:
                stop(process)
        report(results, top)


if __name__ == "__main__":
    main()
