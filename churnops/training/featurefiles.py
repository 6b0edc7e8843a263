"""A training's feature matrices as files: logged with the parent run and committed to the lake's ``features``
branch, tied to the data commit they were built from."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnops.data.versioning import DataRepository
from churnops.data.versioning.base import FEATURES_BRANCH
from churnops.model.spec import FeatureSpec
from churnops.platform.settings import Settings
from churnops.training.features import KEY_COLUMNS, LABEL


def _parquet_bytes(frame: pd.DataFrame) -> tuple[bytes, pa.Schema]:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue(), table.schema


def feature_files(splits: dict[str, pd.DataFrame], spec: FeatureSpec, data_commit: str) -> dict[str, bytes]:
    """The run's feature matrices as files: ``<split>.parquet`` (keys, features, label) and ``schema.json``."""
    schema: dict[str, Any] = {
        "data_commit": data_commit,
        "label": LABEL,
        "keys": list(KEY_COLUMNS),
        "spec": spec.to_dict(),
    }
    files: dict[str, bytes] = {}
    for name, frame in splits.items():
        files[f"{name}.parquet"], arrow_schema = _parquet_bytes(frame)
        schema.setdefault("columns", [{"name": f.name, "type": str(f.type)} for f in arrow_schema])
        schema.setdefault("splits", {})[name] = {
            "rows": len(frame),
            "positives": int(frame[LABEL].sum()),
            "cutoffs": [c.isoformat() for c in sorted(frame["cutoff"].unique())],
        }
    files["schema.json"] = json.dumps(schema, indent=2, sort_keys=True).encode()
    return files


def publish_features(repo: DataRepository, files: dict[str, bytes], data_commit: str, run_id: str) -> str:
    """Commit the feature matrices to the lake's ``features`` branch under ``features/<data_commit>/<run_id>/``.

    The branch starts from the data it describes and never merges into ``main``, so publishing
    features does not change what "latest data" means. Each run writes on a branch of its own and
    merges it into ``features``, so concurrent trainings cannot mix their files. Returns
    ``<commit id>/<path prefix>``. Idempotent per run: a retried attempt finds the merge an earlier
    attempt made (by its ``run_id``) and returns it, removing the run branch that attempt left.
    """
    prefix = f"features/{data_commit}/{run_id}"
    run_branch = f"features-{run_id[:12]}"
    lineage = {"source_commit": data_commit, "run_id": run_id}
    published = repo.find_commit(FEATURES_BRANCH, lineage) if repo.branch_exists(FEATURES_BRANCH) else None
    if published is not None:
        if repo.branch_exists(run_branch):
            repo.delete_branch(run_branch)
        return f"{published}/{prefix}"
    if not repo.branch_exists(FEATURES_BRANCH):
        repo.create_branch(FEATURES_BRANCH, source=data_commit)
    repo.create_branch(run_branch, source=FEATURES_BRANCH)  # an earlier attempt's branch is resumed as it is
    try:
        repo.put_objects(run_branch, {f"{prefix}/{name}": content for name, content in files.items()})
        repo.commit(run_branch, f"feature matrices of run {run_id} on {data_commit[:12]}", lineage)
        commit = repo.merge(run_branch, into=FEATURES_BRANCH, message=f"features of run {run_id}", metadata=lineage)
    finally:
        repo.delete_branch(run_branch)
    return f"{commit}/{prefix}"


def record_features(
    settings: Settings,
    splits: dict[str, pd.DataFrame],
    spec: FeatureSpec,
    data_commit: str,
    run_id: str,
    repo: DataRepository | None,
) -> str:
    """Log the feature matrices as run artifacts and, with a repository, commit them to the lake.

    Returns (and tags the run with) ``features_uri``: the lake location when committed, else the
    run's artifact folder.
    """
    files = feature_files(splits, spec, data_commit)
    for name, content in files.items():
        _log_bytes(content, f"features/{name}")
    features_uri = f"runs:/{run_id}/features"
    if repo is not None:
        features_uri = f"lakefs://{settings.lakefs_repository}/{publish_features(repo, files, data_commit, run_id)}"
    mlflow.set_tag("features_uri", features_uri)
    return features_uri


def _log_bytes(content: bytes, artifact_path: str) -> None:
    """Log raw bytes as a run artifact at ``artifact_path``."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / Path(artifact_path).name
        local.write_bytes(content)
        mlflow.log_artifact(str(local), artifact_path=str(Path(artifact_path).parent))
