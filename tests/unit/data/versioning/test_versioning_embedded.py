"""The embedded (pygit2) backend: how it stores things in git, and what the contract tests cannot see."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from pathlib import Path

import pygit2
import pytest

from churnops.data.versioning.base import MergeConflict, NotFoundError
from churnops.data.versioning.embedded import EmbeddedRepository, decode_message, encode_message
from churnops.errors import VersioningError


@pytest.fixture(name="repo")
def repo_fixture(tmp_path: Path) -> EmbeddedRepository:
    """A fresh, ensured embedded repository."""
    repo = EmbeddedRepository(tmp_path / "lake")
    repo.ensure()
    return repo


def test_staged_writes_are_a_git_ref_until_committed(repo: EmbeddedRepository) -> None:
    repo.create_branch("run")
    repo.put_objects("run", {"a/b.csv": b"1"})
    git = pygit2.Repository(str(repo.path))
    staged = git.references.get("refs/churnops-staging/run")
    assert staged is not None
    assert git[staged.target].peel(pygit2.Commit).tree["a/b.csv"].data == b"1"
    commit = repo.commit("run", "c", {})
    assert git.references.get("refs/churnops-staging/run") is None
    assert str(git.references["refs/heads/run"].target) == commit


def test_metadata_is_a_json_trailer_in_the_git_message(repo: EmbeddedRepository) -> None:
    repo.create_branch("run")
    repo.put_objects("run", {"x": b"x"})
    commit = repo.commit("run", "ingest", {"rows_in": "3"})
    raw = pygit2.Repository(str(repo.path))[commit].peel(pygit2.Commit).message
    assert raw == 'ingest\n\nChurnops-Metadata: {"rows_in":"3"}\n'


@pytest.mark.parametrize(
    "message",
    ["", "one line", 'body\n\nChurnops-Metadata: {"fake": "1"}', "trailing newlines\n\n", "\n"],
)
def test_message_encoding_round_trips(message: str) -> None:
    metadata = {"a": "1", "nested": '{"x": [1, 2]}', "nl": "\n"}
    assert decode_message(encode_message(message, metadata)) == (message, metadata)


def test_plain_git_messages_decode_without_metadata() -> None:
    assert decode_message("written by git\n") == ("written by git\n", {})


def test_large_blobs_are_standard_git_objects(repo: EmbeddedRepository) -> None:
    data = os.urandom(3 * 1024 * 1024)
    repo.create_branch("run")
    repo.put_objects("run", {"big.parquet": data})
    commit = repo.commit("run", "big", {})
    git = pygit2.Repository(str(repo.path))
    entry = git[commit].peel(pygit2.Commit).tree["big.parquet"]
    assert entry.id == pygit2.hash(data)
    assert git[entry.id].data == data
    assert EmbeddedRepository(repo.path).get_object(commit, "big.parquet") == data


def test_a_large_file_is_the_same_git_object_as_its_bytes_and_an_altered_one_is_not_opened(
    repo: EmbeddedRepository,
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    repo.create_branch("run")
    with tempfile.TemporaryFile() as file:
        file.write(data)
        file.seek(0)
        repo.put_objects("run", {"big.parquet": file})
    commit = repo.commit("run", "big", {})
    oid = str(pygit2.hash(data))
    assert str(pygit2.Repository(str(repo.path))[commit].peel(pygit2.Commit).tree["big.parquet"].id) == oid
    with repo.open_object(commit, "big.parquet") as stored:
        assert stored.read() == data
    loose = repo.path / "objects" / oid[:2] / oid[2:]
    stored_bytes = loose.read_bytes()
    loose.chmod(0o644)
    loose.write_bytes(stored_bytes[:1000] + bytes(100) + stored_bytes[1100:])  # a part of the content overwritten
    with pytest.raises(VersioningError, match="corrupt"):
        repo.open_object(commit, "big.parquet")


def test_a_large_blob_reads_back_from_a_pack_and_an_altered_one_is_refused(repo: EmbeddedRepository) -> None:
    data = os.urandom(3 * 1024 * 1024)
    repo.create_branch("run")
    repo.put_objects("run", {"big.parquet": data, "other.parquet": os.urandom(2 * 1024 * 1024)})
    commit = repo.commit("run", "big", {})
    git = pygit2.Repository(str(repo.path))
    oid = str(pygit2.hash(data))
    loose = repo.path / "objects" / oid[:2] / oid[2:]
    stored = loose.read_bytes()
    loose.chmod(0o644)
    loose.write_bytes(stored[:-100] + bytes(100))  # the end of the stream (and its checksum) overwritten
    with pytest.raises(VersioningError, match="corrupt"):
        repo.get_object(commit, "big.parquet")
    other = str(git[commit].peel(pygit2.Commit).tree["other.parquet"].id)
    loose.write_bytes((repo.path / "objects" / other[:2] / other[2:]).read_bytes())  # another object's bytes
    with pytest.raises(VersioningError, match="does not match its id"):
        repo.get_object(commit, "big.parquet")
    loose.write_bytes(stored)
    git.pack()  # as `git gc` would: every object into a pack file
    loose.unlink()
    assert repo.get_object(commit, "big.parquet") == data


def test_text_files_changed_on_both_sides_conflict_even_on_different_lines(repo: EmbeddedRepository) -> None:
    repo.create_branch("setup")
    repo.put_objects("setup", {"t.csv": b"a\nb\nc\nd\ne\nf\n"})
    repo.commit("setup", "setup", {})
    repo.merge("setup")
    repo.create_branch("first")
    repo.create_branch("second")
    repo.put_objects("first", {"t.csv": b"A\nb\nc\nd\ne\nf\n"})
    repo.commit("first", "first", {})
    repo.put_objects("second", {"t.csv": b"a\nb\nc\nd\ne\nF\n"})
    repo.commit("second", "second", {})
    repo.merge("first")
    with pytest.raises(MergeConflict, match="t.csv"):
        repo.merge("second")


def test_abbreviated_commit_ids_resolve(repo: EmbeddedRepository) -> None:
    head = repo.head()
    assert repo.resolve(head[:10]) == head
    with pytest.raises(NotFoundError):
        repo.resolve("0000000000")


def test_a_path_cannot_be_both_a_file_and_a_directory(repo: EmbeddedRepository) -> None:
    repo.create_branch("run")
    repo.put_objects("run", {"a": b"file"})
    with pytest.raises(ValueError, match="both a file and a directory"):
        repo.put_objects("run", {"a/b": b"nested"})
    assert repo.get_object("run", "a") == b"file"


def test_using_a_repository_before_ensure_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="ensure"):
        EmbeddedRepository(tmp_path / "absent").head()


def test_ensure_refuses_a_foreign_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(ValueError, match="not a git repository"):
        EmbeddedRepository(tmp_path).ensure()
    assert (tmp_path / "data.txt").read_text(encoding="utf-8") == "keep me"


def _publish_runs(path: str, worker: int, runs: int) -> None:
    """Several ingest runs of one worker process: branch, write, commit, merge."""
    repo = EmbeddedRepository(path)
    for run in range(runs):
        branch = f"w{worker}-r{run}"
        repo.create_branch(branch)
        repo.put_objects(branch, {f"hr={worker}/part-{run}.csv": f"{worker}:{run}".encode()})
        repo.commit(branch, f"run {branch}", {"worker": str(worker)})
        repo.merge(branch)
        repo.delete_branch(branch)


def test_concurrent_processes_merging_lose_no_update(repo: EmbeddedRepository) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_publish_runs, args=(str(repo.path), worker, 4)) for worker in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
    assert [process.exitcode for process in workers] == [0, 0, 0]
    expected = sorted(f"hr={worker}/part-{run}.csv" for worker in range(3) for run in range(4))
    assert repo.list_paths("main") == expected
    for path in expected:
        worker, run = path.removeprefix("hr=").removesuffix(".csv").split("/part-")
        assert repo.get_object("main", path) == f"{worker}:{run}".encode()


def _all_blob_data(path: Path) -> list[bytes]:
    """The content of every blob in the object database, reachable or not."""
    git = pygit2.Repository(str(path))
    return [git.odb.read(oid)[1] for oid in git.odb if git.odb.read(oid)[0] == pygit2.enums.ObjectType.BLOB]


def test_rewrite_history_removes_content_from_every_commit_and_the_object_store(repo: EmbeddedRepository) -> None:
    repo.create_branch("run")
    repo.put_objects("run", {"t/a.csv": b"keep\nsecret-1\n", "t/b.csv": b"secret-2\n", "u/c.csv": b"other\n"})
    first = repo.commit("run", "first", {"n": "1"})
    repo.merge("run", into="main", message="publish", metadata={"n": "1"})
    repo.put_objects("run", {"t/a.csv": b"keep\n", "t/d.csv": b"secret-3\n"})
    repo.commit("run", "second", {"n": "2"})
    repo.create_branch("staged")
    repo.put_objects("staged", {"s.csv": b"secret-4\n"})  # uncommitted writes are history too

    def rewrite(_path: str, content: bytes) -> bytes | None:
        kept = b"".join(line for line in content.splitlines(keepends=True) if not line.startswith(b"secret"))
        return kept or None

    mapping = repo.rewrite_history(rewrite)
    assert first in mapping and repo.resolve(mapping[first]) == mapping[first]
    with pytest.raises(NotFoundError):
        repo.resolve(first)  # the old commit is gone
    info = repo.commit_info(mapping[first])
    assert (info.message, info.metadata) == ("first", {"n": "1"})
    assert repo.get_object(mapping[first], "t/a.csv") == b"keep\n"
    assert repo.list_paths(mapping[first]) == ["t/a.csv", "u/c.csv"]  # a file left empty is deleted
    assert repo.list_paths("run") == ["t/a.csv", "u/c.csv"]
    assert repo.list_paths("staged") == repo.list_paths("main") == ["t/a.csv", "u/c.csv"]
    assert repo.commit_info("main").parents[1] == mapping[first]  # parents are mapped
    assert not [data for data in _all_blob_data(repo.path) if b"secret" in data]
    assert repo.rewrite_history(rewrite) == {}  # nothing left to change


def test_prune_unpacks_packs_and_deletes_what_no_ref_reaches(repo: EmbeddedRepository, tmp_path: Path) -> None:
    repo.create_branch("run")
    repo.put_objects("run", {"a.csv": b"secret in a pack\n"})
    repo.commit("run", "c", {})
    git = pygit2.Repository(str(repo.path))
    git.pack()  # as `git gc` would: every object into a pack file
    for loose in (repo.path / "objects").glob("[0-9a-f][0-9a-f]/*"):
        loose.unlink()
    assert list((repo.path / "objects" / "pack").glob("*.pack"))
    repo.delete_branch("run")
    repo.rewrite_history(lambda _path, content: content)
    assert not list((repo.path / "objects" / "pack").glob("*.pack"))
    assert not [data for data in _all_blob_data(repo.path) if b"secret" in data]
    assert repo.list_paths("main") == []  # what refs reach is still readable
    del tmp_path
