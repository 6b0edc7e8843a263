"""The aggregates backfill pipeline with kfp.local on an embedded lake holding an events partition without aggregates.

Each task runs as a subprocess of this interpreter (kfp.local's SubprocessRunner) and reads the ``CHURNOPS_*``
environment, as the pods read the settings ConfigMap; the checks read the lake afterwards, not only the outputs.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnops.data import aggregates, backfill, schema
from churnops.data.versioning import DataRepository, open_repository
from churnops.platform.settings import Settings
from pipelines.local import run_local

PARTITION = "events/dt=2026-11-01/hr=05/web-005.jsonl.gz.parquet"
HOUR_NS = 3_600_000_000_000
START_NS = 1_793_509_200_000_000_000  # 2026-11-01T05:00Z


def _partition() -> tuple[bytes, int]:
    """An events partition as an ingest before the aggregates published it: 40 events of 5 customers, two without a
    customer token and one without a time (which the aggregates do not count); and the events they count."""
    rows = 40
    tokens = [None if i in (3, 17) else f"tok_{i % 5:08x}" for i in range(rows)]
    times = [None if i == 8 else START_NS + i * (HOUR_NS // rows) for i in range(rows)]
    table = pa.table(
        {
            "event_id": [f"e-{i}" for i in range(rows)],
            "customer_token": pa.array(tokens, pa.string()),
            "event_time": pa.array(times, pa.timestamp("ns", "UTC")),
            "event_type": [schema.EVENT_TYPES[i % len(schema.EVENT_TYPES)] for i in range(rows)],
            "session_id": [f"s-{i % 7}" for i in range(rows)],
            "duration_s": pa.array([float(i) if i % 3 else None for i in range(rows)], pa.float64()),
            "amount": pa.array([2.5 if i % 4 == 0 else None for i in range(rows)], pa.float64()),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue(), rows - 3


def _run(root: Path) -> dict[str, Any]:
    """Run the pipeline locally (the pipeline itself has no outputs); its backfill task's outputs, which kfp.local
    leaves in the run's folder."""
    root.mkdir(parents=True, exist_ok=True)
    before = set(root.iterdir())
    assert not run_local("aggregates-backfill", {}, root)
    (run,) = set(root.iterdir()) - before
    assert {task.name for task in run.iterdir() if task.is_dir()} == {"backfill-aggregates", "gate", "alert-on-failure"}
    output = json.loads((run / "backfill-aggregates" / "executor_output.json").read_text(encoding="utf-8"))
    parameters: dict[str, Any] = output["parameterValues"]
    return parameters


@pytest.fixture(name="lake")
def lake_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[DataRepository, int, Path]]:
    """An embedded lake whose main holds one events partition and no aggregates; the events they should count; where
    kfp.local writes. The tasks inherit the environment."""
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CHURNOPS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("CHURNOPS_PIPELINE_RETRY_BACKOFF_SECONDS", "0")
    repo = open_repository(Settings())
    repo.ensure()
    content, counted = _partition()
    repo.create_branch("older-ingest", source="main")
    repo.put_objects("older-ingest", {PARTITION: content})
    repo.commit("older-ingest", "events without aggregates", {})
    repo.merge("older-ingest", into="main")
    repo.delete_branch("older-ingest")
    assert backfill.missing_aggregates(repo, "main") == [PARTITION]
    yield repo, counted, tmp_path / "kfp"


def test_the_pipeline_writes_the_missing_aggregates_on_main_and_a_repeat_commits_nothing(
    lake: tuple[DataRepository, int, Path],
) -> None:
    repo, counted, root = lake
    base = repo.head("main")

    outputs = _run(root)

    head = repo.head("main")
    assert head != base and repo.commit_info(head).parents[0] == base
    assert repo.commit_info(head).metadata["operation"] == backfill.OPERATION
    # the aggregates file is on main, beside its partition, and counts the partition's events
    written = pq.read_table(io.BytesIO(repo.get_object("main", aggregates.aggregates_path(PARTITION))))
    assert written.schema == aggregates.AGGREGATE_SCHEMA
    assert sum(written.column("events").to_pylist()) == counted
    assert set(written.column("customer_token").to_pylist()) == {f"tok_{i:08x}" for i in range(5)}
    assert not backfill.missing_aggregates(repo, "main") and repo.branches() == ["main"]
    assert outputs == {"partitions": 1, "events": counted, "commit_id": head, "refused": ""}

    again = _run(root)  # nothing missing: no branch, no commit

    assert again == {"partitions": 0, "events": 0, "commit_id": "", "refused": ""}
    assert repo.head("main") == head and repo.branches() == ["main"]
