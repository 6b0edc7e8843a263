"""An erasure that completes, checked as an auditor would, on both backends.

A small lake is ingested (with a quarantined row whose id carries surrounding whitespace), a model
is trained (feature matrices in the lake and as MLflow run artifacts), the online snapshot and
predictions are published, a pipeline-root dataset and an interrupted ingest branch hold the
subject too. Then ``churnops privacy forget`` and ``churnops privacy purge`` run with a grace period
of 0, and every byte of every store is decoded and searched: every git object of the lake
(reachable or not), the raw bucket (every generation), MLflow's database and artifacts, the
pipeline root. On lakeFS (the API double, keeping its storage namespace in fake-gcs-server as lakeFS
keeps it in the lake bucket) the lake is every object of the storage namespace and every commit's
message and metadata. None of the subject's raw id, name, e-mail, phone or token may be found
outside the erasure record; ``export`` then finds nothing, and replaying the raw objects brings
nothing back.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import shutil
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pygit2
import pytest
from click.testing import CliRunner
from google.cloud import storage
from pydantic import SecretStr

from churnops.cli import main as cli
from churnops.cli import privacy as cli_privacy
from churnops.data.ingest import IngestRun
from churnops.data.privacy import Tokenizer
from churnops.data.purge import commit_map
from churnops.data.versioning import DataRepository, open_repository
from churnops.data.versioning.base import ObjectExpired
from churnops.data.versioning.lakefs import LakeFSRepository
from churnops.local import datagen
from churnops.model import registry
from churnops.platform.alerts import AlertSink
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket
from churnops.training.batch import score_customers
from churnops.training.online import refresh_online_features
from churnops.training.reproduce import reproduce
from churnops.training.train import train_from_commit
from tests.integration.conftest import LAKE_BUCKET
from tests.support.lakefs_double import LakeFSDouble

# The first test of each backend builds its world (ingest, training, publishing, the CLI's erasure): minutes on a
# busy machine, so 900 s, not 300 s.
pytestmark = pytest.mark.timeout(900)
XDIST_GROUP_BY_PARAM = "world"  # the embedded and the lakeFS world are built on separate workers (tests/conftest.py)

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
HOURS, CUSTOMERS, SEED = 40, 60, 5
KEY = "erasure-end-to-end-key-0123456789abcdef"
_WORD = re.compile(r"[A-Za-z0-9@._+-]")


@dataclass
class Subject:
    """The customer to erase: their raw values and token."""

    customer_id: str
    name: str
    email: str
    phone: str
    token: str

    def needles(self) -> dict[str, str]:
        """What must not be found anywhere (raw values and the token)."""
        return {
            "id": self.customer_id,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "token": self.token,
        }


@dataclass
class World:
    """The state the module's one pass built, and what the commands printed."""

    settings: Settings
    mlflow_dir: Path
    repo: DataRepository
    client: storage.Client
    subject: Subject
    objects: list[datagen.RawObject]
    outputs: dict[str, str]
    training_run: str  # the parent run of the training before the erasure


def _subject(objects: list[datagen.RawObject], tokenizer: Tokenizer) -> Subject:
    """A customer with a subscription record (name, e-mail and phone) in the generated data."""
    rows = [
        row
        for obj in objects
        if obj.name.endswith(".csv")
        for row in csv.DictReader(io.StringIO(obj.data.decode("utf-8", "replace")))
    ]
    for row in sorted(rows, key=lambda r: r.get("customer_id") or ""):
        if all(len((row.get(key) or "").strip()) >= 6 for key in ("customer_id", "name", "email", "phone")):
            customer_id = row["customer_id"].strip()
            return Subject(
                customer_id,
                row["name"].strip(),
                row["email"].strip(),
                row["phone"].strip(),
                tokenizer.token(customer_id),
            )
    raise AssertionError("the generated data has no complete subscription record")


def _extra_object(subject: Subject) -> datagen.RawObject:
    """An events object with the subject's id padded with spaces: one valid row, one the contract refuses."""
    hour = START + timedelta(hours=5)
    base = {
        "customer_id": f"  {subject.customer_id} ",
        "event_time": (hour + timedelta(minutes=7)).isoformat(),
        "session_id": "s-erasure",
        "device": "web",
        "page": "/home",
        "email": subject.email,
    }
    lines = [
        {**base, "event_id": "evt-erasure-valid", "event_type": "page_view"},
        {**base, "event_id": "evt-erasure-bad", "event_type": "not-an-event-type"},
    ]
    data = gzip.compress("".join(json.dumps(line) + "\n" for line in lines).encode())
    name = f"activity/events/dt={hour:%Y-%m-%d}/hr={hour:%H}/erasure-extra.jsonl.gz"
    return datagen.RawObject(name=name, data=data, content_type="application/gzip", hour=hour, arrival=hour)


def _ingest(settings: Settings, repo: DataRepository, client: storage.Client) -> IngestRun:
    run = IngestRun(
        settings,
        repo,
        client,
        Tokenizer(KEY.encode()),
        AlertSink(settings),
        now=lambda: START + timedelta(hours=HOURS + 1),
    )
    run.run(START + timedelta(hours=HOURS - 1), lookback=HOURS - 1)
    return run


def _backend(request: pytest.FixtureRequest, suffix: str) -> dict[str, object]:
    """The settings that select the module's backend: embedded, or a repository on the lakeFS double."""
    if request.param == "embedded":
        return {}
    double: LakeFSDouble = request.getfixturevalue("lakefs_double_gcs")
    return {
        "versioning_backend": "lakefs",
        "lakefs_endpoint": double.url,
        "lakefs_repository": f"erasure-{suffix}",
        "lakefs_storage_namespace": f"gs://{LAKE_BUCKET}/erasure-{suffix}",
        "lakefs_access_key_id": SecretStr(double.access_key_id),
        "lakefs_secret_access_key": SecretStr(double.secret_access_key),
    }


@pytest.fixture(scope="module", name="world", params=["embedded", "lakefs"])
def world_fixture(
    request: pytest.FixtureRequest,
    stack_settings: Settings,
    gcs_stack: Settings,
    gcs_client: storage.Client,
    mlflow_tracking_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    """Build the lake, train, publish, forget and purge (grace 0) through the CLI."""
    suffix = uuid.uuid4().hex[:8]
    state = tmp_path_factory.mktemp("erasure-e2e")
    settings = gcs_stack.model_copy(
        update={
            **_backend(request, suffix),
            "state_dir": state,
            "mlflow_tracking_uri": mlflow_tracking_uri,
            "raw_bucket": f"erasure-e2e-{suffix}",
            "mlflow_experiment": f"erasure-{suffix}",
            "registered_model": f"erasure-{suffix}",
            "tokenization_key": SecretStr(KEY),
            "erasure_grace_hours": 0,
            # A lake of a few hundred customers: its regularised baseline may ignore the contract or the payment
            # method, which the behavioural checks would refuse; here a model only has to exist to be erased.
            "gate_behaviour_share": 0.0,
        }
    )
    data = datagen.generate(HOURS, CUSTOMERS, start=START, seed=SEED, anomaly_rate=0.05)
    subject = _subject(data.objects, Tokenizer(KEY.encode()))
    objects = [*data.objects, _extra_object(subject)]
    ensure_bucket(gcs_client, settings.raw_bucket)
    datagen.upload(gcs_client, settings.raw_bucket, objects)
    repo = open_repository(settings)
    repo.ensure()
    _ingest(settings, repo, gcs_client)
    training = train_from_commit(settings, None, seed=3, repo=repo)
    refresh_online_features(settings, repo=repo)
    score_customers(settings, alias="candidate", repo=repo)
    repo.create_branch("ingest-20261101T05-interrupted", source="main")  # an interrupted run's branch
    # A KFP task's output dataset under the pipeline root (what the training pipeline's features task writes).
    location = training.features_uri.removeprefix(f"lakefs://{settings.lakefs_repository}/")
    commit, prefix = location.split("/", 1)
    dataset = state / "kfp" / "training" / "build-features" / "features"
    dataset.parent.mkdir(parents=True)
    dataset.write_bytes(repo.get_object(commit, f"{prefix.rstrip('/')}/train.parquet"))

    outputs: dict[str, str] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli_privacy, "get_settings", lambda: settings)
        export = state / "before.json"
        for name, args in (
            ("export before", ["--output", str(export)]),
            ("forget", []),
            ("purge", []),
            ("export after", []),
        ):
            command = name.split()[0]
            result = CliRunner().invoke(
                cli.main,
                ["privacy", command, "--customer-id", subject.customer_id, *args]
                if command != "purge"
                else ["privacy", "purge"],
            )
            assert result.exit_code == 0, result.output
            outputs[name] = result.stdout
        outputs["before.json"] = export.read_text(encoding="utf-8")
    yield World(
        settings,
        stack_settings.state_dir / "mlflow",
        repo,
        gcs_client,
        subject,
        objects,
        outputs,
        training.parent_run_id,
    )


# ----------------------------------------------------------------------------- decoding stores


def _decoded(content: bytes) -> str:
    """Text of a stored file: parquet as CSV, gzip decompressed, anything else as UTF-8."""
    if content[:4] == b"PAR1" and content[-4:] == b"PAR1":
        return pq.read_table(io.BytesIO(content)).to_pandas().to_csv(index=False)
    if content[:2] == b"\x1f\x8b":
        try:
            return _decoded(gzip.decompress(content))
        except (OSError, EOFError, zlib.error):
            return _decoded(zlib.decompressobj(wbits=31).decompress(content))
    return content.decode("utf-8", "replace")


def _is_erasure_record(text: str) -> bool:
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return False
    return isinstance(document, dict) and {"erasure_id", "subject_token", "key_id"} <= document.keys()


def lake_texts(world: World) -> dict[str, str]:
    """Every object the lake stores, reachable or not, decoded; erasure records left out.

    Embedded: the git object database. lakeFS: every object of the storage namespace, and every
    commit's message and metadata (what lakeFS keeps besides the contents).
    """
    if isinstance(world.repo, LakeFSRepository):
        bucket, _, prefix = (world.settings.lakefs_storage_namespace or "").removeprefix("gs://").partition("/")
        texts = {
            f"lake object {blob.name}": _decoded(blob.download_as_bytes())
            for blob in world.client.list_blobs(bucket, prefix=f"{prefix}/")
        }
        texts = {name: text for name, text in texts.items() if not _is_erasure_record(text)}
        for commit in world.repo.reachable_commits():
            info = world.repo.commit_info(commit)
            texts[f"lake commit {commit}"] = f"{info.message}\n{json.dumps(info.metadata)}"
        return texts
    git = pygit2.Repository(str(world.settings.embedded_repo_dir))
    texts = {}
    for oid in git.odb:
        kind, data = git.odb.read(oid)
        text = _decoded(data) if kind == pygit2.enums.ObjectType.BLOB else data.decode("utf-8", "replace")
        if not _is_erasure_record(text):
            texts[f"lake object {oid}"] = text
    assert not list((world.settings.embedded_repo_dir / "objects").glob("pack/*.pack")) or texts
    return texts


def raw_texts(world: World) -> dict[str, str]:
    """Every generation of every object in the raw bucket, decoded."""
    return {
        f"raw {blob.name}#{blob.generation}": _decoded(blob.download_as_bytes(raw_download=True))
        for blob in world.client.list_blobs(world.settings.raw_bucket, versions=True)
    }


def files_texts(root: Path, label: str) -> dict[str, str]:
    """Every file under ``root``, decoded (an sqlite database is searched as raw bytes too)."""
    return {
        f"{label} {path.relative_to(root)}": _decoded(path.read_bytes()) for path in root.rglob("*") if path.is_file()
    }


def found(texts: dict[str, str], needles: dict[str, str]) -> list[str]:
    """``where: what`` for each needle found as a whole word."""
    hits = []
    for where, text in texts.items():
        for what, value in needles.items():
            for match in re.finditer(re.escape(value), text):
                before, after = text[match.start() - 1 : match.start()], text[match.end() : match.end() + 1]
                if not (before and _WORD.match(before)) and not (after and _WORD.match(after)):
                    hits.append(f"{where}: {what}")
                    break
    return hits


# ----------------------------------------------------------------------------------- the tests


def test_before_the_erasure_every_store_held_the_subject(world: World) -> None:
    before = json.loads(world.outputs["before.json"])
    tables = before["tables"]
    assert {"events", "subscriptions", "quarantine", "features", "predictions"} <= tables.keys(), tables.keys()
    # The padded id of the extra object was tokenized like every other: its quarantined row is found.
    assert any(row.get("event_id") == "evt-erasure-bad" for row in tables["quarantine"])
    assert any(row["object"].endswith("erasure-extra.jsonl.gz") for row in before["raw_bucket"])
    assert "_index" in tables  # the id index rows of the subject's events and records


def test_purge_leaves_no_trace_in_any_store(world: World) -> None:
    assert "purged 1 erasure(s)" in world.outputs["purge"], world.outputs["purge"]
    texts = {
        **lake_texts(world),
        **raw_texts(world),
        **files_texts(world.mlflow_dir, "mlflow"),
        **files_texts(world.settings.state_dir / "kfp", "pipeline root"),
    }
    assert any(name.startswith("lake object") for name in texts) and any(name.startswith("raw") for name in texts)
    # The search finds what is there: the other customers' ids are still in the raw bucket.
    raw = raw_texts(world)
    others = sorted(
        {match for text in raw.values() for match in re.findall(r"CUST-\d+", text)} - {world.subject.customer_id}
    )
    assert others and found(raw, {"another customer": others[0]})
    assert not found(texts, world.subject.needles())


def test_the_erasure_record_holds_the_token_and_no_raw_value(world: World) -> None:
    paths = world.repo.list_paths("main", "_privacy/erasures/")
    assert len(paths) == 1
    record = json.loads(world.repo.get_object("main", paths[0]))
    assert record["subject_token"] == world.subject.token and record["purged_at"]
    assert record["purged"]["raw_lines"] > 0 and record["purged"]["mlflow_rows"] > 0
    history = "lake_objects_deleted" if isinstance(world.repo, LakeFSRepository) else "lake_commits_rewritten"
    assert record["purged"]["pipeline_root_rows"] > 0 and record["purged"][history] > 0
    values = {k: v for k, v in world.subject.needles().items() if k != "token"}
    assert not found({"record": json.dumps(record)}, values)


def test_reproducing_a_model_trained_before_the_purge_on_lakefs_says_why_it_cannot(world: World) -> None:
    """On lakeFS the purge deleted the pre-erasure commit's objects that held the subject (on the embedded
    backend the commit was rewritten instead, and reproduce retrains on its rewritten form)."""
    data_commit = registry.use_tracking(world.settings).get_run(world.training_run).data.tags["data_commit"]
    if not isinstance(world.repo, LakeFSRepository):
        assert data_commit in commit_map(world.repo)  # rewritten: reproduce finds its new id there
        return
    with pytest.raises(ObjectExpired, match="an erasure purge deleted its objects that held erased subjects"):
        reproduce(world.settings, world.training_run, repo=world.repo)


def test_export_after_the_purge_finds_nothing(world: World) -> None:
    document = json.loads(world.outputs["export after"])
    assert document["subject"]["customer_token"] == world.subject.token
    assert document["tables"] == {} and document["raw_bucket"] == []
    assert "main" in document["commits"] and "ingest-20261101T05-interrupted" in document["commits"]


def test_replaying_the_raw_objects_brings_nothing_back(world: World) -> None:
    datagen.upload(world.client, world.settings.raw_bucket, world.objects)  # the original objects, sent again
    _ingest(world.settings, world.repo, world.client)
    head = world.repo.commit_info("main")
    accounting = json.loads(head.metadata["accounting"])
    assert accounting["rows_erased"] > 0
    assert accounting["rows_in"] == (
        accounting["rows_published"]
        + accounting["rows_quarantined"]
        + accounting["duplicates_dropped"]
        + accounting["rows_erased"]
    )
    for table in ("events/", "subscriptions/", "quarantine/"):
        tokens = world.repo.read_table("main", table).column("customer_token").to_pylist()
        assert world.subject.token not in tokens
    if (world.settings.state_dir / "kfp").exists():
        shutil.rmtree(world.settings.state_dir / "kfp")
