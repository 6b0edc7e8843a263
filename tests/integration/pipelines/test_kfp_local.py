"""The three pipelines end to end with kfp.local on the embedded stack: ingest hours, train, score.

The training pipeline and the in-process training (``train_from_commit``) are run on the same commit
and must agree: parameters, gate decision, metrics and registered lineage.

Every task runs as a subprocess of this interpreter (kfp.local's SubprocessRunner) and reads its
configuration from the ``CHURNOPS_*`` environment, as the pods read it from the settings ConfigMap.
The checks read the real state afterwards: the lake's commits and tables, the MLflow registry,
and what reached the alert webhook.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import mlflow
import pytest
from google.cloud import storage
from werkzeug.wrappers import Request, Response

from churnops.data.versioning import DataRepository, open_repository
from churnops.local import datagen
from churnops.model import registry
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket
from churnops.training.features import feature_spec
from churnops.training.train import TrainingConfig, lineage_tags, train_from_commit
from pipelines.local import PipelineFailed, run_local
from tests.support.wsgi_double import WsgiDouble

HOURS = 20
CUSTOMERS = 300
SEED = 3
SHIFT = datagen.Drift(start_h=HOURS - 3, share=0.6, activity_factor=0.1)


class Webhook(WsgiDouble):
    """A chat-webhook stand-in on 127.0.0.1 that records every JSON body posted to it."""

    name = "webhook"

    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict[str, Any]] = []

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.received.append(json.loads(Request(environ).get_data(as_text=True)))
        return Response("ok")(environ, start_response)

    @property
    def hook(self) -> str:
        """Where to post."""
        return f"{self.url}/hook"


@dataclass
class Env:
    """The settings the tasks see, the lake, the first hour of data, the webhook and where kfp.local writes."""

    settings: Settings
    repo: DataRepository
    start: datetime
    webhook: Webhook
    root: Path


@pytest.fixture(scope="module", name="env")
def env_fixture(
    gcs_stack: Settings, gcs_client: storage.Client, mlflow_tracking_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    """Raw data in the bucket, and the CHURNOPS_* environment the tasks inherit."""
    state = tmp_path_factory.mktemp("kfp-local")
    suffix = uuid.uuid4().hex[:8]
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS + 1)
    with Webhook() as webhook, pytest.MonkeyPatch.context() as patch:
        environment = {
            "CHURNOPS_STATE_DIR": str(state / "state"),
            "CHURNOPS_GCS_PORT": str(gcs_stack.gcs_port),
            "CHURNOPS_RAW_BUCKET": f"kfp-raw-{suffix}",
            "CHURNOPS_MLFLOW_TRACKING_URI": mlflow_tracking_uri,
            "CHURNOPS_MLFLOW_EXPERIMENT": f"kfp-{suffix}",
            "CHURNOPS_REGISTERED_MODEL": f"churn-kfp-{suffix}",
            "CHURNOPS_TOKENIZATION_KEY": "kfp-local-test-key-0123456789abcdef",
            "CHURNOPS_ALERT_WEBHOOK_URL": webhook.hook,
            # A small lake: windows, history and horizon in hours that fit 20 hours of data.
            "CHURNOPS_FEATURE_WINDOWS_HOURS": "[1, 4]",
            "CHURNOPS_MIN_HISTORY_HOURS": "4",
            "CHURNOPS_LABEL_HORIZON_HOURS": "4",
            "CHURNOPS_LOG_LEVEL": "WARNING",
            "CHURNOPS_PIPELINE_RETRY_BACKOFF_SECONDS": "0",  # a failing task's retries need not wait here
        }
        for key, value in environment.items():
            patch.setenv(key, value)
        settings = Settings()
        # From three hours before the end, 60% of customers are a tenth as active: after the last cutoff training
        # uses (its label windows need the hours after it), so training sees none of it; the drift check does.
        data = datagen.generate(HOURS, CUSTOMERS, start=start, seed=SEED, drift=SHIFT)
        ensure_bucket(gcs_client, settings.raw_bucket)
        datagen.upload(gcs_client, settings.raw_bucket, data.objects)
        repo = open_repository(settings)
        yield Env(settings=settings, repo=repo, start=start, webhook=webhook, root=state / "kfp")


def _hour(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H}"


def _tasks_run(env: Env, pipeline: str, params: dict[str, Any]) -> set[str]:
    """Run ``pipeline`` locally; the tasks that ran (kfp.local gives each a directory under the run's root)."""
    before = set(env.root.iterdir())
    run_local(pipeline, params, env.root)
    (run,) = set(env.root.iterdir()) - before
    return {task.name for task in run.iterdir() if task.is_dir()}


def _first_parent_log(repo: DataRepository) -> list[Any]:
    commits, ref = [], repo.resolve("main")
    while ref:
        info = repo.commit_info(ref)
        commits.append(info)
        ref = info.parents[0] if info.parents else None
    return commits


def _in_process_training_agrees(env: Env, head: str, parent_run: Any, children: dict[str, Any], candidate: str) -> None:
    """The same commit trained in process (``churnops train``, the drift retrain): one composition of training,
    so the same parameters, metrics, gate decision and lineage; the version the pipeline registered is reproduced.
    """
    client = registry.client_for(env.settings)
    registered = client.get_model_version(env.settings.registered_model, candidate)
    in_process = train_from_commit(env.settings, head, seed=42, repo=env.repo)
    assert in_process.reproduced_version == candidate and in_process.model_version is None
    local_parent = client.get_run(in_process.parent_run_id)
    assert local_parent.data.params == parent_run.data.params
    assert {"gate_confidence", "gate_resamples", "gate_margin", "gate_min_auc", "seed"} <= set(parent_run.data.params)
    config = TrainingConfig.from_settings(env.settings)
    lineage_keys = set(lineage_tags(env.settings, head, 42, config, feature_spec(config.windows_h)))
    assert (
        {key: local_parent.data.tags[key] for key in lineage_keys}
        == {key: registered.tags[key] for key in lineage_keys}
        == {key: parent_run.data.tags[key] for key in lineage_keys}
    )
    pipeline_gate = mlflow.artifacts.load_dict(f"runs:/{parent_run.info.run_id}/gate.json")
    assert in_process.gate.to_dict() == pipeline_gate
    assert pipeline_gate["vs_baseline"]["resamples"] == env.settings.gate_resamples
    assert {key: local_parent.data.metrics[key] for key in in_process.gate.metrics()} == {
        key: parent_run.data.metrics[key] for key in in_process.gate.metrics()
    }
    assert in_process.metrics == {
        name: {key: run.data.metrics[key] for key in in_process.metrics[name]} for name, run in children.items()
    }


@pytest.mark.timeout(1800)  # eleven pipeline tasks, each a fresh interpreter: minutes on a busy machine
def test_ingest_training_scoring_with_kfp_local(env: Env) -> None:
    # Ingest: the first half of the hours, then the rest; then the last hour again (nothing new).
    half = env.start + timedelta(hours=HOURS // 2 - 1)
    last = env.start + timedelta(hours=HOURS + 1)
    env.root.mkdir(parents=True, exist_ok=True)
    before, handlers = set(env.root.iterdir()), logging.getLogger().handlers[:]
    first = run_local("ingest", {"hour": _hour(half), "lookback": HOURS // 2 - 1}, env.root)
    # the ingest pipeline has no outputs of its own; its group tasks, run at once, leave no logging handler behind
    assert not first and logging.getLogger().handlers == handlers
    (run,) = set(env.root.iterdir()) - before
    # The objects in CHURNOPS_INGEST_FANOUT (4) groups, each staged by its own task; then one finish and one commit.
    ran = {task.name for task in run.iterdir() if task.is_dir()}
    assert {name for name in ran if name.startswith("for-loop")} == {f"for-loop-3-iteration-{i}" for i in range(4)}
    assert {"ingest-plan", "gate", "ingest-finish", "gate-3", "commit", "gate-4", "alert-on-failure"} <= ran
    run_local("ingest", {"hour": _hour(last), "lookback": HOURS - HOURS // 2 + 1}, env.root)
    head = env.repo.head("main")
    assert _tasks_run(env, "ingest", {"hour": _hour(last), "lookback": 2}) == {
        "ingest-plan",
        "gate",
        "alert-on-failure",
    }
    assert not [name for name in env.repo.branches() if name != "main"]  # no run left a branch
    assert env.repo.head("main") == head  # a run with nothing new publishes nothing, and commit did not run

    published = [c for c in _first_parent_log(env.repo) if "accounting" in c.metadata]
    assert len(published) == 2
    for commit in published:
        accounting = json.loads(commit.metadata["accounting"])
        assert (
            accounting["rows_in"]
            == (accounting["rows_published"] + accounting["rows_quarantined"] + accounting["duplicates_dropped"])
            > 0
        )
        assert json.loads(commit.metadata["sources"])

    # Training on the head of main: features -> two fits -> evaluate -> register only if the gate passes.
    run_local("training", {"seed": 42}, env.root)
    client = registry.client_for(env.settings)
    experiment = client.get_experiment_by_name(env.settings.mlflow_experiment)
    (parent_run,) = client.search_runs([experiment.experiment_id], "tags.run_kind = 'training'")
    parent = parent_run.info.run_id
    assert parent_run.data.tags["data_commit"] == head
    # One parent run per pipeline run: tagged with the run's id (kfp.local resolves KFP's placeholder too).
    assert parent_run.data.tags["kfp_run_id"] and "{{" not in parent_run.data.tags["kfp_run_id"]
    runs = client.search_runs([experiment.experiment_id], f"tags.parent_run_id = '{parent}'")
    children = {r.data.tags["model_type"]: r for r in runs if r.data.tags.get("refit_on_all_cutoffs") != "true"}
    refits = [r for r in runs if r.data.tags.get("refit_on_all_cutoffs") == "true"]
    assert set(children) == {"baseline", "xgboost"}  # both fits, in the parent's experiment
    assert env.repo.list_paths("features", f"features/{head}/{parent}/")
    candidate = registry.alias_holder(client, env.settings.registered_model, "candidate")
    gate_passed = parent_run.data.tags["gate_passed"] == "true"
    auc = {name: run.data.metrics["validation_roc_auc"] for name, run in children.items()}
    # The winner of challenger vs baseline on validation (paired bootstrap): the challenger only if it beats the
    # baseline beyond noise; with no production model yet, the winner may be registered.
    winner = parent_run.data.tags["gate_winner"]
    assert gate_passed and winner in {"baseline", "xgboost"} and (winner == "baseline" or auc[winner] > auc["baseline"])
    # The register task ran (the condition on the evaluate task's output resolved) and registered the winner.
    assert candidate is not None and parent_run.data.tags.get("model_version") == candidate
    registered = client.get_model_version(env.settings.registered_model, candidate)
    assert registered.tags["model_type"] == winner
    # What is registered is the winner refit on every labelled cutoff, in a run of its own.
    assert [r.data.tags["model_type"] for r in refits] == [winner]
    assert registered.run_id == registered.tags["run_id"] == refits[0].info.run_id
    assert registered.tags["evaluated_run_id"] == children[winner].info.run_id
    assert registered.tags["refit_on_all_cutoffs"] == "true"
    assert registered.tags["data_commit"] == head

    _in_process_training_agrees(env, head, parent_run, children, candidate)

    _scoring_with_the_promoted_model(env, client, head, candidate)
    assert not env.webhook.received  # nothing failed so far

    _a_firing_drift_check_runs_the_training_tasks(env, client, candidate)


def _scoring_with_the_promoted_model(env: Env, client: Any, head: str, candidate: str) -> None:
    # Scoring with the production model (promoted by hand, as a person would).
    registry.promote(client, env.settings.registered_model, "staging")
    registry.promote(client, env.settings.registered_model, "production")
    # The alias is resolved once, to the Model artifact the score task consumes.
    assert _tasks_run(env, "scoring", {}) == {"resolve-model", "gate", "score", "gate-2", "alert-on-failure"}
    scoring_commit = env.repo.commit_info("main")
    assert scoring_commit.metadata["kind"] == "predictions"
    assert scoring_commit.metadata["data_commit"] == head
    assert scoring_commit.metadata["model_version"] == candidate
    assert scoring_commit.metadata["model_alias"] == "production"
    predictions = env.repo.read_table("main", "predictions/").to_pandas()
    assert len(predictions) == int(scoring_commit.metadata["rows"]) > 0
    assert predictions["customer_token"].is_unique
    assert predictions["churn_probability"].between(0, 1).all()
    assert set(predictions["model_version"]) == {candidate} and set(predictions["data_commit"]) == {head}
    assert not predictions["customer_token"].str.startswith("CUST-").any()  # tokens, never raw ids


def test_a_refused_input_fails_the_run_once_and_the_exit_handler_alerts(
    env: Env, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    before = len(env.webhook.received)
    with caplog.at_level(logging.INFO), pytest.raises(PipelineFailed):
        run_local("ingest", {"hour": "not-an-hour", "lookback": 0}, env.root)
    # kfp.local retries as the backend does (the gate aside, every task has three retries): nothing was retried.
    assert not [record for record in caplog.records if "Retrying in" in record.getMessage()]
    # The gate failed with the step's reason (the task logs are the runner's output).
    assert "StepRefused: ingest-plan refused: ValueError: hour 'not-an-hour' is not a time" in capfd.readouterr().out
    alerts = env.webhook.received[before:]
    assert len(alerts) == 1
    assert alerts[0]["text"].startswith("churnops alert: pipeline_failed: pipeline ingest ended FAILED")
    assert "(run churnops-ingest-" in alerts[0]["text"]  # the run's name, from KFP's placeholder


def _a_firing_drift_check_runs_the_training_tasks(env: Env, client: Any, production: str) -> None:
    """The drift pipeline on the production model, on data whose last hours shifted: the check fires, and the
    training's own tasks run under the condition on it, with the report as the run's reason."""
    experiment = client.get_experiment_by_name(env.settings.mlflow_experiment)
    before = {r.info.run_id for r in client.search_runs([experiment.experiment_id], "tags.run_kind = 'training'")}
    ran = _tasks_run(env, "drift", {})
    assert {"online-features", "resolve-model", "drift-check", "performance-check"} <= ran
    assert {"features", "train", "train-2", "evaluate"} <= ran  # the condition on the check resolved
    monitoring = client.get_experiment_by_name(f"{env.settings.mlflow_experiment}-monitoring")
    (check,) = client.search_runs([monitoring.experiment_id], "tags.run_kind = 'drift'")
    assert check.data.tags["model_version"] == production  # the version resolve-model chose
    assert check.data.tags["drift_fired"] == "true"
    (retraining,) = [
        r
        for r in client.search_runs([experiment.experiment_id], "tags.run_kind = 'training'")
        if r.info.run_id not in before
    ]
    tags = retraining.data.tags
    assert tags["trigger"] == "drift" and tags["trigger_drift_run"] == check.info.run_id
    assert tags["trigger_report"] == check.data.tags["drift_report"] and tags["trigger_drifted"]
    # On the head of main, which now holds the predictions too.
    assert tags["data_commit"] == env.repo.head("main") and tags["kfp_run_id"] and "{{" not in tags["kfp_run_id"]
    children = client.search_runs([experiment.experiment_id], f"tags.parent_run_id = '{retraining.info.run_id}'")
    assert {r.data.tags["model_type"] for r in children if r.data.tags.get("training_step") == "fit"} == {
        "baseline",
        "xgboost",
    }
    assert tags["gate_passed"] in {"true", "false"}  # evaluate recorded its decision on the retraining's run
    assert any(alert["text"].startswith("churnops alert: drift:") for alert in env.webhook.received)
