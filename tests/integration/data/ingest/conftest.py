"""An isolated ingest environment per test: its own raw bucket on the session's fake GCS and its own lake.

Every ingest test runs on both versioning backends: the embedded git lake and lakeFS (the real
lakefs-sdk against the spec-validating lakeFS double).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from google.cloud import storage

from churnops.data.ingest import IngestReport, IngestRun
from churnops.data.privacy import Tokenizer
from churnops.data.versioning import DataRepository
from churnops.data.versioning.embedded import EmbeddedRepository
from churnops.local import datagen
from churnops.platform.alerts import AlertSink
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket
from tests.integration.conftest import double_repository
from tests.support.lakefs_double import LakeFSDouble

KEY = b"k" * 32
START = datetime(2026, 11, 1, 0, tzinfo=timezone.utc)
# The runs happen "now" = two days after the data, so no generated timestamp is in the future.
NOW = datetime(2026, 11, 3, 0, tzinfo=timezone.utc)


@dataclass
class IngestEnv:
    """Everything a test needs to upload raw objects and run ingest."""

    settings: Settings
    client: storage.Client
    repo: DataRepository
    reopen: Callable[[], DataRepository]  # a second handle on the same lake, as another process has

    def ingest(self, repo: DataRepository | None = None) -> IngestRun:
        """An ingest run on this environment (its lake, or ``repo``)."""
        return IngestRun(
            self.settings, repo or self.repo, self.client, Tokenizer(KEY), AlertSink(self.settings), now=lambda: NOW
        )

    def run(self, hour: datetime, lookback: int = 3, repo: DataRepository | None = None) -> IngestReport:
        """One ingest run of ``hour``."""
        return self.ingest(repo).run(hour, lookback)

    def upload(self, objects: list[datagen.RawObject]) -> None:
        """Put raw objects in this environment's bucket."""
        datagen.upload(self.client, self.settings.raw_bucket, objects)


@pytest.fixture(name="ingest_env", params=["embedded", "lakefs-double"])
def fixture_ingest_env(
    request: pytest.FixtureRequest, gcs_stack: Settings, gcs_client: storage.Client, tmp_path: Path
) -> Iterator[IngestEnv]:
    """A fresh bucket and a fresh lake of the backend under test."""
    settings = gcs_stack.model_copy(update={"raw_bucket": f"raw-{uuid.uuid4().hex[:10]}", "state_dir": tmp_path})
    ensure_bucket(gcs_client, settings.raw_bucket)
    double: LakeFSDouble | None = None
    if request.param == "lakefs-double":
        double = request.getfixturevalue("lakefs_double")
    name = f"lake-{uuid.uuid4().hex[:10]}"

    def reopen() -> DataRepository:
        if double is None:
            return EmbeddedRepository(settings.embedded_repo_dir)
        return double_repository(double, name)

    repo = reopen()
    repo.ensure()
    yield IngestEnv(settings=settings, client=gcs_client, repo=repo, reopen=reopen)
    if double is not None:
        assert not double.validation_errors, f"traffic outside the lakeFS API spec: {double.validation_errors}"
