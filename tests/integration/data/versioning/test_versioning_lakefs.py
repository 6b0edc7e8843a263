"""lakeFS backend behaviour beyond the shared contract: retries, lost answers, refusals, paging."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from churnops.data.versioning import lakefs as lakefs_module
from churnops.data.versioning.base import LakeUnavailable, NotFoundError, VersioningError
from churnops.data.versioning.lakefs import LakeFSRepository
from tests.support.lakefs_double import LakeFSDouble


@pytest.fixture(name="double")
def double_fixture(lakefs_double: LakeFSDouble) -> Iterator[LakeFSDouble]:
    """The session's double; every test must leave no spec violations behind."""
    yield lakefs_double
    errors = list(lakefs_double.validation_errors)
    assert not errors, f"requests or responses outside the lakeFS API spec: {errors}"


def _repo(double: LakeFSDouble, **kwargs: object) -> LakeFSRepository:
    name = f"churn-{uuid.uuid4().hex[:12]}"
    options: dict = {
        "endpoint": double.url,
        "repository": name,
        "access_key_id": double.access_key_id,
        "secret_access_key": double.secret_access_key,
        "storage_namespace": f"local://churnops-tests/{name}",
        "backoff_seconds": 0.01,
    }
    options.update(kwargs)
    repo = LakeFSRepository(**options)  # type: ignore[arg-type]
    repo.ensure()
    return repo


def test_transient_errors_are_retried(double: LakeFSDouble) -> None:
    repo = _repo(double)
    repo.create_branch("run")
    double.fail_next(503, 502, 429)
    repo.put_objects("run", {"a.csv": b"a"})
    assert [status for _, path, status in double.calls[-4:]] == [503, 502, 429, 201]
    assert repo.get_object("run", "a.csv") == b"a"


def test_persistent_errors_surface_after_the_retries(double: LakeFSDouble) -> None:
    repo = _repo(double, retries=2)
    double.fail_next(500, 500, 500)
    with pytest.raises(LakeUnavailable, match="answered 500 3 time"):
        repo.head("main")
    assert repo.head("main")  # the double is healthy again


def test_a_commit_whose_answer_was_lost_is_recognised_on_retry(double: LakeFSDouble) -> None:
    repo = _repo(double)
    repo.create_branch("run")
    repo.put_objects("run", {"a.csv": b"a"})
    double.lose_next_answer("commit", 503)
    commit = repo.commit("run", "ingest", {"rows_in": "1"})
    assert commit is not None and commit == repo.head("run")
    assert repo.commit_info(commit).metadata == {"rows_in": "1"}
    assert repo.commit("run", "ingest", {"rows_in": "1"}) is None  # a real "nothing to commit" stays None


def test_a_merge_whose_answer_was_lost_returns_the_merged_head(double: LakeFSDouble) -> None:
    repo = _repo(double)
    repo.create_branch("run")
    repo.put_objects("run", {"a.csv": b"a"})
    repo.commit("run", "ingest", {})
    double.lose_next_answer("merge", 502)
    merged = repo.merge("run")
    assert merged == repo.head("main")
    assert repo.get_object(merged, "a.csv") == b"a"


def test_an_unexpected_refusal_is_a_versioning_error_with_the_answer(double: LakeFSDouble) -> None:
    repo = _repo(double)
    double.fail_next(400)
    with pytest.raises(VersioningError, match="400"):
        repo.head("main")


def test_ensure_without_storage_namespace_explains_the_missing_repository(double: LakeFSDouble) -> None:
    repo = LakeFSRepository(double.url, "churn-absent", double.access_key_id, double.secret_access_key)
    with pytest.raises(NotFoundError, match="storage namespace"):
        repo.ensure()


def test_listing_and_log_follow_pagination(double: LakeFSDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lakefs_module, "_PAGE", 2)
    repo = _repo(double)
    repo.create_branch("run")
    files = {f"p/{i}.csv": b"x" for i in range(5)}
    repo.put_objects("run", files)
    commits = [repo.commit("run", "all", {})]
    for i in range(3):
        repo.delete_objects("run", [f"p/{i}.csv"])
        commits.append(repo.commit("run", f"drop {i}", {}))
    assert repo.list_paths(commits[0], "p/") == sorted(files)
    assert [info.id for info in repo.log("run", limit=5)] == list(reversed(commits)) + [repo.log("main")[0].id]
    assert len(repo.log("run", limit=3)) == 3


def test_endpoint_may_be_given_with_or_without_the_api_suffix(double: LakeFSDouble) -> None:
    repo = _repo(double)
    bare = double.url.removesuffix("/api/v1")
    other = LakeFSRepository(bare, repo.repository, double.access_key_id, double.secret_access_key)
    assert other.head("main") == repo.head("main")


def test_retention_is_set_as_the_repositorys_gc_rules(double: LakeFSDouble) -> None:
    repo = _repo(double)
    assert repo.retention_days() is None
    repo.set_retention(7)
    assert repo.retention_days() == 7
    assert double.gc_rules(repo.repository) == {"default_retention_days": 7, "branches": []}
