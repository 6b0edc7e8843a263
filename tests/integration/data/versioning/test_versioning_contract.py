"""The behaviour every DataRepository backend shares (run against each backend in conftest.BACKENDS)."""

from __future__ import annotations

import io
import os
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnops.data.versioning.base import (
    AccessDenied,
    InvalidArgument,
    LakeUnavailable,
    MergeConflict,
    NotFoundError,
    UncommittedChangesError,
)
from churnops.data.versioning.uri import read_uri
from churnops.errors import ChurnopsError, ServiceUnavailable
from tests.support.versioning import Harness


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def test_ensure_is_idempotent(harness: Harness) -> None:
    head = harness.repo.head()
    harness.repo.ensure()
    assert harness.repo.head() == head
    assert harness.repo.resolve("main") == head
    assert harness.repo.log("main", limit=1)[0].id == head


def test_commit_ids_are_immutable_snapshots(harness: Harness) -> None:
    repo, branch, path = harness.repo, harness.branch("run"), harness.path("a.csv")
    repo.create_branch(branch)
    repo.put_objects(branch, {path: b"v1"})
    first = repo.commit(branch, "first", {"n": "1"})
    info_before = repo.commit_info(first)
    repo.put_objects(branch, {path: b"v2"})
    second = repo.commit(branch, "second", {"n": "2"})
    assert first and second and first != second
    assert repo.get_object(first, path) == b"v1"
    assert repo.get_object(second, path) == b"v2"
    assert repo.resolve(first) == first
    assert repo.commit_info(first) == info_before
    assert repo.commit_info(second).parents == [first]


def test_a_file_is_written_from_its_position_and_read_back_as_a_file(harness: Harness) -> None:
    repo, branch = harness.repo, harness.branch("run")
    big, small = harness.path("big.parquet"), harness.path("small.json")
    content = os.urandom(3 * 1024 * 1024 + 17)
    repo.create_branch(branch)
    with tempfile.TemporaryFile() as big_file, tempfile.TemporaryFile() as small_file:
        big_file.write(content)
        big_file.seek(0)
        small_file.write(b"skipped{}")
        small_file.seek(7)
        repo.put_objects(branch, {big: big_file, small: small_file})
    commit = repo.commit(branch, "from files", {})
    assert commit
    assert repo.get_object(commit, big) == content
    assert repo.get_object(branch, small) == b"{}"
    with repo.open_object(commit, big) as stored:
        assert stored.read() == content
    with pytest.raises(NotFoundError):
        repo.open_object(commit, harness.path("absent.parquet"))


def test_uncommitted_writes_are_visible_on_their_branch_only(harness: Harness) -> None:
    repo, branch, path = harness.repo, harness.branch("run"), harness.path("staged.csv")
    main_before = repo.head()
    repo.create_branch(branch)
    repo.put_objects(branch, {path: b"staged"})
    assert repo.get_object(branch, path) == b"staged"
    assert repo.list_paths(branch, harness.ns) == [path]
    assert repo.head(branch) == main_before  # staged writes are not a commit
    with pytest.raises(NotFoundError):
        repo.get_object("main", path)
    assert not repo.list_paths("main", harness.ns)


def test_committed_but_unmerged_changes_stay_off_main(harness: Harness) -> None:
    repo, branch, path = harness.repo, harness.branch("run"), harness.path("c.csv")
    main_before = repo.head()
    repo.create_branch(branch)
    repo.put_objects(branch, {path: b"committed"})
    commit = repo.commit(branch, "on branch", {})
    assert repo.head(branch) == commit
    assert repo.head() == main_before
    assert not repo.list_paths("main", harness.ns)


def test_staged_writes_survive_a_new_repository_object(harness: Harness) -> None:
    repo, branch, path = harness.repo, harness.branch("run"), harness.path("durable.csv")
    repo.create_branch(branch)
    repo.put_objects(branch, {path: b"written by process 1"})
    other = harness.reopen()
    assert other.get_object(branch, path) == b"written by process 1"
    commit = other.commit(branch, "committed by process 2", {})
    assert commit is not None
    assert repo.get_object(commit, path) == b"written by process 1"


def test_commit_with_nothing_staged_returns_none_and_creates_no_commit(harness: Harness) -> None:
    repo, branch = harness.repo, harness.branch("run")
    head = repo.create_branch(branch)
    assert repo.commit(branch, "nothing", {}) is None
    assert repo.head(branch) == head
    # Writing and then deleting the same new path leaves nothing to commit either.
    repo.put_objects(branch, {harness.path("tmp"): b"x"})
    repo.delete_objects(branch, [harness.path("tmp")])
    assert repo.commit(branch, "still nothing", {}) is None
    assert repo.head(branch) == head


def test_merge_publishes_all_changes_at_once(harness: Harness) -> None:
    repo = harness.repo
    setup, run = harness.branch("setup"), harness.branch("run")
    old = harness.path("old.csv")
    repo.create_branch(setup)
    repo.put_objects(setup, {old: b"old"})
    repo.commit(setup, "setup", {})
    main_before = repo.merge(setup)
    assert repo.get_object("main", old) == b"old"

    repo.create_branch(run)
    files = {harness.path(f"dt=2024-01-01/hr=0{i}/part.csv"): f"rows {i}".encode() for i in range(3)}
    repo.put_objects(run, files)
    repo.delete_objects(run, [old])
    repo.commit(run, "ingest", {"rows_in": "3"})
    assert repo.list_paths("main", harness.ns) == [old]  # nothing visible before the merge

    main_after = repo.merge(run, "main", message="publish", metadata={"run": run})
    assert main_after == repo.head() != main_before
    assert repo.list_paths("main", harness.ns) == sorted(files)
    for path, content in files.items():
        assert repo.get_object(main_after, path) == content
    assert repo.get_object(main_before, old) == b"old"


def test_merging_nothing_new_returns_the_head(harness: Harness) -> None:
    repo, branch = harness.repo, harness.branch("run")
    repo.create_branch(branch)
    head = repo.head()
    assert repo.merge(branch) == head
    repo.put_objects(branch, {harness.path("x"): b"x"})
    repo.commit(branch, "x", {})
    merged = repo.merge(branch)
    assert repo.merge(branch) == merged == repo.head()


def test_uncommitted_changes_on_the_source_are_not_merged(harness: Harness) -> None:
    repo, branch, path = harness.repo, harness.branch("run"), harness.path("staged-only")
    repo.create_branch(branch)
    repo.put_objects(branch, {path: b"not committed"})
    head = repo.head()
    assert repo.merge(branch) == head
    assert not repo.list_paths("main", harness.ns)


def test_conflicting_merge_raises_and_leaves_main_unchanged(harness: Harness) -> None:
    repo = harness.repo
    first, second = harness.branch("first"), harness.branch("second")
    shared, extra = harness.path("shared.csv"), harness.path("extra.csv")
    repo.create_branch(first)
    repo.create_branch(second)
    repo.put_objects(first, {shared: b"from first"})
    repo.commit(first, "first", {})
    repo.put_objects(second, {shared: b"from second", extra: b"extra"})
    repo.commit(second, "second", {})
    after_first = repo.merge(first)
    with pytest.raises(MergeConflict):
        repo.merge(second)
    assert repo.head() == after_first
    assert repo.get_object("main", shared) == b"from first"
    assert repo.list_paths("main", harness.ns) == [shared]


def test_same_content_on_both_branches_is_not_a_conflict(harness: Harness) -> None:
    repo = harness.repo
    first, second = harness.branch("first"), harness.branch("second")
    shared, only_second = harness.path("same.csv"), harness.path("only-second.csv")
    repo.create_branch(first)
    repo.create_branch(second)
    repo.put_objects(first, {shared: b"identical"})
    repo.commit(first, "first", {})
    repo.put_objects(second, {shared: b"identical", only_second: b"2"})
    repo.commit(second, "second", {})
    repo.merge(first)
    repo.merge(second)
    assert repo.list_paths("main", harness.ns) == sorted([shared, only_second])
    assert repo.get_object("main", shared) == b"identical"


def test_diverged_branches_touching_different_paths_both_merge(harness: Harness) -> None:
    repo = harness.repo
    first, second = harness.branch("first"), harness.branch("second")
    repo.create_branch(first)
    repo.create_branch(second)
    repo.put_objects(first, {harness.path("hr=01/a"): b"a"})
    repo.commit(first, "first", {})
    repo.put_objects(second, {harness.path("hr=02/b"): b"b"})
    repo.commit(second, "second", {})
    after_first = repo.merge(first)
    after_second = repo.merge(second)
    assert after_second != after_first
    assert repo.commit_info(after_second).parents[0] == after_first
    assert repo.list_paths("main", harness.ns) == [harness.path("hr=01/a"), harness.path("hr=02/b")]


def test_merge_with_an_expected_head_is_a_compare_and_set(harness: Harness) -> None:
    repo = harness.repo
    first, second = harness.branch("first"), harness.branch("second")
    start = repo.head()
    repo.create_branch(first, source=start)
    repo.create_branch(second, source=start)
    repo.put_objects(first, {harness.path("hr=01/a"): b"a"})
    repo.commit(first, "first", {})
    repo.put_objects(second, {harness.path("hr=02/b"): b"b"})  # a different path: no object conflict
    repo.commit(second, "second", {})
    after_first = repo.merge(first, expected_head=start)
    with pytest.raises(MergeConflict):
        repo.merge(second, expected_head=start)
    assert repo.head() == after_first
    assert repo.list_paths("main", harness.ns) == [harness.path("hr=01/a")]
    after_second = repo.merge(second, expected_head=after_first)
    assert repo.commit_info(after_second).parents[0] == after_first


def test_merge_into_a_branch_with_uncommitted_changes_is_refused(harness: Harness) -> None:
    repo = harness.repo
    source, target = harness.branch("source"), harness.branch("target")
    repo.create_branch(source)
    repo.create_branch(target)
    repo.put_objects(source, {harness.path("s"): b"s"})
    repo.commit(source, "s", {})
    repo.put_objects(target, {harness.path("t"): b"pending"})
    target_head = repo.head(target)
    with pytest.raises(UncommittedChangesError):
        repo.merge(source, into=target)
    assert repo.head(target) == target_head
    assert repo.get_object(target, harness.path("t")) == b"pending"


def test_message_and_metadata_round_trip_exactly(harness: Harness) -> None:
    repo, branch = harness.repo, harness.branch("run")
    metadata = {
        "sources": '[{"name": "activity/events/dt=2024-01-01/hr=00/a.jsonl.gz", "generation": "17"}]',
        "multi_line": "line 1\nline 2\n\nChurnops-Metadata: {}",
        "unicode": "Zürich – 東京",
        "empty": "",
        "rows_in": "1000",
    }
    message = "ingest run 42\n\nwith a body"
    repo.create_branch(branch)
    repo.put_objects(branch, {harness.path("m"): b"m"})
    commit = repo.commit(branch, message, metadata)
    assert commit is not None
    info = harness.reopen().commit_info(commit)
    assert (info.id, info.message, info.metadata) == (commit, message, metadata)
    merged = repo.merge(branch, message="publish run 42", metadata={"data_commit": commit})
    merged_info = repo.commit_info(merged)
    assert (merged_info.message, merged_info.metadata) == ("publish run 42", {"data_commit": commit})
    assert commit in merged_info.parents


def test_reading_by_commit_id_after_main_moved_returns_the_old_data(harness: Harness) -> None:
    repo, path = harness.repo, harness.path("features.csv")
    first, second = harness.branch("first"), harness.branch("second")
    repo.create_branch(first)
    repo.put_objects(first, {path: b"version 1"})
    repo.commit(first, "v1", {})
    pinned = repo.merge(first)
    repo.create_branch(second)
    repo.put_objects(second, {path: b"version 2", harness.path("new.csv"): b"new"})
    repo.commit(second, "v2", {})
    repo.merge(second)
    assert repo.get_object("main", path) == b"version 2"
    assert repo.get_object(pinned, path) == b"version 1"
    assert repo.list_paths(pinned, harness.ns) == [path]


def test_read_table_concatenates_every_parquet_file_under_the_prefix(harness: Harness) -> None:
    repo, branch = harness.repo, harness.branch("run")
    part1 = pa.table({"customer_token": ["a", "b"], "events": [1, 2]})
    part2 = pa.table({"customer_token": ["c"], "events": [3]})
    prefix = harness.path("events/")
    repo.create_branch(branch)
    repo.put_objects(
        branch,
        {
            f"{prefix}dt=2024-01-01/hr=00/part-0.parquet": _parquet(part1),
            f"{prefix}dt=2024-01-01/hr=01/part-0.parquet": _parquet(part2),
            f"{prefix}_SUCCESS": b"",
            harness.path("other/part-0.parquet"): _parquet(part1),
        },
    )
    commit = repo.commit(branch, "parquet", {})
    assert commit is not None
    table = repo.read_table(commit, prefix)
    assert table.column_names == ["customer_token", "events"]
    assert table.to_pydict() == {"customer_token": ["a", "b", "c"], "events": [1, 2, 3]}
    assert repo.read_table(commit, prefix, columns=["events"]).to_pydict() == {"events": [1, 2, 3]}
    with pytest.raises(NotFoundError):
        repo.read_table(commit, harness.path("missing/"))


def test_unknown_refs_and_paths_raise_not_found(harness: Harness) -> None:
    repo, missing = harness.repo, harness.branch("missing")
    with pytest.raises(NotFoundError):
        repo.head(missing)
    with pytest.raises(NotFoundError):
        repo.resolve(missing)
    with pytest.raises(NotFoundError):
        repo.get_object("main", harness.path("nope"))
    with pytest.raises(NotFoundError):
        repo.create_branch(harness.branch("from-missing"), source=missing)
    with pytest.raises(NotFoundError):
        repo.put_objects(missing, {harness.path("x"): b"x"})
    with pytest.raises(NotFoundError):
        repo.delete_branch(missing)
    assert not repo.branch_exists(missing)


def test_create_branch_on_an_existing_branch_leaves_it_in_place(harness: Harness) -> None:
    repo, branch, path = harness.repo, harness.branch("run"), harness.path("kept")
    repo.create_branch(branch)
    repo.put_objects(branch, {path: b"1"})
    commit = repo.commit(branch, "1", {})
    repo.put_objects(branch, {harness.path("staged"): b"2"})
    assert repo.create_branch(branch, source="main") == commit
    assert repo.head(branch) == commit
    assert repo.get_object(branch, harness.path("staged")) == b"2"


def test_delete_branch_drops_it_and_its_staged_writes(harness: Harness) -> None:
    repo, branch, path = harness.repo, harness.branch("run"), harness.path("gone")
    repo.create_branch(branch)
    repo.put_objects(branch, {path: b"staged"})
    assert repo.branch_exists(branch)
    repo.delete_branch(branch)
    assert not repo.branch_exists(branch)
    repo.create_branch(branch)
    with pytest.raises(NotFoundError):
        repo.get_object(branch, path)
    with pytest.raises(InvalidArgument):
        repo.delete_branch("main")


def test_log_is_newest_first_and_limited(harness: Harness) -> None:
    repo, branch = harness.repo, harness.branch("run")
    repo.create_branch(branch)
    commits = []
    for i in range(3):
        repo.put_objects(branch, {harness.path("n"): str(i).encode()})
        commits.append(repo.commit(branch, f"commit {i}", {"i": str(i)}))
    log = repo.log(branch, limit=2)
    assert [info.id for info in log] == [commits[2], commits[1]]
    assert [info.metadata for info in log] == [{"i": "2"}, {"i": "1"}]
    assert [info.message for info in repo.log(commits[0], limit=1)] == ["commit 0"]


def test_bad_input_gets_a_clear_error_and_writes_nothing(harness: Harness) -> None:
    repo, branch = harness.repo, harness.branch("run")
    repo.create_branch(branch)
    good = harness.path("good")
    for bad_path in ("/absolute", f"{harness.ns}//double", f"{harness.ns}/../escape", ""):
        with pytest.raises(InvalidArgument):
            repo.put_objects(branch, {good: b"ok", bad_path: b"x"})
    with pytest.raises(InvalidArgument):
        repo.put_objects(branch, {good: "not bytes"})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgument):
        repo.create_branch("bad/name")
    with pytest.raises(InvalidArgument):
        repo.commit(branch, "m", {"k": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgument):
        repo.log(branch, limit=0)
    assert not repo.list_paths(branch, harness.ns)


def test_failure_modes_cross_the_interface_as_domain_errors(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unreachable, unauthorized, conflict, not found: each a ChurnopsError of its own type, nothing written."""
    repo = harness.repo
    with pytest.raises(LakeUnavailable) as unreachable:
        harness.unreachable().ensure()
    assert isinstance(unreachable.value, ServiceUnavailable)

    refused = harness.branch("refused")
    with pytest.raises(AccessDenied):
        harness.denied(monkeypatch).create_branch(refused)
    monkeypatch.undo()
    assert not repo.branch_exists(refused)

    first, second, shared = harness.branch("first"), harness.branch("second"), harness.path("shared.csv")
    for branch in (first, second):
        repo.create_branch(branch)
        repo.put_objects(branch, {shared: branch.encode()})
        repo.commit(branch, branch, {})
    head = repo.merge(first)
    with pytest.raises(MergeConflict):
        repo.merge(second)
    assert repo.head() == head

    for missing in (
        lambda: repo.get_object("main", harness.path("absent")),
        lambda: repo.resolve("no-such-branch"),
        lambda: repo.read_table("main", harness.path("absent/")),
    ):
        with pytest.raises(NotFoundError):
            missing()
    for error in (LakeUnavailable, AccessDenied, MergeConflict, NotFoundError, InvalidArgument):
        assert issubclass(error, ChurnopsError)


def test_recorded_uris_read_back_what_they_name(harness: Harness) -> None:
    repo, branch = harness.repo, harness.branch("uris")
    name = getattr(repo, "repository", "churn-lake")  # the embedded lake answers to the configured name
    table = pa.table({"customer_token": ["a", "b"], "events": [1, 2]})
    prefix = harness.path("events/")
    repo.create_branch(branch)
    repo.put_objects(
        branch,
        {
            f"{prefix}dt=2024-01-01/part-0.parquet": _parquet(table),
            harness.path("schema.json"): b'{"label": "churned"}',
        },
    )
    commit = repo.commit(branch, "uris", {})
    assert commit is not None
    assert read_uri(repo, name, f"s3://{name}/{commit}/{prefix}").equals(table)
    assert read_uri(repo, name, f"lakefs://{name}/{commit}/{prefix.rstrip('/')}").equals(table)
    assert read_uri(repo, name, f"lakefs://{name}/{branch}/{harness.path('schema.json')}") == b'{"label": "churned"}'
    with pytest.raises(NotFoundError):
        read_uri(repo, name, f"s3://{name}/{commit}/{harness.path('missing.json')}")
    with pytest.raises(NotFoundError, match="this lake is"):
        read_uri(repo, name, f"s3://someone-else/{commit}/{prefix}")


def test_branches_lists_every_branch(harness: Harness) -> None:
    repo, first, second = harness.repo, harness.branch("b"), harness.branch("a")
    repo.create_branch(first)
    repo.create_branch(second)
    names = repo.branches()
    assert "main" in names and first in names and second in names
    assert names == sorted(names)
    repo.delete_branch(first)
    assert first not in repo.branches()
