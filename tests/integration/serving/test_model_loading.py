"""Loading a registered model for scoring leaves no files behind and scores as the fitted Pipeline does."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from churnops.model.predict import churn_probability
from churnops.model.scoring import load_scoring_model
from tests.integration.serving.conftest import Registered, feature_rows


def test_a_registered_model_loads_in_memory_and_leaves_no_files(
    registered: Registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the download folder goes
    model = load_scoring_model(registered.uri, tracking_uri=registered.tracking_uri)
    assert not list(tmp_path.iterdir())  # the downloaded artifacts are gone; the model is in memory
    assert (model.model_name, model.model_version, model.data_commit) == (
        registered.name,
        registered.version,
        registered.data_commit,
    )
    rows = feature_rows(20, seed=5)[model.columns]
    expected = churn_probability(registered.pipeline, rows)
    numeric = rows[list(model.numeric)].to_numpy(dtype=np.float64)
    categorical = [rows[name].tolist() for name in model.categorical]
    np.testing.assert_allclose(model.predict(numeric, categorical), expected, rtol=1e-6)
    np.testing.assert_allclose(model.pipeline_predict(numeric, categorical), expected, rtol=1e-12)
