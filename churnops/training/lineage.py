"""Lineage of a training: the tags and dataset inputs that tie a run (and the version registered from it) to its
data commit, code, environment and inputs (docs/reproducibility.md says what each is and how to follow it back)."""

from __future__ import annotations

import hashlib
import json
import warnings
from typing import Any

import pandas as pd
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.models import infer_signature

from churnops.model.spec import FeatureSpec
from churnops.platform.buildinfo import code_version, lock_sha256
from churnops.platform.settings import Settings
from churnops.training.config import TrainingConfig

# MLflow caps a dataset digest at 36 characters; the full commit id is in the source and tags.
DIGEST_LENGTH = 36


def dataset_source(settings: Settings, data_commit: str, prefix: str) -> str:
    """The S3-gateway address of a table at a commit (``s3://<repository>/<commit>/<prefix>``)."""
    return f"s3://{settings.lakefs_repository}/{data_commit}/{prefix}"


def sha256_json(value: Any) -> str:
    """sha256 of the canonical JSON of ``value`` (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


IDENTITY_TAGS: tuple[str, ...] = ("data_commit", "git_sha", "params_sha256", "seed")


def lineage_tags(
    settings: Settings,
    data_commit: str,
    seed: int,
    config: TrainingConfig,
    spec: FeatureSpec,
    schema_versions: str = "unknown",
    tokenizer_key_id: str = "unknown",
) -> dict[str, str]:
    """Tags that tie a run (and the version registered from it) to its data, code, environment and inputs.

    ``training_key`` hashes :data:`IDENTITY_TAGS`: equal keys mean the same data commit, code
    version, parameters and seed, i.e. the same model.
    """
    code = code_version(settings)
    tags = {
        "data_commit": data_commit,
        "git_sha": str(code),
        "git_dirty": str(code.dirty).lower(),
        "code_version_source": code.source,
        "lock_sha256": lock_sha256(),
        "schema_versions": schema_versions,
        "lakefs_repository": settings.lakefs_repository,
        "seed": str(seed),
        "params_sha256": sha256_json(config.as_params()),
        "feature_spec_sha256": sha256_json(spec.to_dict()),
        "tokenizer_key_id": tokenizer_key_id,
    }
    if settings.image_digest:
        tags["image_digest"] = settings.image_digest
    tags["training_key"] = sha256_json({key: tags[key] for key in IDENTITY_TAGS})
    return tags


def dataset(settings: Settings, data_commit: str, prefix: str, frame: pd.DataFrame | None = None) -> MetaDataset:
    """The table at the commit as an MLflow dataset: S3-gateway source, commit digest, column schema (with a frame)."""
    schema = None
    if frame is not None:
        categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
        sample = frame.head(200).astype({c: object for c in categorical})
        with warnings.catch_warnings():
            # MLflow hints that integer columns cannot hold missing values; the schema only documents the table.
            warnings.filterwarnings(
                "ignore", message="Hint: Inferred schema contains integer column", category=UserWarning
            )
            schema = infer_signature(sample).inputs
    return MetaDataset(  # type: ignore[abstract]  # Dataset marks profile abstract but is no ABC: MLflow builds MetaDataset so
        source=resolve_dataset_source(dataset_source(settings, data_commit, prefix)),
        name=prefix.rstrip("/"),
        digest=data_commit[:DIGEST_LENGTH],
        schema=schema,
    )
