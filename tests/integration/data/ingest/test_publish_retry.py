"""The pipeline's commit step retried after its side effect: the run is published once and the retry succeeds.

KFP retries a task whose pod died, with the same inputs. The commit step's side effects are the
merge into ``main`` and the deletion of the run branch; a retry after either finds the run's publish
on ``main`` (by its run id) instead of merging again or failing on the missing branch.
"""

from __future__ import annotations

import pytest

from churnops.data.ingest import ID_COLUMNS, publish_branch, publish_staged
from churnops.local import datagen
from tests.integration.data.ingest.conftest import START, IngestEnv
from tests.integration.data.ingest.lake_checks import assert_lake_matches_accounting, published_rows


def _staged(ingest_env: IngestEnv) -> tuple[str, dict[str, str]]:
    ingest_env.upload(datagen.generate(hours=1, customers=40, start=START, seed=11, anomaly_rate=0.0).objects)
    staged = ingest_env.ingest().stage_run(START, 0)
    assert staged.branch is not None
    return staged.branch, staged.metadata


def _publishes(ingest_env: IngestEnv, run_id: str) -> list[str]:
    """main's commits that carry the run's metadata and are merges (the publish itself)."""
    return [
        c.id for c in ingest_env.repo.log("main", limit=50) if c.metadata.get("run_id") == run_id and len(c.parents) > 1
    ]


def test_a_retry_after_the_merge_returns_the_publish_and_removes_the_branch(ingest_env: IngestEnv) -> None:
    branch, metadata = _staged(ingest_env)
    merged = publish_branch(ingest_env.repo, branch, metadata)  # the first attempt dies here, branch left
    assert ingest_env.repo.branch_exists(branch)

    retried = publish_staged(ingest_env.settings, branch, metadata, repo=ingest_env.reopen())
    assert retried == merged == ingest_env.repo.head("main")
    assert not ingest_env.repo.branch_exists(branch)
    assert _publishes(ingest_env, metadata["run_id"]) == [merged]


def test_a_retry_after_the_branch_is_deleted_returns_the_same_publish(ingest_env: IngestEnv) -> None:
    branch, metadata = _staged(ingest_env)
    first = publish_staged(ingest_env.settings, branch, metadata, repo=ingest_env.repo)  # its answer was lost
    again = publish_staged(ingest_env.settings, branch, metadata, repo=ingest_env.reopen())
    assert again == first and _publishes(ingest_env, metadata["run_id"]) == [first]


def test_a_branch_discarded_without_a_publish_is_named_as_such(ingest_env: IngestEnv) -> None:
    branch, metadata = _staged(ingest_env)
    ingest_env.repo.delete_branch(branch)  # what a merge conflict leaves
    with pytest.raises(ValueError, match="no publish of run .* on main: the branch was discarded"):
        publish_staged(ingest_env.settings, branch, metadata, repo=ingest_env.repo)


def test_a_stage_retried_after_it_staged_publishes_the_hour_once(ingest_env: IngestEnv) -> None:
    """The ingest step staged its branch and its answer was lost (its pod died): the retry of the same pipeline
    run deletes the lost attempt's branch and stages the same objects again, and publishing it puts each row on
    main once. Another pipeline run's staged branch of the same hour is left alone."""
    ingest_env.upload(datagen.generate(hours=1, customers=40, start=START, seed=12, anomaly_rate=0.0).objects)
    other = ingest_env.ingest().stage_run(START, 0, pipeline_run="kfp-run-other")
    lost = ingest_env.ingest().stage_run(START, 0, pipeline_run="kfp-run-1")
    assert ingest_env.repo.branch_exists(str(lost.branch))
    retried = ingest_env.ingest(repo=ingest_env.reopen()).stage_run(START, 0, pipeline_run="kfp-run-1")
    assert lost.branch and retried.branch and lost.branch != retried.branch
    assert retried.report.accounting() == lost.report.accounting()
    ingest_branches = [name for name in ingest_env.repo.branches() if name.startswith("ingest-")]
    assert sorted(ingest_branches) == sorted([str(other.branch), retried.branch])

    published = publish_staged(ingest_env.settings, retried.branch, retried.metadata, repo=ingest_env.repo)
    assert ingest_env.repo.head("main") == published
    rows = sum(len(published_rows(ingest_env.repo, kind)) for kind in ID_COLUMNS)
    assert rows == retried.report.accounting()["rows_published"] > 0
    assert_lake_matches_accounting(ingest_env.repo)
    assert ingest_env.ingest().stage_run(START, 0).branch is None  # nothing left to ingest
