"""The one model loader: a logged, registered or local churn model, loaded into memory for scoring.

:func:`load_model` accepts

- ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` (the alias is resolved once, to a
  version, so a moving alias cannot change the model under a running server);
- any other MLflow model URI: ``runs:/<run id>/<path>``, ``models:/<logged model id>``;
- a local directory holding an MLflow model (``MLmodel`` at its root), which is also KServe's
  storage-initializer layout (``/mnt/models``); a directory whose only model is one level down is
  accepted too.

The tracking server is passed in (``tracking_uri``, also the registry's); nothing is set in the
process. The artifacts go to a temporary folder removed before returning (the model is in memory).
MLflow's errors come out as the registry's domain errors (:func:`churnops.model.registry.domain_error`).

The result scores rows given as arrays (see :class:`ScoringModel`), through the compiled
:class:`~churnops.model.fastpath.FastPath` when the model is the shape it understands, else
through the Pipeline itself; :attr:`ScoringModel.pipeline` is the fitted model for any other use.
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
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model as MlflowModel

from churnops.errors import RegistryError
from churnops.model.fastpath import FastPath, UnsupportedModel, model_columns
from churnops.model.predict import DecisionRule, churn_probability, decision_rule_of
from churnops.model.registry import RegistryNotFound, alias_holder, domain_error

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
    undescribed: str = ""
    """Why the input columns could not be read from the Pipeline ("" when they were)."""

    def require_columns(self) -> None:
        """Raise :class:`RegistryError` unless the input columns are known (the model server needs them)."""
        if self.undescribed:
            raise RegistryError(f"{self.source} is not a churn model this server can describe: {self.undescribed}")

    rule: DecisionRule = field(default_factory=DecisionRule)
    """Where ``churn_label`` is 1: the decision rule recorded with the model (a fixed 0.5 if none was)."""

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


def _registry_reference(uri: str) -> tuple[str, str, str] | None:
    """(name, "@" or "/", alias or version) of a registered model URI; None for any other URI."""
    if not uri.startswith("models:/"):
        return None
    reference = uri[len("models:/") :]
    for separator in ("@", "/"):
        name, found, rest = reference.partition(separator)
        if found and name and rest:
            return name, separator, rest
    return None  # models:/<logged model id>


def _alias_holder(client: mlflow.MlflowClient, name: str, alias: str) -> ModelVersion:
    """The version holding ``alias``: :class:`RegistryNotFound` when nobody holds it or the model does not
    exist (which MLflow's basic-auth app answers with 403, :func:`registry.alias_holder` tells them apart)."""
    version = alias_holder(client, name, alias)
    if version is None:
        raise RegistryNotFound(f"not in the MLflow registry: no version of {name!r} holds the alias {alias!r}")
    return client.get_model_version(name, version)


def _resolve(uri: str, client: mlflow.MlflowClient) -> tuple[str, str, str, dict[str, str]]:
    """(name, version, artifact location, version tags) of an MLflow model URI, through ``client``.

    MLflow's own ``models:/`` download asks the process's registry URI, whatever it is given, so
    the location is resolved here with the client that names the server.
    """
    reference = _registry_reference(uri)
    if reference is not None:
        name, separator, rest = reference
        if separator == "@":
            version = _alias_holder(client, name, rest)
        else:
            version = client.get_model_version(name, rest)
        location = client.get_model_version_download_uri(name, str(version.version))
        return name, str(version.version), location, dict(version.tags or {})
    if uri.startswith("models:/"):
        return uri, UNREGISTERED, client.get_logged_model(uri[len("models:/") :]).artifact_location, {}
    return uri, UNREGISTERED, uri, {}


def load_model(uri: str, tracking_uri: str | None = None, model_version: str | None = None) -> ScoringModel:
    """Load a churn model from ``uri`` (see the module docstring); ``model_version`` names a local one."""
    try:
        return _load(uri, tracking_uri, model_version)
    except MlflowException as exc:
        raise domain_error(exc) from exc


def _load(uri: str, tracking_uri: str | None, model_version: str | None) -> ScoringModel:
    tags: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="churnops-model-") as folder:
        if "://" in uri or uri.startswith(("models:/", "runs:/")):
            client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            name, version, location, tags = _resolve(uri, client)
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=location, dst_path=folder, tracking_uri=client.tracking_uri, registry_uri=tracking_uri
                )
            )
        else:
            local = _model_directory(Path(uri))
            name, version = local.name, model_version or UNREGISTERED
        info = MlflowModel.load(str(_model_directory(local) / MLMODEL))
        pipeline = mlflow.sklearn.load_model(str(_model_directory(local)))  # in memory: the folder goes
    metadata = info.metadata or {}
    model = ScoringModel(
        pipeline=pipeline,
        numeric=(),
        categorical=(),
        model_name=name,
        model_version=version,
        data_commit=tags.get("data_commit") or str(metadata.get("data_commit", "")) or "unknown",
        source=uri,
        extra={"run_id": str(info.run_id or "")},
        rule=decision_rule_of(metadata),
    )
    try:
        model.numeric, model.categorical = model_columns(pipeline)
        model.fast_path = FastPath.from_pipeline(pipeline)
    except UnsupportedModel as exc:
        model.fallback_reason = str(exc)
        if not model.numeric:
            model.undescribed = str(exc)
        logger.warning("no fast path for %s (%s): scoring through the Pipeline", uri, exc)
    return model
