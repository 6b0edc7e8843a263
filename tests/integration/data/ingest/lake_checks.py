"""Checks of what the lake really holds, against the markers and reports the ingest wrote."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from churnops.data.id_index import INDEX_PREFIX
from churnops.data.ingest import ID_COLUMNS, RAW_PREFIXES, SOURCES_PREFIX
from churnops.data.versioning import DataRepository


def latest_markers(repo: DataRepository, ref: str = "main") -> dict[str, dict]:
    """Per raw object name, the marker of its newest ingested generation."""
    markers: dict[str, dict] = {}
    for path in repo.list_paths(ref, f"{SOURCES_PREFIX}/"):
        marker = json.loads(repo.get_object(ref, path))
        if marker["name"] not in markers or marker["generation"] > markers[marker["name"]]["generation"]:
            markers[marker["name"]] = marker
    return markers


def published_rows(repo: DataRepository, kind: str, ref: str = "main") -> pd.DataFrame:
    """Every published row of ``kind`` at ``ref`` (empty when there is none)."""
    if not repo.list_paths(ref, f"{kind}/"):
        return pd.DataFrame(columns=[ID_COLUMNS[kind], "_source_object", "_source_generation"])
    return repo.read_table(ref, f"{kind}/").to_pandas()


def assert_lake_matches_accounting(repo: DataRepository, ref: str = "main") -> int:
    """The rows at ``ref`` are exactly what the newest marker of every object says it published.

    Every published row comes from the newest ingested generation of its object; each object
    contributes exactly its ``rows_published``; ids are unique per kind; the id index holds
    exactly the published ids. Returns the number of published rows.
    """
    markers = latest_markers(repo, ref)
    total = 0
    for kind, id_column in ID_COLUMNS.items():
        rows = published_rows(repo, kind, ref)
        assert rows[id_column].is_unique, f"duplicate {id_column} in the lake"
        counts = rows.groupby(["_source_object", "_source_generation"]).size().to_dict()
        expected = {
            (name, m["generation"]): m["rows_published"]
            for name, m in markers.items()
            if m["kind"] == kind and m["rows_published"]
        }
        assert counts == expected, f"{kind}: lake holds {counts}, markers claim {expected}"
        for name, marker in markers.items():
            if marker["kind"] == kind and marker["partition"]:
                assert marker["name"].startswith(RAW_PREFIXES[kind] + "/")
        index_paths = [p for p in repo.list_paths(ref, f"{INDEX_PREFIX}/{kind}/") if p.endswith(".parquet")]
        indexed: list[str] = []
        for path in index_paths:
            indexed.extend(pq.read_table(io.BytesIO(repo.get_object(ref, path)), columns=["id"]).column(0).to_pylist())
        assert sorted(indexed) == sorted(rows[id_column].astype(str)), f"the {kind} id index disagrees with the lake"
        total += len(rows)
    return total


def lake_texts(repo: DataRepository, ref: str = "main") -> list[str]:
    """Every string cell and column name of every parquet file, the text of every other file, and
    every commit message and metadata value reachable from ``ref``."""
    texts = []
    for path in repo.list_paths(ref):
        texts.append(path)
        blob = repo.get_object(ref, path)
        if path.endswith(".parquet"):
            frame = pq.read_table(io.BytesIO(blob)).to_pandas()
            texts.extend(str(column) for column in frame.columns)
            for column in frame.columns:
                texts.extend(str(v) for v in frame[column].dropna())
        else:
            texts.append(blob.decode("utf-8"))
    for commit in repo.log(ref, limit=1000):
        texts.append(commit.message)
        texts.extend(f"{key}={value}" for key, value in commit.metadata.items())
    return texts


class BeforeFirstMerge:
    """A repository handle that does something to the lake just before its first merge (as another writer would)."""

    def __init__(self, inner: DataRepository, meanwhile: Callable[[], None], compare: bool = True) -> None:
        self.inner = inner
        self.meanwhile = meanwhile
        self.compare = compare  # False: the first merge acts as if its compare had passed just before `meanwhile`
        self.merges = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def merge(
        self,
        source: str,
        into: str = "main",
        message: str = "",
        metadata: Mapping[str, str] | None = None,
        expected_head: str | None = None,
    ) -> str:
        """The real merge, after ``meanwhile`` the first time."""
        self.merges += 1
        if self.merges == 1:
            self.meanwhile()
            if not self.compare:
                expected_head = None
        return self.inner.merge(source, into, message, metadata, expected_head)
