"""A registered churn model, loaded for scoring: where it comes from, what it is, and how to call it.

:func:`load_scoring_model` accepts

- ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` (the alias is resolved once, to a
  version, so a moving alias cannot change the model under a running server);
- a local directory holding an MLflow model (``MLmodel`` at its root), which is also KServe's
  storage-initializer layout (``/mnt/models``); a directory whose only model is one level down is
  accepted too.

The result scores rows given as arrays (see :class:`ScoringModel`), through the compiled
:class:`~churnops.model.fastpath.FastPath` when the model is the shape it understands, else
through the Pipeline itself.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model as MlflowModel

from churnops.errors import RegistryError
from churnops.model.fastpath import FastPath, UnsupportedModel, model_columns
from churnops.model.predict import churn_probability

logger = logging.getLogger(__name__)

MLMODEL = "MLmodel"
UNREGISTERED = "unregistered"


@dataclass
class ScoringModel:
    """A loaded churn model and its identity (registry version, data commit)."""

    pipeline: Any
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    model_name: str
    model_version: str
    data_commit: str
    source: str
    fast_path: FastPath | None = None
    fallback_reason: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """Every input column, numeric first, in model-input order."""
        return [*self.numeric, *self.categorical]

    def frame(self, numeric: np.ndarray, categorical: Sequence[Sequence[str | None]]) -> pd.DataFrame:
        """The rows as the DataFrame the Pipeline takes (numeric float64, categorical object)."""
        data: dict[str, Any] = {name: numeric[:, i] for i, name in enumerate(self.numeric)}
        data.update({name: pd.array(list(values), dtype=object) for name, values in zip(self.categorical, categorical)})
        return pd.DataFrame(data, columns=self.columns)

    def pipeline_predict(self, numeric: np.ndarray, categorical: Sequence[Sequence[str | None]]) -> np.ndarray:
        """Churn probability per row through the Pipeline's ``predict_proba``."""
        return churn_probability(self.pipeline, self.frame(numeric, categorical))

    def predict(self, numeric: np.ndarray, categorical: Sequence[Sequence[str | None]]) -> np.ndarray:
        """Churn probability per row: the fast path when available, else the Pipeline."""
        if self.fast_path is not None:
            return self.fast_path.predict(numeric, categorical)
        return self.pipeline_predict(numeric, categorical)


def _model_directory(path: Path) -> Path:
    if (path / MLMODEL).is_file():
        return path
    candidates = [child for child in sorted(path.iterdir()) if (child / MLMODEL).is_file()] if path.is_dir() else []
    if len(candidates) == 1:
        return candidates[0]
    raise RegistryError(f"{path} holds no MLflow model (no {MLMODEL} file at its root or one level down)")


def _resolve_registered(uri: str, tracking_uri: str | None) -> tuple[str, str, str, dict[str, str]]:
    """(name, version, pinned URI, version tags) of a ``models:/`` URI."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    reference = uri[len("models:/") :]
    try:
        if "@" in reference:
            name, alias = reference.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = reference.rsplit("/", 1)
            version = client.get_model_version(name, number)
    except (MlflowException, ValueError) as exc:
        raise RegistryError(f"cannot resolve {uri}: {str(exc).splitlines()[0] if str(exc) else exc}") from exc
    return name, str(version.version), f"models:/{name}/{version.version}", dict(version.tags or {})


def load_scoring_model(uri: str, tracking_uri: str | None = None, model_version: str | None = None) -> ScoringModel:
    """Load a churn model from ``uri`` (see the module docstring); ``model_version`` names a local one."""
    tags: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="churnops-model-") as folder:
        if uri.startswith("models:/"):
            name, version, pinned, tags = _resolve_registered(uri, tracking_uri)
            if tracking_uri:  # MLflow resolves a models:/ download through the process's tracking URI
                mlflow.set_registry_uri(tracking_uri)
                mlflow.set_tracking_uri(tracking_uri)
            local = Path(
                mlflow.artifacts.download_artifacts(artifact_uri=pinned, dst_path=folder, tracking_uri=tracking_uri)
            )
        else:
            local = _model_directory(Path(uri))
            name, version = local.name, model_version or UNREGISTERED
        info = MlflowModel.load(str(_model_directory(local) / MLMODEL))
        pipeline = mlflow.sklearn.load_model(str(_model_directory(local)))  # in memory: the folder goes
    metadata = info.metadata or {}
    data_commit = tags.get("data_commit") or str(metadata.get("data_commit", "")) or "unknown"
    try:
        numeric, categorical = model_columns(pipeline)
    except UnsupportedModel as exc:
        raise RegistryError(f"{uri} is not a churn model this server can describe: {exc}") from exc
    model = ScoringModel(
        pipeline=pipeline,
        numeric=numeric,
        categorical=categorical,
        model_name=name,
        model_version=version,
        data_commit=data_commit,
        source=uri,
        extra={"run_id": str(info.run_id or "")},
    )
    try:
        model.fast_path = FastPath.from_pipeline(pipeline)
    except UnsupportedModel as exc:
        model.fallback_reason = str(exc)
        logger.warning("no fast path for %s (%s): scoring through the Pipeline", uri, exc)
    return model
