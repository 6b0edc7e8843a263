"""What the training pipeline's tasks pass each other: the splits as parquet Datasets with the feature spec and
training configuration in their metadata, and fitted models as Model artifacts (the MLflow model directory, with
the run, model URI, metrics, hyperparameters and decision rule in their metadata)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from churnops.model import registry
from churnops.model.spec import FeatureSpec
from churnops.platform.settings import Settings
from churnops.training.config import TrainingConfig
from churnops.training.runs import FittedModel


def read_splits(
    paths: dict[str, str], artifact_metadata: dict[str, Any]
) -> tuple[dict[str, pd.DataFrame], FeatureSpec, TrainingConfig]:
    """Splits the features task wrote (name -> path; :func:`churnops.training.train.write_split`), and the feature
    spec and training configuration from their artifact metadata: every task of a training uses the configuration
    the features task used."""
    for key in ("feature_spec", "training_config"):
        if key not in artifact_metadata:
            raise ValueError(f"the split's metadata holds no {key}: it was not written by the features step")
    frames = {name: pd.read_parquet(path) for name, path in paths.items()}
    return (
        frames,
        FeatureSpec.from_dict(artifact_metadata["feature_spec"]),
        TrainingConfig.from_json(str(artifact_metadata["training_config"])),
    )


def export_model(settings: Settings, model_uri: str, path: str) -> None:
    """Copy the MLflow model at ``model_uri`` (a logged model, or ``models:/<name>/<version>``) to the directory
    ``path`` (a task's Model artifact)."""
    registry.use_tracking(settings)
    Path(path).mkdir(parents=True, exist_ok=True)
    mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=path)


def model_metadata(fitted: FittedModel) -> dict[str, Any]:
    """What a Model artifact carries: the model's name, run, MLflow URI, metrics (NaN left out), the
    hyperparameters validation chose and the decision rule."""
    return {
        "model_name": fitted.name,
        "run_id": fitted.run_id,
        "model_uri": fitted.model_uri,
        "metrics": {key: value for key, value in fitted.metrics.items() if not math.isnan(value)},
        "params": json.dumps(fitted.params, sort_keys=True),
        "decision_rule": json.dumps(fitted.decision_rule, sort_keys=True),
    }


def fitted_from_metadata(artifact_metadata: dict[str, Any]) -> FittedModel:
    """The inverse of :func:`model_metadata` (a metric missing there was NaN)."""
    metrics = {key: float(value) for key, value in dict(artifact_metadata.get("metrics", {})).items()}
    metrics.setdefault("validation_roc_auc", math.nan)
    return FittedModel(
        name=str(artifact_metadata["model_name"]),
        run_id=str(artifact_metadata["run_id"]),
        model_uri=str(artifact_metadata["model_uri"]),
        metrics=metrics,
        params=json.loads(str(artifact_metadata.get("params", "{}"))),
        decision_rule=json.loads(str(artifact_metadata.get("decision_rule", "{}"))),
    )
