"""The training pipeline's features step retried after its side effects: one MLflow parent run and one publish of the
feature matrices per pipeline run.

KFP retries a task whose pod died, with the same inputs; the features task gets the pipeline run's id. The
first attempt here dies after it opened the parent run and merged the matrices into the lake's ``features``
branch, leaving its run branch behind (as a lost pod does); the retry must finish that run, not open another.
"""

from __future__ import annotations

import uuid

import pytest

from churnops.data.versioning import DataRepository
from churnops.data.versioning.base import FEATURES_BRANCH
from churnops.model import registry
from churnops.training import featurefiles
from churnops.training.train import PIPELINE_RUN_TAG, begin_training_at
from tests.integration.training.conftest import Lake


class PodLost(Exception):
    """The attempt's pod went away (not a refusal, not transient: the backend retries the task)."""


def _parent_runs(lake: Lake, experiment_name: str, pipeline_run: str) -> list[str]:
    client = registry.client_for(lake.settings)
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], f"tags.{PIPELINE_RUN_TAG} = '{pipeline_run}'")
    return [run.info.run_id for run in runs]


def _feature_publishes(lake: Lake, run_id: str) -> list[str]:
    """The merges into the ``features`` branch that carry the run's matrices."""
    return [
        c.id
        for c in lake.repo.log(FEATURES_BRANCH, limit=50)
        if c.metadata.get("run_id") == run_id and len(c.parents) > 1
    ]


def test_a_features_retry_after_its_side_effects_resumes_the_parent_run_and_publishes_once(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = lake.fresh_settings()
    pipeline_run = f"kfp-run-{uuid.uuid4().hex[:12]}"
    publish = featurefiles.publish_features
    lost_branch: list[str] = []

    def publish_then_die(repo: DataRepository, files: dict[str, bytes], data_commit: str, run_id: str) -> str:
        published = publish(repo, files, data_commit, run_id)
        lost_branch.append(f"features-{run_id[:12]}")
        repo.create_branch(lost_branch[0], source=FEATURES_BRANCH)  # the branch a lost pod never deleted
        raise PodLost(f"the pod was deleted after the merge ({published})")

    with monkeypatch.context() as patch:
        patch.setattr(featurefiles, "publish_features", publish_then_die)
        with pytest.raises(PodLost):
            begin_training_at(settings, lake.commit, seed=42, repo=lake.repo, pipeline_run=pipeline_run)
    (first_parent,) = _parent_runs(lake, settings.mlflow_experiment, pipeline_run)
    assert lake.repo.branch_exists(lost_branch[0])
    client = registry.client_for(settings)
    assert "features_uri" not in client.get_run(first_parent).data.tags  # the attempt did not finish

    retried = begin_training_at(settings, lake.commit, seed=42, repo=lake.repo, pipeline_run=pipeline_run)
    again = begin_training_at(settings, lake.commit, seed=42, repo=lake.repo, pipeline_run=pipeline_run)

    assert retried.parent_run_id == again.parent_run_id == first_parent
    assert _parent_runs(lake, settings.mlflow_experiment, pipeline_run) == [first_parent]
    (merge,) = _feature_publishes(lake, first_parent)
    assert retried.features_uri == again.features_uri
    assert retried.features_uri.startswith(f"lakefs://{settings.lakefs_repository}/{merge}/features/{lake.commit}/")
    assert client.get_run(first_parent).data.tags["features_uri"] == retried.features_uri
    assert not lake.repo.branch_exists(lost_branch[0])
    parent = client.get_run(first_parent)
    assert parent.data.params["seed"] == "42" and parent.data.params["train_rows"] == str(len(retried.splits["train"]))
    assert len(parent.inputs.dataset_inputs) == 2  # events and subscriptions, logged once

    # Another pipeline run on the same commit is another training run.
    other = begin_training_at(settings, lake.commit, seed=42, repo=lake.repo, pipeline_run=f"{pipeline_run}-other")
    assert other.parent_run_id != first_parent
