"""Personal data through the whole system: generated raw data with names, e-mails, phones, IPs and
customer ids goes through ingest, training and the CLI; the model server serves the trained model
and is sent good requests and bad ones carrying raw ids and e-mails; then no raw value may be found
in any log line (the server's included), server response, MLflow param, tag or artifact, or lake
object. Then one customer is erased, and the next training and scoring runs no longer see them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest
import requests
from click.testing import CliRunner
from google.cloud import storage
from mlflow.tracking import MlflowClient
from pydantic import SecretStr

from churnops.cli import main as cli
from churnops.cli import privacy as cli_privacy
from churnops.cli import training as cli_training
from churnops.data.ingest import IngestRun
from churnops.data.privacy import Tokenizer
from churnops.data.subjects import forget
from churnops.data.versioning import DataRepository, open_repository
from churnops.data.versioning.base import FEATURES_BRANCH
from churnops.local import datagen
from churnops.platform.alerts import AlertSink
from churnops.platform.logs import setup_logging
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket
from churnops.training.batch import score_customers
from churnops.training.train import TrainingResult, train_from_commit
from tests.integration.serving.conftest import MODEL_NAME, start_server, stop_server
from tests.support.auth import headers

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
HOURS, CUSTOMERS, SEED = 40, 100, 11
KEY = "privacy-end-to-end-key-0123456789abcdef"
PII_FIELDS = ("customer_id", "email", "name", "phone", "ip_address")
_ID_OR_EMAIL = re.compile(r"CUST-\d+|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_WORD = re.compile(r"[A-Za-z0-9@._+-]")


def raw_pii(objects: list[datagen.RawObject]) -> set[str]:
    """Every raw identifying value in the generated objects (structured fields, plus ids/e-mails anywhere)."""
    values: set[str] = set()
    for obj in objects:
        try:
            text = (gzip.decompress(obj.data) if obj.name.endswith(".gz") else obj.data).decode("utf-8", "replace")
        except (OSError, EOFError):  # a deliberately broken object: its readable part is still scanned
            text = obj.data.decode("utf-8", "replace")
        values.update(_ID_OR_EMAIL.findall(text))
        if obj.name.endswith(".csv"):
            records: list[dict[str, object]] = list(csv.DictReader(io.StringIO(text)))
        else:
            records = []
            for line in text.splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
        for record in records:
            values.update(str(record[f]) for f in PII_FIELDS if isinstance(record.get(f), str))
    return {value.strip() for value in values if len(value.strip()) >= 7}


def leaks(blobs: dict[str, str], values: set[str]) -> list[str]:
    """``where: value`` for each raw value found as a whole word in any blob."""
    found = []
    for where, text in blobs.items():
        for value in values:
            start = text.find(value)
            while start >= 0:
                end = start + len(value)
                before, after = text[start - 1 : start], text[end : end + 1]
                if not (before and _WORD.match(before)) and not (after and _WORD.match(after)):
                    found.append(f"{where}: {value}")
                    break
                start = text.find(value, start + 1)
    return found


def _as_text(name: str, content: bytes) -> str:
    if name.endswith(".parquet"):
        return pq.read_table(io.BytesIO(content)).to_pandas().to_csv(index=False)
    return content.decode("utf-8", "replace")


def lake_blobs(repo: DataRepository) -> dict[str, str]:
    """Every object at the head of main and features, and every commit's message and metadata."""
    blobs: dict[str, str] = {}
    for branch in ("main", FEATURES_BRANCH):
        for path in repo.list_paths(branch):
            blobs[f"lake {branch}:{path}"] = _as_text(path, repo.get_object(branch, path))
        for info in repo.log(branch, limit=500):
            blobs[f"lake commit {info.id[:12]}"] = info.message + json.dumps(info.metadata)
    return blobs


def mlflow_blobs(settings: Settings, tmp: Path) -> dict[str, str]:
    """Params, tags and every artifact of every run of the experiment, and the registry's model versions."""
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    assert experiment is not None
    blobs: dict[str, str] = {}
    for run in client.search_runs([experiment.experiment_id], max_results=100):
        run_id = run.info.run_id
        blobs[f"mlflow {run_id} params/tags"] = json.dumps([run.data.params, run.data.tags, run.info.run_name])
        local = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, dst_path=str(tmp / run_id), tracking_uri=settings.mlflow_tracking_uri
            )
        )
        for path in local.rglob("*"):
            if path.is_file():
                blobs[f"mlflow {run_id}:{path.relative_to(local)}"] = _as_text(path.name, path.read_bytes())
    for version in client.search_model_versions(f"name='{settings.registered_model}'"):
        blobs[f"registry v{version.version}"] = json.dumps([version.tags, version.description, version.run_id])
    return blobs


@dataclass
class World:
    """What the module's one pass through the system produced."""

    settings: Settings
    repo: DataRepository
    tokenizer: Tokenizer
    pii: set[str]
    training: TrainingResult
    logs: io.StringIO
    cli_output: dict[str, str] = field(default_factory=dict)  # what each command printed, logs included
    cli_stdout: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module", name="world")
def world_fixture(
    gcs_stack: Settings, gcs_client: storage.Client, mlflow_tracking_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """Generate, ingest and train once, logging at DEBUG into a buffer; run the CLI over the result."""
    suffix = uuid.uuid4().hex[:8]
    settings = gcs_stack.model_copy(
        update={
            "state_dir": tmp_path_factory.mktemp("pii-e2e"),
            "mlflow_tracking_uri": mlflow_tracking_uri,
            "raw_bucket": f"pii-e2e-{suffix}",
            "mlflow_experiment": f"pii-{suffix}",
            "registered_model": f"pii-{suffix}",
            "log_level": "DEBUG",
            "tokenization_key": SecretStr(KEY),
            # A privacy check on a lake of 100 customers: its test split (a few positives) cannot show the quality
            # floor a first model must reach, and the model only has to exist for serving, export and erasure.
            "gate_min_auc": 0.0,
            # ... nor the declared directions, which its regularised baseline may not pick up (a behavioural check
            # that gives a model of 100 customers no chance); the behavioural tests hold models to them.
            "gate_behaviour_share": 0.0,
        }
    )
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs = io.StringIO()
    setup_logging(settings, logs)
    try:
        data = datagen.generate(HOURS, CUSTOMERS, start=START, seed=SEED, anomaly_rate=0.1)
        ensure_bucket(gcs_client, settings.raw_bucket)
        datagen.upload(gcs_client, settings.raw_bucket, data.objects)
        repo = open_repository(settings)
        repo.ensure()
        tokenizer = Tokenizer(KEY.encode())
        run = IngestRun(
            settings, repo, gcs_client, tokenizer, AlertSink(settings), now=lambda: START + timedelta(hours=HOURS + 1)
        )
        run.run(START + timedelta(hours=HOURS - 1), lookback=HOURS - 1)  # one run picks up every hour
        training = train_from_commit(settings, None, seed=3, repo=repo)
        world = World(settings, repo, tokenizer, raw_pii(data.objects), training, logs)
        subject = sorted(v for v in world.pii if v.startswith("CUST-"))[0]
        with pytest.MonkeyPatch.context() as patch:
            for module in (cli, cli_training, cli_privacy):
                patch.setattr(module, "get_settings", lambda: settings)
            for args in (
                ["lake", "log", "--limit", "100"],
                ["runs", "compare"],
                ["model", "show"],
                ["model", "source", "--alias", "candidate"],
                # The export document holds the subject's own raw lines (Art. 15): it goes to a file.
                ["privacy", "export", "--customer-id", subject, "--output", str(settings.state_dir / "export.json")],
            ):
                result = CliRunner().invoke(cli.main, args)  # logs to the runner's stderr, through the scrubber
                assert result.exit_code == 0, result.output
                world.cli_output[" ".join(args[:2])] = result.output
                world.cli_stdout[" ".join(args[:2])] = result.stdout
        yield world
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@dataclass
class Candidate:
    """The model the world's training registered, as the model server finds it."""

    uri: str
    tracking_uri: str


@dataclass
class Served:
    """What the model server answered (status and body per request) and logged."""

    replies: dict[str, tuple[int, str]]
    log: str


def serving_requests(inputs: list[dict[str, object]], customer: str, email: str) -> dict[str, tuple[str, object]]:
    """name -> (path, JSON body): one good request, and bad ones that carry the customer's id or e-mail."""
    infer = f"/v2/models/{MODEL_NAME}/infer"

    def body(change: dict[str, list[object]] | None = None, **extra: object) -> dict[str, object]:
        tensors = [
            {
                **tensor,
                "shape": [1],
                "data": (change or {}).get(str(tensor["name"]), [1.0] if tensor["datatype"] == "FP64" else ["basic"]),
            }
            for tensor in inputs
        ]
        return {"inputs": tensors, **extra}

    numeric = next(str(t["name"]) for t in inputs if t["datatype"] == "FP64")
    textual = next(str(t["name"]) for t in inputs if t["datatype"] == "BYTES")
    return {
        "good": (infer, body(id="pii-e2e-1")),
        "id as a number": (infer, body({numeric: [customer]})),
        "e-mail inside a text value": (infer, body({textual: [[email]]})),
        "input named after a customer": (
            infer,
            {"inputs": [*body()["inputs"], {**inputs[0], "name": customer, "shape": [1], "data": [1.0]}]},
        ),
        "field named after an e-mail": (infer, body(**{email: customer})),
        "model named after a customer": (f"/v2/models/{customer}/infer", body()),
        "v1 predict of a customer": (f"/v1/models/{customer}:predict", {"instances": [email]}),
    }


@pytest.fixture(scope="module", name="served")
def served_fixture(world: World, tmp_path_factory: pytest.TempPathFactory) -> Served:
    """Serve the candidate at DEBUG, send it good and bad requests, stop it; its replies and log."""
    customer = sorted(v for v in world.pii if v.startswith("CUST-"))[0]
    email = sorted(v for v in world.pii if "@" in v)[0]
    log = tmp_path_factory.mktemp("pii-serving") / "server.log"
    model = Candidate(f"models:/{world.settings.registered_model}@candidate", world.settings.mlflow_tracking_uri)
    server = start_server(model, log=log, level="DEBUG")
    try:
        metadata = requests.get(server.url(f"/v2/models/{MODEL_NAME}"), timeout=30, headers=headers()).json()
        replies = {}
        for name, (path, payload) in serving_requests(metadata["inputs"], customer, email).items():
            reply = requests.post(server.url(path), json=payload, timeout=30, headers=headers())
            replies[name] = (reply.status_code, reply.text + json.dumps(dict(reply.headers)))
    finally:
        assert stop_server(server) == 0
    return Served(replies, log.read_text(encoding="utf-8", errors="replace"))


def test_the_generated_data_really_carries_pii(world: World) -> None:
    kinds = {"id": r"CUST-\d+", "email": r".+@.+\..+", "phone": r"\+?[\d ().-]{7,}", "ip": r"[\d.]+|[0-9a-f:]+"}
    counts = {kind: sum(1 for v in world.pii if re.fullmatch(pattern, v)) for kind, pattern in kinds.items()}
    assert counts["id"] >= CUSTOMERS and counts["email"] >= CUSTOMERS and counts["phone"] > 0 and counts["ip"] > 0
    assert world.logs.getvalue().count("\n") > 20  # DEBUG logging of every stage was captured
    sample = sorted(world.pii)[0]
    assert leaks({"probe": f"customer {sample}, done"}, world.pii) == [f"probe: {sample}"]  # the search works


def test_the_model_server_repeats_no_raw_pii_in_replies_or_logs(world: World, served: Served) -> None:
    assert served.replies["good"][0] == 200 and "churn_probability" in served.replies["good"][1]
    refused = {name: status for name, (status, _) in served.replies.items() if name != "good"}
    assert all(400 <= status < 500 for status in refused.values()), refused
    assert served.log.count("bad inference request") >= 4  # the server logged the refusals (at DEBUG)
    blobs = {f"serving reply {name}": text for name, (_, text) in served.replies.items()}
    assert not leaks({**blobs, "serving log": served.log}, world.pii)


def test_model_source_names_what_deploy_takes(world: World) -> None:
    uri, version = world.cli_stdout["model source"].split()
    assert version == world.training.model_version
    assert uri.endswith("/model") or "artifacts" in uri


def test_no_raw_pii_in_logs_cli_output_mlflow_or_the_lake(world: World, tmp_path: Path) -> None:
    blobs = {"log lines": world.logs.getvalue(), **{f"cli {k}": v for k, v in world.cli_output.items()}}
    blobs.update(lake_blobs(world.repo))
    blobs.update(mlflow_blobs(world.settings, tmp_path))
    assert any(name.endswith(".parquet") for name in blobs) or any("features/" in name for name in blobs)
    assert not leaks(blobs, world.pii)


def trained_on(world: World, result: TrainingResult) -> set[str]:
    """The customer tokens in a training run's feature matrices, as committed to the lake."""
    commit, prefix = result.features_uri.removeprefix(f"lakefs://{world.settings.lakefs_repository}/").split("/", 1)
    return set(world.repo.read_table(commit, prefix).column("customer_token").to_pylist())


def predicted(world: World) -> set[str]:
    """The customer tokens in the predictions table at the head of main."""
    return set(world.repo.read_table("main", "predictions/").column("customer_token").to_pylist())


def test_after_erasure_the_next_training_and_scoring_do_not_see_the_subject(world: World) -> None:
    before = trained_on(world, world.training)
    score_customers(world.settings, alias="candidate", repo=world.repo)
    scored = predicted(world)
    subject = next(
        v for v in sorted(world.pii) if v.startswith("CUST-") and world.tokenizer.token(v) in before & scored
    )
    token = world.tokenizer.token(subject)

    report = forget(world.repo, world.tokenizer, subject, ("main", FEATURES_BRANCH))
    assert report.rows_removed > 0 and subject not in json.dumps(asdict(report))

    again = train_from_commit(world.settings, None, seed=3, repo=world.repo)
    assert again.data_commit == world.repo.head("main") != world.training.data_commit
    after = trained_on(world, again)
    assert token not in after and len(after) >= len(before) - 1
    assert token not in predicted(world)  # the erasure removed the subject's predictions
    score_customers(world.settings, alias="candidate", repo=world.repo)
    assert token not in predicted(world) and len(predicted(world)) >= len(scored) - 1
    for table in ("events/", "subscriptions/"):
        assert token not in set(world.repo.read_table("main", table).column("customer_token").to_pylist())
