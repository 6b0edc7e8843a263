"""De-duplication within a run: a row whose id an earlier row of the run has is dropped, whichever chunk or
object that earlier row came from, and the first row of each id stays. The run's ids are kept as hashes in
memory and as text on disk (``RunIds``): lookups are exact, whatever the hashes do."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from churnops.data import run_ids
from churnops.data.ingest import _drop_seen  # pylint: disable=protected-access  # the run's own step
from churnops.data.run_ids import HashedIds, RunIds, id_hashes

HOUR = pd.Timestamp("2026-11-01T05:00", tz="UTC")


def chunk(ids: list[str]) -> pd.DataFrame:
    """Valid rows as the contract check gives them: Arrow-backed ids, a column to follow the rows by."""
    return pd.DataFrame({"event_id": pd.Series(ids, dtype=pd.StringDtype("pyarrow")), "row": range(len(ids))})


def hours(count: int, hour: pd.Timestamp = HOUR) -> pa.Array:
    """``count`` record hours, all ``hour``."""
    return pa.array([hour] * count, type=run_ids.RECORD_HOUR_TYPE)


def add(seen: RunIds, source: str, ids: list[str]) -> None:
    """Add ``source``'s ``ids``, all of one record hour."""
    seen.add(source, pa.array(ids), hours(len(ids)))


@pytest.fixture(name="seen")
def _seen() -> Iterator[RunIds]:
    with RunIds() as ids:
        yield ids


def test_the_first_row_of_each_id_stays_and_later_ones_go(seen: RunIds) -> None:
    kept, ids, dropped = _drop_seen(chunk(["e1", "e2", "e1", "e3", "e2"]), "event_id", seen)
    assert kept["row"].tolist() == [0, 1, 3] and ids.ids.to_pylist() == ["e1", "e2", "e3"] and dropped == 2
    assert kept.index.equals(pd.RangeIndex(3))


def test_ids_published_by_earlier_chunks_and_objects_are_dropped(seen: RunIds) -> None:
    add(seen, "a", ["e1", "e9"])
    add(seen, "a", [])
    add(seen, "b", ["e4"])
    kept, ids, dropped = _drop_seen(chunk(["e4", "e5", "e1", "e5", "e6"]), "event_id", seen)
    assert kept["row"].tolist() == [1, 4] and ids.ids.to_pylist() == ["e5", "e6"] and dropped == 3


def test_a_chunk_of_new_ids_keeps_everything(seen: RunIds) -> None:
    for number in range(3):
        add(seen, f"object-{number}", [f"old-{value}" for value in range(1000)])
    kept, ids, dropped = _drop_seen(chunk(["new-1", "new-2"]), "event_id", seen)
    assert kept["row"].tolist() == [0, 1] and ids.ids.to_pylist() == ["new-1", "new-2"] and dropped == 0
    kept, ids, dropped = _drop_seen(chunk([]), "event_id", seen)
    assert kept.empty and len(ids) == 0 and dropped == 0


def test_lookups_are_exact_even_when_every_hash_is_equal(seen: RunIds, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_ids, "id_hashes", lambda ids: np.zeros(len(ids), dtype=np.uint64))
    add(seen, "a", ["e1", "e2"])
    add(seen, "b", ["e3"])
    assert seen.repeated(pa.array(["e3", "e4", "e1", "e5"])).tolist() == [True, False, True, False]


def test_a_rollback_forgets_what_an_object_added(seen: RunIds) -> None:
    add(seen, "a", ["e1"])
    mark = seen.mark()
    add(seen, "b", ["e2", "e3"])
    add(seen, "b", ["e4"])
    assert seen.repeated(pa.array(["e1", "e2", "e4"])).tolist() == [True, True, True] and len(seen) == 4
    seen.rollback(mark)
    assert seen.repeated(pa.array(["e1", "e2", "e4"])).tolist() == [True, False, False]
    assert [source for source, _ in seen.keys()] == ["a"] and len(seen) == 1


def test_the_ids_read_back_per_source_with_their_hours(seen: RunIds) -> None:
    later = HOUR + pd.Timedelta(hours=1)
    seen.add("a", pa.array(["e1", "e2"]), pa.array([HOUR, later], type=run_ids.RECORD_HOUR_TYPE))
    add(seen, "b", ["e3"])
    add(seen, "a", ["e4"])
    read = [(source, table.to_pydict()) for source, table in seen.keys("a")]
    assert read == [
        ("a", {"id": ["e1", "e2"], "hour": [HOUR, later]}),
        ("a", {"id": ["e4"], "hour": [HOUR]}),
    ]
    assert [source for source, _ in seen.keys()] == ["a", "b", "a"]


def test_an_id_hashes_the_same_whatever_it_is_hashed_with() -> None:
    values = ["c0ffee00-0000-4000-8000-000000000001", "short", "é-accented", "", "c0ffee00-0000-4000-8000-000000000002"]
    alone = [int(id_hashes(pa.array([value]))[0]) for value in values]
    together = id_hashes(pa.array(values)).tolist()
    sliced = id_hashes(pa.array(["x", *values]).slice(1)).tolist()
    assert alone == together == sliced
    assert len(set(together)) == len(values)
    assert id_hashes(pa.array(["a", None])).tolist()[1] == 0


def test_many_ids_over_many_chunks_are_found_exactly(seen: RunIds) -> None:
    chunks = [[f"{chunk:02d}-{number:05d}" for number in range(3000)] for chunk in range(12)]
    for number, ids in enumerate(chunks):
        add(seen, f"object-{number % 3}", ids)
    wanted = [ids[number * 250] for number, ids in enumerate(chunks)] + [f"{chunk:02d}-x" for chunk in range(12)]
    assert seen.repeated(pa.array(wanted)).tolist() == [True] * 12 + [False] * 12
    assert len(seen) == 36_000


def test_repeats_within_a_chunk_are_exact_even_when_every_hash_is_equal(
    seen: RunIds, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_ids, "id_hashes", lambda ids: np.zeros(len(ids), dtype=np.uint64))
    add(seen, "a", ["e9"])
    kept, ids, dropped = _drop_seen(chunk(["e1", "e2", "e1", "e9", "e3", "e2"]), "event_id", seen)
    assert kept["row"].tolist() == [0, 1, 4] and ids.ids.to_pylist() == ["e1", "e2", "e3"] and dropped == 3


@given(st.lists(st.sampled_from([f"e{number}" for number in range(12)]), max_size=40), st.integers(1, 8))
def test_repeats_and_filter_agree_with_a_set_whatever_the_hashes_collide(values: list[str], buckets: int) -> None:
    """Hashes folded into a few values (so most ids share one): the repeats are those of a set of the ids met
    so far, and the ids kept stay sorted by their hash."""
    plain = id_hashes
    folded = np.uint64(buckets)

    def few(ids: pa.Array) -> np.ndarray:
        return plain(ids) % folded

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_ids, "id_hashes", few)
        hashed = HashedIds.of(pa.array(values))
    met: set[str] = set()
    expected = []
    for value in values:
        expected.append(value in met)
        met.add(value)
    repeats = hashed.repeats()
    assert repeats.tolist() == expected
    kept = hashed.filter(~repeats)
    assert kept.ids.to_pylist() == list(dict.fromkeys(values))
    assert kept.hashes.tolist() == few(kept.ids).tolist()
    assert np.all(np.diff(kept.hashes[kept.order].astype(np.int64)) >= 0)


def test_ids_kept_without_lookups_are_read_back_but_never_looked_up() -> None:
    with RunIds(lookups=False) as written:
        written.add("a", pa.array(["e1", "e2"]), hours(2))
        written.add("a", pa.array([]), hours(0))
        assert [(source, table.column("id").to_pylist()) for source, table in written.keys()] == [("a", ["e1", "e2"])]
        assert len(written) == 2
        with pytest.raises(TypeError, match="without lookups"):
            written.repeated(pa.array(["e1"]))
