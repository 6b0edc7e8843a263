"""The id index's lookups: an id is found in the segments of its record hour, whichever run wrote it, except
when its object is being superseded; a lookup reads only the hours it asks about, and its answer is exact
whatever the ids' hashes do (only 8 bytes of each id are kept in memory, the rest read back to confirm)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnops.data import id_index, run_ids, schema
from churnops.data.id_index import IdIndex
from churnops.data.run_ids import RECORD_HOUR_TYPE, RunIds
from churnops.data.versioning.base import close_files
from churnops.data.versioning.embedded import EmbeddedRepository

KIND = schema.EVENTS
HOUR = pd.Timestamp("2026-11-01T05:00", tz="UTC")
NEXT = HOUR + pd.Timedelta(hours=1)


def index_of(repo: EmbeddedRepository, ref: str = "main") -> IdIndex:
    """The events index as of ``ref``."""
    return IdIndex(repo, ref, KIND, "event_id", schema.RECORD_TIME_COLUMNS[KIND])


def publish(repo: EmbeddedRepository, run_id: str, ids: dict[tuple[str, pd.Timestamp], list[str]]) -> None:
    """Publish one run's segments: ``ids`` per (source object, record hour)."""
    branch = f"run-{run_id}"
    repo.create_branch(branch)
    repo.put_objects(branch, {id_index.layout_path(KIND): json.dumps(id_index.LAYOUT).encode()})
    with RunIds() as added, index_of(repo, branch) as index:
        for (source, hour), values in ids.items():
            added.add(source, pa.array(values), pa.array([hour] * len(values), type=RECORD_HOUR_TYPE))
        files, _ = index.changes(run_id, added, set(), [])
    repo.put_objects(branch, files)
    close_files(files)
    repo.commit(branch, f"index {run_id}", {})
    repo.merge(branch, into="main", message=f"publish {run_id}", metadata={})
    repo.delete_branch(branch)


def wanted(*pairs: tuple[str, pd.Timestamp]) -> pd.DataFrame:
    """A lookup: ids with their record hours."""
    return id_index.keys(pd.Series([i for i, _ in pairs]), pd.Series([h for _, h in pairs]))


@pytest.fixture(name="repo")
def fixture_repo(tmp_path: Path) -> Iterator[EmbeddedRepository]:
    """A lake whose index holds two runs' ids: ``e0``-``e2999`` of hour 05 (two objects of two runs) and
    ``n1``, ``n2`` of hour 06."""
    repo = EmbeddedRepository(tmp_path / "lake")
    repo.ensure()
    publish(repo, "first", {("web-000", HOUR): [f"e{number}" for number in range(2000)], ("web-000", NEXT): ["n1"]})
    publish(
        repo, "second", {("app-000", HOUR): [f"e{number}" for number in range(2000, 3000)], ("app-000", NEXT): ["n2"]}
    )
    yield repo


def test_ids_are_found_in_their_record_hour_from_every_run(repo: EmbeddedRepository) -> None:
    with index_of(repo) as index:
        found = index.published(wanted(("e5", HOUR), ("e2500", HOUR), ("n1", NEXT), ("x", HOUR), ("e7", NEXT)), set())
        assert found == {"e5", "e2500", "n1"}  # e7 was published for hour 05, not 06
        assert index.segments_read == 4 and index.ids_read == 3002


def test_a_lookup_reads_only_the_hours_it_asks_about(repo: EmbeddedRepository) -> None:
    with index_of(repo) as index:
        assert index.published(wanted(("n2", NEXT)), set()) == {"n2"}
        assert index.segments_read == 2 and index.ids_read == 2


def test_ids_of_an_object_being_superseded_do_not_count(repo: EmbeddedRepository) -> None:
    with index_of(repo) as index:
        assert index.published(wanted(("e5", HOUR), ("e2500", HOUR)), {"app-000"}) == {"e5"}


def test_the_answer_is_exact_when_every_hash_is_equal(
    repo: EmbeddedRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_ids, "id_hashes", lambda ids: np.zeros(len(ids), dtype=np.uint64))
    with index_of(repo) as index:
        found = index.published(wanted(("e1999", HOUR), ("e2000", HOUR), ("e3000", HOUR), ("n1", HOUR)), {"web-000"})
        assert found == {"e2000"}


def test_superseded_objects_ids_leave_the_segments_that_hold_them_and_only_those(repo: EmbeddedRepository) -> None:
    """A run superseding an object rewrites the segments of the hours its partition held without its ids (a
    segment shared with another object keeps that object's ids, one left with none is deleted) and leaves
    every other segment as it was; the lookups then no longer find its ids."""
    publish(repo, "third", {("web-001", HOUR): ["w1", "w2"], ("app-001", HOUR): ["a1"], ("app-001", NEXT): ["a2"]})
    with RunIds() as nothing, index_of(repo) as index:
        files, deleted = index.changes("fourth", nothing, {"web-000", "app-001"}, [HOUR])
    try:
        hour_segment = id_index.segment_path(KIND, HOUR.to_pydatetime(), "first")
        assert deleted == [hour_segment]  # only web-000's ids
        shared = id_index.segment_path(KIND, HOUR.to_pydatetime(), "third")
        assert sorted(files) == [shared]  # app-000's segment ("second") and the hour 06 ones untouched
        content = files[shared]
        rewritten = pq.read_table(pa.BufferReader(content) if isinstance(content, bytes) else content)
        assert sorted(rewritten.column("id").to_pylist()) == ["w1", "w2"]
        assert set(rewritten.column("source").to_pylist()) == {"web-001"}
    finally:
        close_files(files)
