"""Where ingest puts what it derives from raw object names, whatever the names are."""

from __future__ import annotations

import pytest

from churnops.data.ingest import SOURCES_PREFIX, marker_path, partition_path
from churnops.data.versioning.base import check_path
from churnops.platform.storage import ObjectRef

HOUR = "activity/events/dt=2026-11-01/hr=05/"


def ref(name: str, generation: int = 7) -> ObjectRef:
    """An object of the raw bucket."""
    return ObjectRef(bucket="raw", name=name, generation=generation, size=1)


def test_partitions_are_keyed_by_the_whole_file_name() -> None:
    paths = {
        partition_path(ref(HOUR + name), "events")
        for name in ("web-000.jsonl.gz", "web-000.copy.jsonl.gz", "web-000.late.jsonl.gz")
    }
    assert paths == {
        f"events/dt=2026-11-01/hr=05/{name}.parquet"
        for name in ("web-000.jsonl.gz", "web-000.copy.jsonl.gz", "web-000.late.jsonl.gz")
    }


def test_markers_of_ordinary_names_keep_the_name() -> None:
    assert marker_path(ref(HOUR + "web-000.jsonl.gz")) == f"{SOURCES_PREFIX}/{HOUR}web-000.jsonl.gz/7.json"


@pytest.mark.parametrize("name", ["folder/", "a//b.jsonl.gz", "../x.jsonl.gz", "sub/./x.csv"])
def test_names_that_are_no_lake_path_get_a_digest_under_their_hour(name: str) -> None:
    path = marker_path(ref(HOUR + name))
    assert check_path(path) == path
    assert path.startswith(f"{SOURCES_PREFIX}/{HOUR}") and "/_unrecognised-" in path and path.endswith("/7.json")
    assert marker_path(ref(HOUR + name, 8)) != path and marker_path(ref(HOUR + name + "x")) != path
