"""``churnops privacy purge``: complete every erasure whose grace period has passed, in every store.

The lake, the raw bucket and the pipeline root are handled by :mod:`churnops.data.purge`; this
module adds the MLflow run artifacts (the feature matrices each training run logs) and runs the
whole purge in order, recording it on the erasure records (``docs/security.md``, "Completing an
erasure").
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from google.cloud import storage
from mlflow.entities import ViewType
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from churnops.data import purge as lake_purge
from churnops.data.privacy import Tokenizer
from churnops.data.subjects import record_tokens
from churnops.data.versioning import DataRepository
from churnops.model import registry
from churnops.platform.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class PurgeReport:
    """What one purge did, per store (no identifier of any subject)."""

    erasures: list[str]
    lake: lake_purge.LakePurge | None = None
    raw_bucket: lake_purge.RawPurge = field(default_factory=lake_purge.RawPurge)
    mlflow: lake_purge.FilesPurge = field(default_factory=lake_purge.FilesPurge)
    pipeline_root: lake_purge.FilesPurge = field(default_factory=lake_purge.FilesPurge)
    commit_id: str | None = None
    skipped_keys: list[str] = field(default_factory=list)  # erasures under a key other than the one loaded

    def stores(self) -> dict[str, int]:
        """Rows, lines or files removed per store, as recorded on the erasure records."""
        return {
            "lake_rows": self.lake.rows_removed if self.lake else 0,
            "lake_commits_rewritten": self.lake.commits_rewritten if self.lake else 0,
            "lake_objects_deleted": self.lake.objects_deleted if self.lake else 0,
            "raw_lines": self.raw_bucket.lines_removed,
            "raw_objects_rewritten": self.raw_bucket.objects_rewritten,
            "raw_objects_deleted": self.raw_bucket.objects_deleted,
            "mlflow_rows": self.mlflow.rows_removed,
            "mlflow_files": self.mlflow.files_rewritten + self.mlflow.files_deleted,
            "pipeline_root_rows": self.pipeline_root.rows_removed,
            "pipeline_root_files": self.pipeline_root.files_rewritten + self.pipeline_root.files_deleted,
        }


def _artifact_files(client: MlflowClient, run_id: str, path: str | None = None) -> Iterator[str]:
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            yield from _artifact_files(client, run_id, info.path)
        else:
            yield info.path


def _empty_like(content: bytes) -> bytes:
    table = pq.read_table(io.BytesIO(content))
    buffer = io.BytesIO()
    pq.write_table(table.slice(0, 0), buffer, compression="zstd")
    return buffer.getvalue()


def purge_mlflow_artifacts(settings: Settings, tokens: set[str]) -> lake_purge.FilesPurge:
    """Rewrite every run artifact of every experiment without the subjects' rows (:func:`scrub_file`).

    A parquet file left without rows keeps its schema (empty); any other artifact holding a token is
    deleted. Runs in the deleted lifecycle stage are included.
    """
    client = registry.use_tracking(settings)
    result = lake_purge.FilesPurge()
    experiments = client.search_experiments(view_type=ViewType.ALL)
    for experiment in experiments:
        for run in _runs(client, experiment.experiment_id):
            run_id = run.info.run_id
            with tempfile.TemporaryDirectory() as tmp:
                for path in _artifact_files(client, run_id):
                    local = Path(client.download_artifacts(run_id, path, tmp))
                    content = local.read_bytes()
                    new, rows = lake_purge.scrub_file(content, tokens)
                    if new == content:
                        continue
                    result.rows_removed += rows
                    if new is None and rows:
                        new = _empty_like(content)
                    if new is None:
                        repository = get_artifact_repository(run.info.artifact_uri)
                        repository.delete_artifacts(path)  # type: ignore[no-untyped-call]  # MLflow leaves it untyped
                        result.files_deleted += 1
                        continue
                    upload = Path(tmp) / "upload" / Path(path).name
                    upload.parent.mkdir(exist_ok=True)
                    upload.write_bytes(new)
                    parent = str(Path(path).parent)
                    client.log_artifact(run_id, str(upload), None if parent == "." else parent)
                    result.files_rewritten += 1
    return result


def _runs(client: MlflowClient, experiment_id: str) -> Iterator[Any]:
    token = None
    while True:
        page = client.search_runs([experiment_id], run_view_type=ViewType.ALL, max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def as_of(text: str, now: datetime | None = None) -> datetime:
    """The moment a purge completes erasures for: ``text`` (ISO 8601, UTC when naive), or now when empty.

    A moment later than now is refused (``ValueError``): it would complete erasures inside their
    grace period.
    """
    current = now or datetime.now(timezone.utc)
    if not text.strip():
        return current
    moment = datetime.fromisoformat(text.strip())
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    if moment > current:
        raise ValueError(f"as_of {text!r} is later than now: erasures are completed only once they are due")
    return moment


def purge(
    settings: Settings, repo: DataRepository, client: storage.Client, tokenizer: Tokenizer, now: datetime | None = None
) -> PurgeReport:
    """Complete every erasure due at ``now``: lake history, raw bucket, MLflow artifacts, pipeline root.

    The raw bucket is searched with ``tokenizer`` (the lake's key): erasures recorded under another
    key are completed everywhere else and listed in ``skipped_keys``. Returns what was removed;
    nothing due is an empty report and no commit.
    """
    moment = now or datetime.now(timezone.utc)
    due = lake_purge.due_erasures(repo, moment)
    report = PurgeReport(erasures=[record["erasure_id"] for record in due])
    if not due:
        return report
    tokens = set().union(*(record_tokens(record) for record in due))
    report.lake = lake_purge.purge_lake(repo, due, settings.lakefs_gc_retention_days, client)
    current = {record["subject_token"] for record in due if record.get("key_id") == tokenizer.key_id}
    report.skipped_keys = sorted({record["key_id"] for record in due if record.get("key_id") != tokenizer.key_id})
    if current:
        report.raw_bucket = lake_purge.purge_raw_bucket(
            client, settings.raw_bucket, lake_purge.LineMatcher(tokenizer, current)
        )
    report.mlflow = purge_mlflow_artifacts(settings, tokens)
    root = settings.pipeline_root or str(settings.state_dir / "kfp")
    if root.startswith("gs://"):
        report.pipeline_root = lake_purge.purge_gcs_files(client, root, tokens)
    else:
        report.pipeline_root = lake_purge.purge_local_files(Path(root), tokens)
    report.commit_id = lake_purge.record_purge(repo, due, moment, report.stores(), report.lake)
    log.info("erasures purged", extra={"erasures": report.erasures, **report.stores()})
    return report
