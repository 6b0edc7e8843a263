"""The training pipeline's train and register steps retried after their side effects: one child run per model,
one refit run, one registered version and one alias change per training run.

KFP retries a task whose pod died, with the same inputs (the same MLflow training run). Each first attempt here
dies right after its side effect (a model logged in a child run; a version registered), as a lost pod does; the
retry must finish what that attempt began, not begin again. The checks read the tracking server and the registry.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from mlflow import MlflowClient

from churnops.model import registry
from churnops.platform.settings import Settings
from churnops.training import train as training
from churnops.training.train import BASELINE, TrainingSetup, begin_training_at, fit_model, register_candidate
from tests.integration.training.conftest import Lake


class PodLost(Exception):
    """The attempt's pod went away (not a refusal, not transient: the backend retries the task)."""


def _children(client: MlflowClient, setup: TrainingSetup) -> list[Any]:
    return client.search_runs([setup.experiment_id], f"tags.parent_run_id = '{setup.parent_run_id}'")


def _train_split(setup: TrainingSetup) -> dict[str, Any]:
    return {name: setup.splits[name] for name in ("train", "validation")}


@pytest.fixture(name="setup")
def setup_fixture(lake: Lake) -> tuple[Settings, TrainingSetup]:
    """A training run of a pipeline run (its features step done), with a registered model of its own."""
    settings = lake.fresh_settings()
    pipeline_run = f"kfp-run-{uuid.uuid4().hex[:12]}"
    return settings, begin_training_at(settings, lake.commit, seed=42, repo=lake.repo, pipeline_run=pipeline_run)


def test_a_train_retry_after_the_model_was_logged_resumes_its_child_run(
    setup: tuple[Settings, TrainingSetup], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, begun = setup
    client = registry.client_for(settings)
    log_model = training.log_model  # the side effect a lost pod interrupts

    def log_then_die(*args: Any) -> str:
        uri = log_model(*args)
        raise PodLost(f"the pod was deleted after logging {uri}")

    with monkeypatch.context() as patch:
        patch.setattr(training, "log_model", log_then_die)
        with pytest.raises(PodLost):
            fit_model(
                settings, BASELINE, _train_split(begun), begun.spec, begun.lineage, begun.parent_run_id, begun.config
            )
    (first,) = _children(client, begun)
    assert first.data.tags["model_type"] == BASELINE

    retried = fit_model(
        settings, BASELINE, _train_split(begun), begun.spec, begun.lineage, begun.parent_run_id, begun.config
    )
    again = fit_model(
        settings, BASELINE, _train_split(begun), begun.spec, begun.lineage, begun.parent_run_id, begun.config
    )

    (child,) = _children(client, begun)  # one child run: resumed, then reused
    assert retried.run_id == again.run_id == first.info.run_id == child.info.run_id
    assert child.info.status == "FINISHED"
    assert again == retried  # the completed run is returned as the attempt that finished it returned it
    assert child.data.tags[training.MODEL_URI_TAG] == retried.model_uri
    assert child.data.metrics["validation_roc_auc"] == retried.metrics["validation_roc_auc"]
    for key in child.data.metrics:  # each metric logged once, though the fit ran twice
        assert len(client.get_metric_history(child.info.run_id, key)) == 1, key


def test_a_register_retry_after_the_version_was_registered_gives_it_the_alias_once(
    setup: tuple[Settings, TrainingSetup], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, begun = setup
    client = registry.client_for(settings)
    fitted = fit_model(
        settings, BASELINE, _train_split(begun), begun.spec, begun.lineage, begun.parent_run_id, begun.config
    )

    def die_before_the_alias(*args: Any, **kwargs: Any) -> Any:
        raise PodLost("the pod was deleted after the version was registered")

    def register() -> str:
        return register_candidate(
            settings, begun.parent_run_id, fitted, fitted, begun.lineage, begun.splits, begun.spec, begun.config
        )

    with monkeypatch.context() as patch:
        patch.setattr(registry, "assign_alias", die_before_the_alias)
        with pytest.raises(PodLost):
            register()
    (version,) = client.search_model_versions(f"name = '{settings.registered_model}'")
    assert registry.alias_holder(client, settings.registered_model, "candidate") is None

    retried = register()
    again = register()

    assert retried == again == str(version.version)
    versions = client.search_model_versions(f"name = '{settings.registered_model}'")
    assert [v.version for v in versions] == [version.version]  # registered once
    assert registry.alias_holder(client, settings.registered_model, "candidate") == retried
    events = [e for e in registry.all_events(client, settings.registered_model) if e.alias == "candidate"]
    assert len(events) == 1 and events[0].version == retried  # the alias was given once
    refits = [r for r in _children(client, begun) if r.data.tags.get(training.REFIT_TAG) == "true"]
    assert [r.info.run_id for r in refits] == [version.run_id]  # one refit run, the registered one
    parent = client.get_run(begun.parent_run_id).data.tags
    assert parent["model_version"] == retried
    assert "reproduced_version" not in parent  # its own registration is no reproduction
