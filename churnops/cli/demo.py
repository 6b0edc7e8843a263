"""``churnops demo``: the whole system end to end on the embedded local stack, through its pipelines and its server.

The steps are the ones the system runs on GKE, with the same code:

1. start the local stack (fake-gcs-server, MLflow on sqlite) and an alert receiver standing in for
   the chat webhook;
2. generate hours of activity with anomalies and replay it: upload each hour's arrivals to the raw
   bucket, and run the **ingest pipeline** (``kfp.local``) every few hours, as the hourly
   recurring run would with a lookback covering them;
3. run the **training pipeline**, then promote the registered version through ``staging`` to
   ``production`` with ``churnops model promote``, as a person would;
4. publish the online feature snapshot, start the **V2 model server** on the production model and
   the **by-customer transformer** in front of it, and send real requests: by feature row (built
   from customers' snapshot rows) to the server, and by raw customer id to the transformer;
5. run the **scoring pipeline** (predictions for every active customer into the lake) and a
   **drift check** against the production model's training reference.

Every figure in the summary is read back from where it lives: the lake's commits, the registry,
the server's responses, the alerts the receiver got. Each demo starts from a clean slate under
``<state_dir>/demo``; the stack and the server are stopped at the end unless ``keep`` is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import pandas as pd
import psutil
import requests

from churnops.cli.serve import server_command, transformer_command
from churnops.data.privacy import lake_tokenizer
from churnops.data.versioning import open_repository
from churnops.errors import ServiceUnavailable
from churnops.local import datagen
from churnops.local.localstack import LocalStack
from churnops.model import registry
from churnops.model.online import OnlineSnapshot
from churnops.model.predict import DECISION_RULE_KEY, decision_rule_of
from churnops.platform.auth import TokenSource
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket, storage_client
from churnops.training.monitoring import check_drift
from churnops.training.online import refresh_online_features
from pipelines.local import PipelineFailed, run_local

LATE_HOURS = 2  # the generator's late files arrive up to two hours after their hour
BATCH_HOURS = 6  # hours of arrivals per ingest pipeline run
MODEL_NAME = "churn"  # the name in the server's /v2/models/<name> paths
SHOWN_TEST_METRICS: tuple[str, ...] = (
    "test_roc_auc",
    "test_pr_auc",
    "test_brier",
    "test_log_loss",
    "test_calibration_error",
    "test_precision_at_k",
    "test_lift_at_k",
)
EXAMPLE_CUSTOMERS = 5
UNKNOWN_CUSTOMER = "CUST-99999999"  # longer than any id the generator produces (CUST-NNNNNNN)
PROCESSES = ("model-server", "transformer")  # what a --keep demo leaves running (pid files under run/)


@dataclass
class DemoSummary:  # pylint: disable=too-many-instance-attributes  # one field per summary section
    """What the demo did, each figure read back from the lake, the registry, the server or the alert receiver."""

    ingest_runs: int = 0
    commits: list[dict[str, Any]] = field(default_factory=list)  # main's ingest commits, oldest first
    alerts: Counter[str] = field(default_factory=Counter)
    training_runs: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    alias_history: list[str] = field(default_factory=list)
    production_version: str | None = None
    snapshot: OnlineSnapshot | None = None
    predictions: list[dict[str, Any]] = field(default_factory=list)  # from the server's responses
    by_customer: list[dict[str, Any]] = field(default_factory=list)  # from the transformer's response
    by_customer_parameters: dict[str, Any] = field(default_factory=dict)
    predictions_table: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)
    gate_refused: bool = False
    decision_rule: str = ""  # the production version's rule, as recorded with it
    server_url: str | None = None
    transformer_url: str | None = None

    def totals(self) -> Counter[str]:
        """Row accounting summed over the ingest commits."""
        totals: Counter[str] = Counter()
        for commit in self.commits:
            totals.update(commit["accounting"])
        return totals


def demo_settings(settings: Settings) -> Settings:
    """The demo's own state folder (data, lake, MLflow) beside the user's."""
    return settings.model_copy(update={"state_dir": settings.state_dir / "demo"})


class _AlertHandler(BaseHTTPRequestHandler):
    """Receives the Slack-style alert posts of every pipeline task and counts them by kind."""

    server: _AlertServer

    def do_POST(self) -> None:  # pylint: disable=invalid-name  # the http.server hook name
        """One alert: ``text`` starts with ``churnops alert: <kind>:``."""
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        kind = str(body.get("text", "")).removeprefix("churnops alert: ").split(":", 1)[0]
        self.server.received[kind or "unknown"] += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        """Quiet: the demo prints the counts."""


class _AlertServer(ThreadingHTTPServer):
    """The webhook on 127.0.0.1 (a free port); ``received`` counts its alerts by kind."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _AlertHandler)
        self.received: Counter[str] = Counter()


@contextmanager
def alert_receiver() -> Iterator[tuple[str, Counter[str]]]:
    """A webhook on 127.0.0.1 for the demo's alerts; yields its URL and the live counts."""
    server = _AlertServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", server.received
    finally:
        server.shutdown()
        server.server_close()


def pipeline_environment(settings: Settings, webhook: str) -> dict[str, str]:
    """The ``CHURNOPS_*`` variables that point pipeline tasks (subprocesses) at the demo's stack."""
    return {
        "CHURNOPS_STATE_DIR": str(settings.state_dir.resolve()),
        "CHURNOPS_GCS_PORT": str(settings.gcs_port),
        "CHURNOPS_MLFLOW_PORT": str(settings.mlflow_port),
        "CHURNOPS_RAW_BUCKET": settings.raw_bucket,
        "CHURNOPS_ALERT_WEBHOOK_URL": webhook,
        # the tasks' logs go to files the demo names; quieter than the default unless a level was set
        "CHURNOPS_LOG_LEVEL": settings.log_level if "log_level" in settings.model_fields_set else "WARNING",
    }


def run_pipeline(name: str, params: dict[str, Any], root: Path) -> None:
    """Run pipeline ``name`` with kfp.local, its (verbose) task logs into ``<root>/<name>.log``."""
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / f"{name}.log"
    with log_path.open("a", encoding="utf-8") as log, redirect_stdout(log), redirect_stderr(log):
        try:
            run_local(name, params, root)
        except PipelineFailed as error:
            raise PipelineFailed(f"{error} (task logs: {log_path})") from error


def _hour(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H")


def ingest_commits(settings: Settings) -> list[dict[str, Any]]:
    """The ingest commits on main (first parents), oldest first, with their hour and accounting."""
    repo = open_repository(settings)
    commits = []
    commit: str | None = repo.head("main")
    while commit is not None:
        info = repo.commit_info(commit)
        if "accounting" in info.metadata:
            commits.append(
                {
                    "id": info.id,
                    "hour": info.metadata.get("hour", ""),
                    "accounting": json.loads(info.metadata["accounting"]),
                }
            )
        commit = info.parents[0] if info.parents else None
    return commits[::-1]


def replay_and_ingest(
    settings: Settings, hours: int, customers: int, anomaly_rate: float, seed: int, root: Path, summary: DemoSummary
) -> list[str]:
    """Generate activity, upload it hour by hour, run the ingest pipeline every BATCH_HOURS.

    Returns the generated customers' raw ids: they stay in memory, to ask the transformer by id as
    a calling service would; the demo prints tokens only.
    """
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=hours + LATE_HOURS + 1)
    generated = datagen.generate(hours=hours, customers=customers, start=start, seed=seed, anomaly_rate=anomaly_rate)
    click.echo(
        f"generated {len(generated.objects)} raw objects for {hours} h x {customers} customers "
        f"({len(generated.anomalies)} injected anomalies)"
    )
    client = storage_client(settings)
    ensure_bucket(client, settings.raw_bucket)
    by_arrival = datagen.objects_by_arrival(generated.objects)
    total = hours + LATE_HOURS
    for offset in range(total):
        hour = start + timedelta(hours=offset)
        datagen.upload(client, settings.raw_bucket, by_arrival.get(hour, []))
        if (offset + 1) % BATCH_HOURS and offset != total - 1:
            continue
        run_pipeline("ingest", {"hour": _hour(hour), "lookback": BATCH_HOURS + LATE_HOURS}, root)
        summary.ingest_runs += 1
        summary.commits = ingest_commits(settings)
        acc = summary.totals()
        click.echo(
            f"  [{offset + 1:3}/{total} h] ingest pipeline up to {_hour(hour)}: {len(summary.commits):3} lake "
            f"commits, rows published {acc['rows_published']:7}, quarantined {acc['rows_quarantined']:5}"
        )
    return [str(raw) for raw in generated.customers["customer_id"]]


def _run_promote(settings: Settings, env: dict[str, str], to: str) -> None:
    """``churnops model promote --to <to>``, exactly as a person types it."""
    churnops = Path(sys.executable).with_name("churnops")
    command = [str(churnops)] if churnops.exists() else [sys.executable, "-m", "churnops.cli.main"]
    result = subprocess.run(
        [*command, "model", "promote", "--to", to],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise click.ClickException(f"churnops model promote --to {to} failed: {result.stderr.strip()[-400:]}")
    click.echo(f"  $ churnops model promote --to {to}: {result.stdout.strip()}")
    del settings


def train_and_promote(settings: Settings, env: dict[str, str], seed: int, root: Path, summary: DemoSummary) -> None:
    """Run the training pipeline; promote its candidate to production; read runs and registry back."""
    run_pipeline("training", {"seed": seed}, root)
    client = registry.client_for(settings)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    runs = (
        client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=20)
        if experiment
        else []
    )
    summary.training_runs = [
        {
            "model": r.data.tags["model_type"],
            "run_id": r.info.run_id,
            "calibration": r.data.tags.get("calibration", ""),
            **{k: round(v, 4) for k, v in r.data.metrics.items() if k in SHOWN_TEST_METRICS},
        }
        for r in runs
        if "model_type" in r.data.tags and r.data.tags.get("refit_on_all_cutoffs") != "true"
    ]
    summary.versions = registry.describe(client, settings.registered_model)
    if registry.alias_holder(client, settings.registered_model, "candidate") is None:
        summary.gate_refused = True
        gate = next((r.data.tags["gate_passed"] for r in runs if "gate_passed" in r.data.tags), "?")
        click.echo(
            f"  no candidate was registered (gate passed: {gate}): nothing to promote, serve or score; "
            "the training run in MLflow and the task logs say why"
        )
        return
    _run_promote(settings, env, "staging")
    _run_promote(settings, env, "production")
    summary.production_version = registry.alias_holder(client, settings.registered_model, "production")
    summary.versions = registry.describe(client, settings.registered_model)
    if summary.production_version is not None:
        # the rule as registered with the version (its tag), read through this stack's client
        version = registry.model_version(client, settings.registered_model, summary.production_version)
        recorded = version.tags.get(DECISION_RULE_KEY)
        summary.decision_rule = decision_rule_of(
            {DECISION_RULE_KEY: json.loads(recorded)} if recorded else None
        ).describe()
    summary.alias_history = [
        f"{e.at} {e.action:8} {e.alias:10} -> v{e.version} by {e.by}"
        for e in registry.all_events(client, settings.registered_model)
    ]


def _pidfile(settings: Settings, name: str) -> Path:
    return settings.state_dir / "run" / f"{name}.pid"


def stop_kept_server(settings: Settings) -> bool:
    """Stop the model server and transformer a ``--keep`` demo left running (found by their pid files).

    The pid files are looked for in the demo's folder under ``settings.state_dir`` and in
    ``settings.state_dir`` itself: the README's tour exports ``CHURNOPS_STATE_DIR=.local/demo``,
    which already names the demo's folder. True if one was stopped.
    """
    stopped = False
    for pidfile in (_pidfile(each, name) for each in (demo_settings(settings), settings) for name in PROCESSES):
        if not pidfile.exists():
            continue
        pid = int(pidfile.read_text(encoding="utf-8").strip() or 0)
        pidfile.unlink()
        try:
            process = psutil.Process(pid)
            if "serving" not in " ".join(process.cmdline()):
                continue  # the pid was reused by something else
            process.terminate()
            process.wait(timeout=30)
            stopped = True
        except (psutil.NoSuchProcess, psutil.TimeoutExpired):
            continue
    return stopped


def _free_port() -> int:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        return int(probe.server_address[1])


@contextmanager
def _serving_process(
    settings: Settings, env: dict[str, str], keep: bool, name: str, command: list[str], ready_url: str
) -> Iterator[None]:
    """Run ``command`` (a serving process) until the block ends, once ``ready_url`` answers; log to run/<name>.log."""
    log = (settings.state_dir / "run" / f"{name}.log").open("ab")
    process = subprocess.Popen(
        command,
        env={**os.environ, **env, "OMP_NUM_THREADS": "1"},  # pylint: disable=consider-using-with
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _pidfile(settings, name).write_text(str(process.pid), encoding="utf-8")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServiceUnavailable(f"the {name} exited with {process.returncode}: see {log.name}")
            try:
                if requests.get(ready_url, timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            raise ServiceUnavailable(f"the {name} did not become ready in 120 s: see {log.name}")
        yield
    finally:
        if not keep:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            _pidfile(settings, name).unlink(missing_ok=True)
        log.close()


@contextmanager
def model_server(settings: Settings, env: dict[str, str], keep: bool) -> Iterator[str]:
    """The V2 model server on the production model, on 127.0.0.1; yields its base URL."""
    http_port, grpc_port = _free_port(), _free_port()
    command = server_command(
        f"models:/{settings.registered_model}@production",
        http_port,
        grpc_port,
        1,
        "127.0.0.1",
        MODEL_NAME,
        settings.mlflow_tracking_uri,
    )
    url = f"http://127.0.0.1:{http_port}"
    with _serving_process(settings, env, keep, "model-server", command, f"{url}/v2/models/{MODEL_NAME}/ready"):
        yield url


@contextmanager
def transformer(settings: Settings, env: dict[str, str], keep: bool, predictor_url: str) -> Iterator[str]:
    """The by-customer transformer in front of the model server at ``predictor_url``; yields its base URL."""
    port = _free_port()
    command = transformer_command(port, "127.0.0.1", MODEL_NAME, predictor_url.removeprefix("http://"))
    url = f"http://127.0.0.1:{port}"
    with _serving_process(settings, env, keep, "transformer", command, f"{url}/v2/models/{MODEL_NAME}/ready"):
        yield url


def v2_request(rows: pd.DataFrame, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    """A V2 inference request with one named tensor per feature (nulls for missing values)."""
    inputs = [
        {
            "name": name,
            "datatype": "FP64",
            "shape": [len(rows)],
            "data": [None if pd.isna(v) else float(v) for v in rows[name]],
        }
        for name in numeric
    ]
    inputs += [
        {
            "name": name,
            "datatype": "BYTES",
            "shape": [len(rows)],
            "data": [None if pd.isna(v) else str(v) for v in rows[name]],
        }
        for name in categorical
    ]
    return {"inputs": inputs}


def ask_server(url: str, settings: Settings, snapshot: OnlineSnapshot, summary: DemoSummary) -> None:
    """Model metadata, then one request for a few customers' snapshot rows (as ``client_account``, a caller
    the server allows); keep what the server answered."""
    auth = TokenSource(settings, settings.predictor_audience, settings.client_account).header()
    metadata = requests.get(f"{url}/v2/models/{MODEL_NAME}", timeout=10, headers=auth).json()
    click.echo(
        f"  model metadata: {len(metadata['inputs'])} input tensors, outputs "
        f"{[o['name'] for o in metadata['outputs']]}, parameters {metadata.get('parameters', {})}"
    )
    rows = snapshot.features.head(EXAMPLE_CUSTOMERS)
    answer = requests.post(
        f"{url}/v2/models/{MODEL_NAME}/infer",
        json=v2_request(rows, list(snapshot.spec.numeric), list(snapshot.spec.categorical)),
        timeout=30,
        headers=auth,
    )
    answer.raise_for_status()
    body = answer.json()
    outputs = {o["name"]: o["data"] for o in body["outputs"]}
    for i, token in enumerate(rows.index):
        summary.predictions.append(
            {
                "customer_token": token,
                **{name: data[i] for name, data in outputs.items()},
                "model_version": body.get("parameters", {}).get("model_version", ""),
            }
        )


def ask_by_customer(
    url: str, settings: Settings, raw_ids: list[str], snapshot: OnlineSnapshot, summary: DemoSummary
) -> None:
    """One V2 request by raw customer id, as a calling service sends it: the customers asked by features
    above, one known but not active, and one unknown. Keeps the answers under each customer's token."""
    tokenizer = lake_tokenizer(settings)
    by_token = {tokenizer.token(raw): raw for raw in raw_ids}
    wanted = [str(token) for token in snapshot.features.index[:EXAMPLE_CUSTOMERS]]
    wanted += [str(token) for token in snapshot.inactive.index if token in by_token][:1]
    asked = [by_token[token] for token in wanted if token in by_token] + [UNKNOWN_CUSTOMER]
    tokens = [tokenizer.token(raw) for raw in asked]
    auth = TokenSource(settings, settings.transformer_audience, settings.client_account).header()
    answer = requests.post(
        f"{url}/v2/models/{MODEL_NAME}/infer",
        timeout=30,
        headers=auth,
        json={"inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [len(asked)], "data": asked}]},
    )
    answer.raise_for_status()
    body = answer.json()
    outputs = {o["name"]: o["data"] for o in body["outputs"]}
    summary.by_customer = [
        {"customer_token": token, **{name: data[i] for name, data in outputs.items()}} for i, token in enumerate(tokens)
    ]
    summary.by_customer_parameters = dict(body.get("parameters", {}))
    click.echo(
        f"  by customer id: {len(asked)} ids asked, {sum(1 for r in summary.by_customer if not r['error'])} scored"
    )


def read_predictions(settings: Settings, summary: DemoSummary) -> None:
    """The predictions table the scoring pipeline committed: rows, model version, data commit."""
    repo = open_repository(settings)
    head = repo.head("main")
    table = repo.read_table(head, "predictions/").to_pandas()
    info = repo.commit_info(head)
    summary.predictions_table = {
        "commit": head,
        "rows": len(table),
        "message": info.message,
        "model_versions": sorted(table["model_version"].astype(str).unique()) if "model_version" in table else [],
        "high_risk": int((table["churn_label"] == 1).sum()) if "churn_label" in table else None,
    }


def print_summary(settings: Settings, summary: DemoSummary, server_url: str | None) -> None:
    """The closing printout."""
    acc = summary.totals()
    click.echo("\n== data (lake) ==")
    click.echo(
        f"ingest pipeline runs {summary.ingest_runs}; ingest commits on main {len(summary.commits)} "
        f"(latest {summary.commits[-1]['id'][:12] if summary.commits else '-'})"
    )
    click.echo(
        f"rows in {acc['rows_in']} = published {acc['rows_published']} + quarantined "
        f"{acc['rows_quarantined']} + duplicates dropped {acc['duplicates_dropped']}; objects quarantined "
        f"whole {acc['objects_quarantined']}"
    )
    click.echo("alerts received: " + (", ".join(f"{k}={n}" for k, n in sorted(summary.alerts.items())) or "none"))
    click.echo("\n== training (MLflow) ==")
    if summary.training_runs:
        click.echo("test split, scored once after the winner was chosen on validation; probabilities calibrated")
        click.echo("on validation (Brier, log-loss, calibration error: lower is better; k = the team's capacity)")
        click.echo(pd.DataFrame(summary.training_runs).set_index("model").T.to_string())
    if not summary.gate_refused:  # else nothing was registered, served or scored
        print_release_sections(summary)
    click.echo(f"\nMLflow UI: {settings.mlflow_tracking_uri}")
    if server_url:
        click.echo(f"model server: {server_url}/v2/models/{MODEL_NAME}")
    if summary.transformer_url and server_url:
        click.echo(f"by customer id: {summary.transformer_url}/v2/models/{MODEL_NAME}/infer")


def print_release_sections(summary: DemoSummary) -> None:
    """The summary's sections of what follows a registration: registry, serving, batch scoring, drift."""
    click.echo("\n== registry ==")
    click.echo(pd.DataFrame(summary.versions).to_string(index=False) if summary.versions else "no versions")
    for line in summary.alias_history:
        click.echo(f"  {line}")
    if summary.decision_rule:
        click.echo(f"production decision rule (served as churn_label): {summary.decision_rule}")
    click.echo("\n== serving (V2 responses of the production model) ==")
    if summary.predictions:
        click.echo(pd.DataFrame(summary.predictions).to_string(index=False))
    if summary.snapshot is not None:
        click.echo(
            f"online snapshot: {len(summary.snapshot.features)} active customers at "
            f"{summary.snapshot.cutoff.isoformat()} (data commit {summary.snapshot.data_commit[:12]})"
        )
    click.echo("\n== by customer id (transformer -> model server; raw ids sent, tokens shown) ==")
    if summary.by_customer:
        click.echo(pd.DataFrame(summary.by_customer).to_string(index=False))
        shown = {k: v for k, v in summary.by_customer_parameters.items() if k in ("model_version", "cutoff")}
        click.echo(f"answered by {shown}")
    click.echo("\n== batch scoring (lake) ==")
    table = summary.predictions_table
    if table:
        click.echo(
            f"predictions table: {table['rows']} customers, model version(s) {table['model_versions']}, "
            f"{table['high_risk']} labelled churn, commit {table['commit'][:12]}"
        )
    click.echo("\n== drift ==")
    if summary.drift:
        click.echo(
            f"{summary.drift['verdict']}: {summary.drift['share']:.0%} of features drifted; "
            f"report {summary.drift['report']}"
        )


def serve_score_and_check(  # pylint: disable=too-many-arguments,too-many-positional-arguments  # the run's context
    settings: Settings, env: dict[str, str], keep: bool, root: Path, raw_ids: list[str], summary: DemoSummary
) -> None:
    """Online snapshot, the V2 server on the production model and the transformer in front of it, the
    scoring pipeline and a drift check."""
    summary.snapshot = refresh_online_features(settings)
    click.echo("\n-- model server and by-customer transformer --")
    with model_server(settings, env, keep) as url, transformer(settings, env, keep, url) as by_id:
        summary.server_url, summary.transformer_url = url, by_id
        ask_server(url, settings, summary.snapshot, summary)
        ask_by_customer(by_id, settings, raw_ids, summary.snapshot, summary)
    click.echo("\n-- scoring pipeline (kfp.local) and drift check --")
    run_pipeline("scoring", {}, root)
    read_predictions(settings, summary)
    report = check_drift(settings, "production", snapshot=summary.snapshot)
    summary.drift = {
        "verdict": "FIRED" if report.fired else "quiet",
        "share": report.drifted_feature_share,
        "report": report.lake_uri,
    }


def run_demo(
    settings: Settings, keep: bool, hours: int = 48, customers: int = 2000, anomaly_rate: float = 0.05, seed: int = 7
) -> DemoSummary:
    """Run the demo; returns what it did."""
    settings = demo_settings(settings)
    stack = LocalStack(settings)
    reused = settings.state_dir.exists()
    stack.down()
    shutil.rmtree(settings.state_dir, ignore_errors=True)
    click.echo(f"demo state: {settings.state_dir} ({'previous demo removed, ' if reused else ''}starting clean)")
    summary = DemoSummary()
    root = settings.state_dir / "pipelines"
    saved = dict(os.environ)
    try:
        with alert_receiver() as (webhook, received):
            env = pipeline_environment(settings, webhook)
            os.environ.update(env)  # kfp.local runs each task as a subprocess of this one
            for status in stack.up():
                click.echo(f"{status.name:16} up  {status.url}")
            click.echo("\n-- ingest pipeline (kfp.local) --")
            raw_ids = replay_and_ingest(settings, hours, customers, anomaly_rate, seed, root, summary)
            click.echo("\n-- training pipeline (kfp.local), then promotion --")
            train_and_promote(settings, env, seed, root, summary)
            if not summary.gate_refused:
                serve_score_and_check(settings, env, keep, root, raw_ids, summary)
            summary.alerts = Counter(received)
        print_summary(settings, summary, summary.server_url if keep else None)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if keep:
            click.echo(
                f"\nstack left running; MLflow UI: {settings.mlflow_tracking_uri}; "
                "stop it with: make stack-down (or churnops stack down)"
            )
        else:
            stack.down()
    return summary
