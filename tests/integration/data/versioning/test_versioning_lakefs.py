"""lakeFS backend behaviour beyond the shared contract: retries, lost answers, refusals, paging."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import tracemalloc
import uuid
from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import IO, Any

import pytest
import urllib3

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


class _Unseekable(io.RawIOBase):
    """A binary stream that cannot seek (a pipe, a socket)."""

    def __init__(self, content: bytes) -> None:
        self._content = io.BytesIO(content)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._content.readinto(buffer)


def test_objects_larger_than_a_block_round_trip_exactly(double: LakeFSDouble, tmp_path: Path) -> None:
    repo = _repo(double)
    repo.create_branch("run")
    content = os.urandom(2 * lakefs_module.BLOCK_SIZE + 12345)
    upload = tmp_path / "upload"
    upload.write_bytes(b"head:" + content)
    with upload.open("rb") as file:
        file.seek(5)  # a file is written from its position
        double.fail_next(503)  # the retry sends the file again from that position
        repo.put_objects(
            "run", {"big.bin": file, "piped.bin": io.BufferedReader(_Unseekable(content)), "bytes.bin": content}
        )
    assert [status for _, _, status in double.calls[-4:]] == [503, 201, 201, 201]
    for path in ("big.bin", "piped.bin", "bytes.bin"):
        with repo.open_object("run", path) as opened:
            assert opened.read() == content
        assert repo.get_object("run", path) == content
        assert repo.physical_address("run", path).endswith(hashlib.sha256(content).hexdigest())


def test_a_read_broken_off_partway_is_retried_from_the_start(
    double: LakeFSDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(double)
    repo.create_branch("run")
    content = os.urandom(3 * lakefs_module.BLOCK_SIZE)
    repo.put_objects("run", {"big.bin": content})
    stream = urllib3.HTTPResponse.stream
    broken: list[bool] = []

    def break_off_once(response: urllib3.HTTPResponse, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        blocks = stream(response, *args, **kwargs)
        if not broken:
            broken.append(True)
            yield next(blocks, b"")
            raise urllib3.exceptions.ProtocolError("connection broken off")
        yield from blocks

    monkeypatch.setattr(urllib3.HTTPResponse, "stream", break_off_once)
    with repo.open_object("run", "big.bin") as opened:
        assert opened.read() == content  # the retry wrote the object from its start, once
    assert broken


class _Generated(io.RawIOBase):
    """``size`` bytes of a repeating pseudo-random pattern, generated as they are read (never held whole)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._position = 0
        self._pattern = hashlib.sha256(b"pattern").digest() * 40_009  # ~1.2 MiB, not a multiple of any block

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._position = (0, self._position, self.size)[whence] + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        start = self._position % len(self._pattern)
        count = min(len(buffer), self.size - self._position, len(self._pattern) - start)
        if count <= 0:
            return 0
        buffer[:count] = self._pattern[start : start + count]
        self._position += count
        return count


def _sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while block := stream.read(1 << 20):
        digest.update(block)
    return digest.hexdigest()


def _serve_double(address: Queue[Any], stop: Event) -> None:
    """Run a lakeFS double in this (separate) process until ``stop``; its url and keys go to ``address``, then
    its validation errors."""
    with LakeFSDouble() as served:
        address.put((served.url, served.access_key_id, served.secret_access_key))
        stop.wait(60)
        address.put(list(served.validation_errors))


def test_large_objects_are_uploaded_and_read_in_bounded_memory() -> None:
    """A 200 MB object goes up and comes back with the Python heap's peak a few MiB above its start (the
    double, which keeps objects in memory, runs in its own process so that only the client is measured)."""
    context = multiprocessing.get_context("spawn")
    address: Queue[Any] = context.Queue()
    stop = context.Event()
    server = context.Process(target=_serve_double, args=(address, stop), daemon=True)
    server.start()
    tracing = tracemalloc.is_tracing()
    try:
        url, key_id, secret = address.get(timeout=60)
        name = f"churn-{uuid.uuid4().hex[:12]}"
        repo = LakeFSRepository(url, name, key_id, secret, storage_namespace=f"local://churnops-tests/{name}")
        repo.ensure()
        repo.create_branch("run")
        size = 200 * 10**6
        if not tracing:
            tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        repo.put_objects("run", {"big.bin": io.BufferedReader(_Generated(size))})
        upload_peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.reset_peak()
        with repo.open_object("run", "big.bin") as opened:
            download_peak = tracemalloc.get_traced_memory()[1] - base
            assert _sha256(opened) == _sha256(io.BufferedReader(_Generated(size)))
    finally:
        if not tracing:
            tracemalloc.stop()
        stop.set()
    errors = address.get(timeout=30)
    server.join(timeout=30)
    assert not errors, f"requests or responses outside the lakeFS API spec: {errors}"
    limit = 16 * 2**20  # the object is 190.7 MiB; a block is 1 MiB
    assert upload_peak < limit, f"uploading 200 MB peaked {upload_peak / 2**20:.1f} MiB above the start"
    assert download_peak < limit, f"reading 200 MB peaked {download_peak / 2**20:.1f} MiB above the start"
