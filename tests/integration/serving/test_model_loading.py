"""The one model loader: a registered, logged or local model loads in memory, leaves no files and no
process-wide MLflow setting behind, scores as the fitted Pipeline does, and MLflow's errors come out
as the registry's domain errors."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest

from churnops.errors import RegistryError
from churnops.model.predict import churn_probability
from churnops.model.registry import RegistryNotFound, RegistryUnavailable
from churnops.model.scoring import UNREGISTERED, ScoringModel, load_model
from tests.conftest import free_port
from tests.integration.serving.conftest import Registered, feature_rows


def _scores_as_the_pipeline(model: ScoringModel, registered: Registered) -> None:
    rows = feature_rows(20, seed=5)[model.columns]
    expected = churn_probability(registered.pipeline, rows)
    numeric = rows[list(model.numeric)].to_numpy(dtype=np.float64)
    categorical = [rows[name].tolist() for name in model.categorical]
    np.testing.assert_allclose(model.predict(numeric, categorical), expected, rtol=1e-6)
    np.testing.assert_allclose(model.pipeline_predict(numeric, categorical), expected, rtol=1e-12)
    np.testing.assert_allclose(churn_probability(model.pipeline, rows), expected, rtol=1e-12)


@pytest.fixture(name="elsewhere")
def fixture_elsewhere(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The process's MLflow pointed at a port nothing listens on (no retries), for the duration of a test."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    nowhere = f"http://127.0.0.1:{free_port()}"
    mlflow.set_tracking_uri(nowhere)
    mlflow.set_registry_uri(nowhere)
    yield nowhere
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def test_a_registered_model_loads_in_memory_and_leaves_no_files(
    registered: Registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the download folder goes
    model = load_model(registered.uri, tracking_uri=registered.tracking_uri)
    assert not list(tmp_path.iterdir())  # the downloaded artifacts are gone; the model is in memory
    assert (model.model_name, model.model_version, model.data_commit) == (
        registered.name,
        registered.version,
        registered.data_commit,
    )
    _scores_as_the_pipeline(model, registered)


def test_loading_through_a_given_tracking_uri_changes_nothing_in_the_process(
    registered: Registered, elsewhere: str
) -> None:
    environment = dict(os.environ)
    model = load_model(f"models:/{registered.name}/{registered.version}", tracking_uri=registered.tracking_uri)
    assert model.model_version == registered.version
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == (elsewhere, elsewhere)
    assert dict(os.environ) == environment


def test_a_logged_model_loads_as_unregistered(registered: Registered) -> None:
    model = load_model(registered.logged_uri, tracking_uri=registered.tracking_uri)
    assert (model.model_name, model.model_version, model.data_commit) == (
        registered.logged_uri,
        UNREGISTERED,
        registered.data_commit,
    )
    _scores_as_the_pipeline(model, registered)


@pytest.mark.parametrize("reference", ["{name}/999", "{name}@staging", "missing-{name}@production"])
def test_a_missing_version_alias_or_model_is_registry_not_found(registered: Registered, reference: str) -> None:
    with pytest.raises(RegistryNotFound, match="not in the MLflow registry"):
        load_model(f"models:/{reference.format(name=registered.name)}", tracking_uri=registered.tracking_uri)


def test_an_unreachable_server_is_registry_unavailable(registered: Registered, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        load_model(registered.uri, tracking_uri=f"http://127.0.0.1:{free_port()}")


def test_a_folder_without_a_model_is_a_registry_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="holds no MLflow model"):
        load_model(str(tmp_path))
