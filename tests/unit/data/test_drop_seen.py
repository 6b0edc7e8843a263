"""De-duplication within a run: a row whose id an earlier row of the run has is dropped, whichever chunk or
object that earlier row came from, and the first row of each id stays."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from churnops.data.ingest import _drop_seen  # pylint: disable=protected-access  # the run's own step


def chunk(ids: list[str]) -> pd.DataFrame:
    """Valid rows as the contract check gives them: Arrow-backed ids, a column to follow the rows by."""
    return pd.DataFrame({"event_id": pd.Series(ids, dtype=pd.StringDtype("pyarrow")), "row": range(len(ids))})


def test_the_first_row_of_each_id_stays_and_later_ones_go() -> None:
    kept, ids, dropped = _drop_seen(chunk(["e1", "e2", "e1", "e3", "e2"]), "event_id", [])
    assert kept["row"].tolist() == [0, 1, 3] and ids.to_pylist() == ["e1", "e2", "e3"] and dropped == 2
    assert kept.index.equals(pd.RangeIndex(3))


def test_ids_published_by_earlier_chunks_and_objects_are_dropped() -> None:
    earlier = [pa.array(["e1", "e9"]), pa.array([], type=pa.string()), pa.array(["e4"])]
    kept, ids, dropped = _drop_seen(chunk(["e4", "e5", "e1", "e5", "e6"]), "event_id", earlier)
    assert kept["row"].tolist() == [1, 4] and ids.to_pylist() == ["e5", "e6"] and dropped == 3


def test_a_chunk_of_new_ids_keeps_everything() -> None:
    earlier = [pa.array([f"old-{number}" for number in range(1000)]) for _ in range(3)]
    kept, ids, dropped = _drop_seen(chunk(["new-1", "new-2"]), "event_id", earlier)
    assert kept["row"].tolist() == [0, 1] and ids.to_pylist() == ["new-1", "new-2"] and dropped == 0
    kept, ids, dropped = _drop_seen(chunk([]), "event_id", earlier)
    assert kept.empty and len(ids) == 0 and dropped == 0
