"""Choosing a backend from Settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnops.data.versioning import open_repository
from churnops.data.versioning.embedded import EmbeddedRepository
from churnops.data.versioning.lakefs import LakeFSRepository
from churnops.errors import ConfigurationError
from churnops.platform.settings import Settings

_NO_LAKEFS = {"lakefs_endpoint": None, "lakefs_access_key_id": None, "lakefs_secret_access_key": None}


def test_embedded_backend_lives_under_the_state_dir(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, versioning_backend="embedded")
    repo = open_repository(settings)
    assert isinstance(repo, EmbeddedRepository)
    assert repo.path == settings.embedded_repo_dir
    repo.ensure()
    assert open_repository(settings).head() == repo.head()


def test_lakefs_backend_uses_the_lakefs_settings() -> None:
    settings = Settings(
        versioning_backend="lakefs",
        lakefs_endpoint="http://lakefs.example.internal:8000",
        lakefs_repository="churn-lake-test",
        lakefs_access_key_id="AKIAEXAMPLE",
        lakefs_secret_access_key="secret",
    )
    repo = open_repository(settings)
    assert isinstance(repo, LakeFSRepository)
    assert repo.repository == "churn-lake-test"


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({}, "LAKEFS_ENDPOINT, LAKEFS_ACCESS_KEY_ID, LAKEFS_SECRET_ACCESS_KEY"),
        ({"lakefs_endpoint": "http://127.0.0.1:8000", "lakefs_access_key_id": "k"}, "LAKEFS_SECRET_ACCESS_KEY"),
    ],
)
def test_lakefs_backend_names_the_missing_settings(given: dict, missing: str) -> None:
    settings = Settings(versioning_backend="lakefs", **{**_NO_LAKEFS, **given})
    with pytest.raises(ConfigurationError, match=missing):
        open_repository(settings)
