"""Training against a real local MLflow server, on a generated lake committed to the embedded repository."""

from __future__ import annotations

import dataclasses
import getpass
import io
import json
import math

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from churnops.data.versioning.uri import read_uri
from churnops.model import registry
from churnops.model.predict import churn_label, decision_rule_of
from churnops.model.scoring import load_model
from churnops.platform.buildinfo import git_sha, lock_sha256
from churnops.training.config import LABELS_THROUGH_TAG
from churnops.training.estimators import MODEL_ARTIFACT
from churnops.training.evaluate import classification_metrics
from churnops.training.features import FEATURE_SPEC, LABEL, held_out_customers
from churnops.training.lineage import sha256_json
from churnops.training.train import (
    TrainingConfig,
    TrainingResult,
    gate_models,
    split_probabilities,
    train_from_commit,
)
from tests.integration.training.conftest import HOURS, START, Lake

Trained = tuple[Lake, TrainingResult]


# Deliberately weak models: one encoded column for both, one stump for XGBoost.
CRIPPLED = TrainingConfig(select_percentile=1.0, xgb_params={"n_estimators": 1, "max_depth": 1, "learning_rate": 0.1})


def client_of(lake: Lake) -> MlflowClient:
    """A client on the session's server."""
    return registry.client_for(lake.settings)


def test_training_registers_the_winner_as_candidate_with_lineage_that_resolves(trained: Trained) -> None:
    lake, result = trained
    client = client_of(lake)
    assert result.data_commit == lake.commit == lake.repo.head("main")
    assert result.gate.passed and result.model_version is not None and result.gate.winner in result.run_ids
    comparison = result.gate.vs_baseline
    assert comparison is not None and comparison.low <= comparison.difference <= comparison.high
    # The winner is chosen on validation; test is scored once, for the recorded metrics and the confirmation.
    assert result.gate.selection_split == "validation"
    assert comparison.difference == pytest.approx(
        result.metrics["xgboost"]["validation_roc_auc"] - result.metrics["baseline"]["validation_roc_auc"], abs=1e-12
    )
    assert result.gate.winner_auc == pytest.approx(result.metrics[result.gate.winner]["test_roc_auc"], abs=1e-12)
    assert (result.gate.winner == "xgboost") == (comparison.low > 0)
    # Other tests share this training and may promote it on, so the alias is checked on its recorded history.
    first_event = json.loads(
        client.get_model_version(lake.settings.registered_model, result.model_version).tags["alias_event.0001"]
    )
    assert (first_event["alias"], first_event["action"]) == ("candidate", "assign")

    for run_id in [result.parent_run_id, *result.run_ids.values()]:
        run = client.get_run(run_id)
        assert run.data.tags["data_commit"] == lake.commit
        assert run.data.tags["lock_sha256"] == lock_sha256()
        assert json.loads(run.data.tags["schema_versions"]) == {
            "events": "events:v1",
            "subscriptions": "subscriptions:v1",
        }
        assert len(run.data.tags["git_sha"]) >= 7
        sources = {json.loads(d.dataset.source)["uri"]: d.dataset.digest for d in run.inputs.dataset_inputs}
        assert sources == {
            f"s3://{lake.settings.lakefs_repository}/{lake.commit}/events/": lake.commit[:36],
            f"s3://{lake.settings.lakefs_repository}/{lake.commit}/subscriptions/": lake.commit[:36],
        }
    xgb_run = client.get_run(result.run_ids["xgboost"])
    assert {"test_roc_auc", "test_pr_auc", "test_f1", "validation_roc_auc", "validation_accuracy"} <= set(
        xgb_run.data.metrics
    )
    # Each model's behavioural checks on validation are in its run; the registered winner passed every one.
    for name, run_id in result.run_ids.items():
        checks = json.loads(read_artifact_text(client, run_id, "behaviour.json"))
        assert checks["model"] == name and len(checks["checks"]) == 5
        metrics = client.get_run(run_id).data.metrics
        figures = {
            f"validation_behaviour_{c['name']}": c["figure"] for c in checks["checks"] if not math.isnan(c["figure"])
        }
        assert figures and figures.items() <= metrics.items()
    winner_checks = json.loads(read_artifact_text(client, result.run_ids[result.gate.winner], "behaviour.json"))
    assert winner_checks["passed"] and not any("behavioural" in reason for reason in result.gate.reasons)
    artifacts = {a.path for a in client.list_artifacts(result.run_ids["xgboost"], "plots")}
    assert {
        "plots/test_confusion.png",
        "plots/test_roc_curve.png",
        "plots/test_pr_curve.png",
        "plots/importance.png",
    } <= artifacts

    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["gate_vs_baseline_auc_diff_low"] == comparison.low
    assert parent.data.metrics["gate_vs_baseline_auc_diff_high"] == comparison.high
    assert parent.data.tags["gate_winner"] == result.gate.winner

    version = client.get_model_version(lake.settings.registered_model, result.model_version)
    tags = version.tags
    # The registered model is the winner refit on every labelled cutoff, recorded as such.
    assert tags["evaluated_run_id"] == result.run_ids[result.gate.winner] and tags["model_type"] == result.gate.winner
    assert tags["refit_on_all_cutoffs"] == "true" and version.run_id != result.run_ids[result.gate.winner]
    refit = client.get_run(version.run_id)
    assert refit.data.tags["refit_on_all_cutoffs"] == "true"
    assert refit.data.tags["mlflow.parentRunId"] == result.parent_run_id
    assert tags["test_roc_auc"] == f"{result.metrics[result.gate.winner]['test_roc_auc']:.6f}"
    assert tags["data_commit"] == lake.commit and tags["parent_run_id"] == result.parent_run_id
    assert tags["lock_sha256"] == lock_sha256() and tags["git_sha"] == git_sha(lake.settings)
    assert tags["git_dirty"] in ("true", "false") and len(tags["params_sha256"]) == 64
    assert tags["tokenizer_key_id"] == lake.repo.commit_info(lake.commit).metadata["tokenizer_key_id"]
    assert tags["feature_spec_sha256"] == sha256_json(FEATURE_SPEC.to_dict())
    # The dataset sources resolve on the backend that wrote them.
    for source, prefix in (
        (json.loads(d.dataset.source)["uri"], d.dataset.name + "/")
        for d in client.get_run(version.run_id).inputs.dataset_inputs
    ):
        table = read_uri(lake.repo, lake.settings.lakefs_repository, source)
        assert table.equals(lake.repo.read_table(lake.commit, prefix))


def read_artifact_text(client: MlflowClient, run_id: str, path: str) -> str:
    """One text artifact of a run."""
    local = client.download_artifacts(run_id, path)
    with open(local, encoding="utf-8") as handle:
        return handle.read()


def read_features(lake: Lake, features_uri: str, name: str) -> bytes:
    """One file of a run's feature matrices, read from the lake at the commit its URI names."""
    prefix = f"lakefs://{lake.settings.lakefs_repository}/"
    assert features_uri.startswith(prefix)
    commit, path = features_uri.removeprefix(prefix).split("/", 1)
    return lake.repo.get_object(commit, f"{path}/{name}")


def test_feature_matrices_are_committed_to_the_lake_tied_to_the_input_commit(trained: Trained) -> None:
    lake, result = trained
    assert lake.repo.head("main") == lake.commit, "publishing features does not move main"
    commit = result.features_uri.removeprefix(f"lakefs://{lake.settings.lakefs_repository}/").split("/", 1)[0]
    assert lake.repo.commit_info(commit).metadata == {"source_commit": lake.commit, "run_id": result.parent_run_id}
    schema = json.loads(read_features(lake, result.features_uri, "schema.json"))
    assert schema["data_commit"] == lake.commit
    assert {c["name"] for c in schema["columns"]} >= set(FEATURE_SPEC.columns) | {LABEL}
    mlflow.set_tracking_uri(lake.settings.mlflow_tracking_uri)
    assert client_of(lake).get_run(result.parent_run_id).data.tags["features_uri"] == result.features_uri
    logged = mlflow.artifacts.download_artifacts(f"runs:/{result.parent_run_id}/features/train.parquet")
    pd.testing.assert_frame_equal(
        pd.read_parquet(logged), pd.read_parquet(io.BytesIO(read_features(lake, result.features_uri, "train.parquet")))
    )


def test_logged_models_hold_a_synthetic_input_example_and_no_training_row(trained: Trained) -> None:
    """``input_example.json`` is one row of zeros and nulls, not a customer's features."""
    lake, result = trained
    mlflow.set_tracking_uri(lake.settings.mlflow_tracking_uri)
    for run_id in result.run_ids.values():
        path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{MODEL_ARTIFACT}/input_example.json")
        with open(path, encoding="utf-8") as handle:
            example = json.load(handle)
        assert example["columns"] == FEATURE_SPEC.columns
        row = dict(zip(example["columns"], example["data"][0], strict=True))
        assert len(example["data"]) == 1
        assert all(row[name] == 0.0 for name in FEATURE_SPEC.numeric)
        assert all(row[name] is None for name in FEATURE_SPEC.categorical)


def test_no_label_of_training_reaches_validation_or_test_and_held_out_customers_are_never_trained_on(
    trained: Trained,
) -> None:
    lake, result = trained
    splits = {
        name: pd.read_parquet(io.BytesIO(read_features(lake, result.features_uri, f"{name}.parquet")))
        for name in ("train", "validation", "test")
    }
    horizon = pd.Timedelta(hours=lake.settings.label_horizon_hours)
    assert splits["train"]["cutoff"].max() + horizon < splits["validation"]["cutoff"].min()
    assert splits["validation"]["cutoff"].max() + horizon < splits["test"]["cutoff"].min()
    churned_in_training = set(splits["train"].loc[splits["train"][LABEL] == 1, "customer_token"])
    for later in ("validation", "test"):
        positives = set(splits[later].loc[splits[later][LABEL] == 1, "customer_token"])
        assert positives and not positives & churned_in_training  # a cancellation is labelled in one split only
    held_out = held_out_customers(splits["test"]["customer_token"], TrainingConfig().holdout_share)
    trained_on = set(splits["train"]["customer_token"])
    assert held_out.any() and not set(splits["test"]["customer_token"][held_out]) & trained_on
    for name in ("baseline", "xgboost"):
        assert {"test_seen_roc_auc", "test_unseen_roc_auc"} <= set(result.metrics[name])


def test_recorded_test_metrics_are_the_evaluated_models_and_the_registered_refit_saw_every_labelled_cutoff(
    trained: Trained,
) -> None:
    lake, result = trained
    mlflow.set_tracking_uri(lake.settings.mlflow_tracking_uri)
    splits = {
        name: pd.read_parquet(io.BytesIO(read_features(lake, result.features_uri, f"{name}.parquet")))
        for name in ("train", "validation", "test")
    }
    test = splits["test"]
    assert test["cutoff"].min() > splits["train"]["cutoff"].max()
    winner = result.gate.winner
    evaluated = load_model(f"runs:/{result.run_ids[winner]}/model").pipeline
    probability = evaluated.predict_proba(test[FEATURE_SPEC.columns])[:, 1]
    assert classification_metrics(test[LABEL], probability)["roc_auc"] == pytest.approx(
        result.metrics[winner]["test_roc_auc"], abs=1e-12
    )
    version = client_of(lake).get_model_version(lake.settings.registered_model, result.model_version)
    params = client_of(lake).get_run(version.run_id).data.params
    assert int(params["refit_rows"]) == sum(len(frame) for frame in splits.values())
    assert int(params["refit_cutoffs"]) == sum(frame["cutoff"].nunique() for frame in splits.values())
    # The decision rule is recorded with the model and the version; the top-k threshold labels about the
    # share the retention team can contact on the last labelled cutoff.
    uri = f"models:/{lake.settings.registered_model}/{result.model_version}"
    rule = decision_rule_of(mlflow.models.get_model_info(uri).metadata)
    assert rule.kind == "top_k" and json.loads(version.tags["decision_rule"]) == rule.to_dict()
    last = test[test["cutoff"] == test["cutoff"].max()]
    labelled = churn_label(load_model(uri).pipeline.predict_proba(last[FEATURE_SPEC.columns])[:, 1], rule.threshold)
    share = lake.settings.retention_capacity_share
    assert share <= labelled.mean() <= share + 5 / len(last)


def test_retraining_the_same_commit_code_and_seed_registers_nothing_and_moves_no_alias(trained: Trained) -> None:
    """The first version in production (as the drift tests leave it): it was refit on every test row of this
    commit, so the gate does not compare the reproduction with it (it would grade its own homework)."""
    lake, first = trained
    client = client_of(lake)
    name = lake.settings.registered_model
    if registry.alias_holder(client, name, "production") is None:
        registry.assign_alias(client, name, "production", str(first.model_version))
    versions_before = {v.version for v in client.search_model_versions(f"name = '{name}'")}
    aliases_before = client.get_registered_model(name).aliases
    through = pd.Timestamp(client.get_model_version(name, str(first.model_version)).tags[LABELS_THROUGH_TAG])
    assert START < through <= START + pd.Timedelta(hours=HOURS)  # the last label window ends inside the lake
    again = train_from_commit(lake.settings, lake.commit, seed=42, repo=lake.repo)
    assert again.data_commit == first.data_commit
    assert again.metrics == first.metrics
    assert again.gate.passed and again.model_version is None and again.reproduced_version == first.model_version
    assert not again.gate.recent_production and again.gate.production_version is None
    assert {v.version for v in client.search_model_versions(f"name = '{name}'")} == versions_before
    assert client.get_registered_model(name).aliases == aliases_before
    assert client.get_run(again.parent_run_id).data.tags["reproduced_version"] == first.model_version


def test_the_gate_refuses_a_worse_model_and_leaves_the_aliases_alone(trained: Trained) -> None:
    lake, first = trained
    settings = lake.fresh_settings()  # a registered model of its own: no other test's aliases move
    client = registry.client_for(settings)
    name = settings.registered_model
    source = client.get_model_version(lake.settings.registered_model, first.model_version).source
    production = registry.register_version(name, source, {"data_commit": lake.commit})
    registry.assign_alias(client, name, "production", production)
    versions_before = len(client.search_model_versions(f"name = '{name}'"))

    worse = train_from_commit(settings, lake.commit, seed=42, config=CRIPPLED, repo=lake.repo)
    assert not worse.gate.passed and worse.model_version is None
    assert worse.gate.production_version == production
    assert set(worse.gate.recent_production) == {production}
    assert worse.gate.vs_production is not None and worse.gate.vs_production.low < -worse.gate.margin
    assert any("worse than the best recent production version" in reason for reason in worse.gate.reasons)
    # One encoded column kept: the declared inputs the selection dropped are recorded as such in the winner's
    # behavioural report (the model cannot respond to them), not counted as failed directions.
    report = mlflow.artifacts.load_dict(f"runs:/{worse.run_ids[worse.gate.winner]}/behaviour.json")
    dropped = [c for c in report["checks"] if c["kind"] == "directional" and "was not selected" in c["detail"]]
    assert dropped and all(check["passed"] for check in dropped)
    assert registry.alias_holder(client, name, "production") == production
    assert registry.alias_holder(client, name, "candidate") is None
    assert len(client.search_model_versions(f"name = '{name}'")) == versions_before
    assert client.get_run(worse.parent_run_id).data.tags["gate_passed"] == "false"


def test_the_gate_compares_with_the_best_recent_production_version_not_only_the_current_one(trained: Trained) -> None:
    """Production went from a good version to a weak one (each step within a margin, say): a new model as weak
    as the current version is not worse than it, but it is worse than the best recent version, and the gate
    refuses it. Checked against the local MLflow registry's versions and alias history."""
    lake, first = trained
    settings = lake.fresh_settings()
    client = registry.client_for(settings)
    name = settings.registered_model
    good_source = client.get_model_version(lake.settings.registered_model, first.model_version).source
    good = registry.register_version(name, good_source, {"data_commit": lake.commit})
    registry.assign_alias(client, name, "production", good)
    weak_config = dataclasses.replace(CRIPPLED, gate_min_auc=0.0)
    weak_training = train_from_commit(settings, lake.commit, seed=42, config=weak_config, repo=lake.repo)
    weak_source = f"runs:/{weak_training.run_ids[weak_training.gate.winner]}/model"
    weak = registry.register_version(name, weak_source, {"data_commit": lake.commit})
    registry.assign_alias(client, name, "production", weak)
    assert registry.production_history(client, name) == [good, weak]

    # The gate of a new training whose models are the weak ones again, on that training's own splits.
    splits = {
        name: pd.read_parquet(io.BytesIO(read_features(lake, weak_training.features_uri, f"{name}.parquet")))
        for name in ("train", "validation", "test")
    }
    uris = {name: f"runs:/{run_id}/model" for name, run_id in weak_training.run_ids.items()}
    scores = split_probabilities(
        settings, uris, {split: splits[split] for split in ("validation", "test")}, FEATURE_SPEC
    )
    lineage = {"seed": "42"}
    gate = gate_models(settings, weak_training.parent_run_id, scores, splits, FEATURE_SPEC, lineage, weak_config)
    assert set(gate.recent_production) == {good, weak} and gate.production_version == good
    # The weak model again: no worse than the current version ...
    assert gate.recent_production[weak] == pytest.approx(gate.winner_auc, abs=1e-12)
    # ... but worse than the best recent one by more than the margin: refused.
    assert not gate.passed and any(f"best recent production version ({good})" in reason for reason in gate.reasons)
    assert client.get_run(weak_training.parent_run_id).data.tags["gate_passed"] == "false"
    # Compared with the current version only (one recent version), the same models pass.
    only_current = gate_models(
        settings,
        weak_training.parent_run_id,
        scores,
        splits,
        FEATURE_SPEC,
        lineage,
        dataclasses.replace(weak_config, gate_recent_production=1),
    )
    assert only_current.passed and set(only_current.recent_production) == {weak}
    assert registry.alias_holder(client, name, "production") == weak


def test_promote_and_rollback_move_aliases_and_record_history(trained: Trained) -> None:
    lake, first = trained
    settings = lake.fresh_settings()
    client = registry.client_for(settings)
    name = settings.registered_model
    model_uri = client.get_model_version(lake.settings.registered_model, first.model_version).source
    versions = [registry.register_version(name, model_uri, {"data_commit": lake.commit}) for _ in range(3)]
    for version in versions:
        registry.assign_alias(client, name, "candidate", version)
        registry.promote(client, name, "staging")
        assert registry.alias_holder(client, name, "candidate") is None
        registry.promote(client, name, "production")
        assert registry.alias_holder(client, name, "staging") is None
    assert registry.alias_holder(client, name, "production") == versions[2]
    with pytest.raises(registry.RegistryError, match="staging"):
        registry.promote(client, name, "production")

    back = registry.rollback(client, name)
    assert (back.version, back.from_version) == (versions[1], versions[2])
    assert registry.alias_holder(client, name, "production") == versions[1]
    registry.rollback(client, name)
    assert registry.alias_holder(client, name, "production") == versions[0]
    with pytest.raises(registry.RegistryError, match="first production version"):
        registry.rollback(client, name)

    tags = client.get_model_version(name, versions[1]).tags
    events = [json.loads(tags[key]) for key in sorted(tags) if key.startswith("alias_event.")]
    assert [(e["alias"], e["action"], e["from_version"]) for e in events] == [
        ("candidate", "assign", None),
        ("staging", "promote", None),
        ("production", "promote", versions[0]),
        ("production", "rollback", versions[2]),
    ]
    assert all(e["by"] == getpass.getuser() and e["at"] for e in events)
    shown = {row["version"]: row["aliases"] for row in registry.describe(client, name)}
    assert shown == {versions[0]: "production", versions[1]: "", versions[2]: ""}
