"""An isolated ingest environment per test: its own raw bucket and lake on the session's fake GCS."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from google.cloud import storage

from components import datagen
from components.alerts import AlertSink
from components.ingest import IngestReport, IngestRun
from components.privacy import Tokenizer
from components.settings import Settings
from components.storage import ensure_bucket
from components.versioning import DataRepository, open_repository

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

    def run(self, hour: datetime, lookback: int = 3, crash_at: str | None = None,
            repo: DataRepository | None = None) -> IngestReport:
        """One ingest run of ``hour``."""
        ingest = IngestRun(self.settings, repo or self.repo, self.client, Tokenizer(KEY), AlertSink(self.settings),
                           now=lambda: NOW)
        return ingest.run(hour, lookback, crash_at=crash_at)

    def upload(self, objects: list[datagen.RawObject]) -> None:
        """Put raw objects in this environment's bucket."""
        datagen.upload(self.client, self.settings.raw_bucket, objects)

    def reopen(self) -> DataRepository:
        """A second handle on the same lake (as another process would have)."""
        return open_repository(self.settings)


@pytest.fixture(name="ingest_env")
def fixture_ingest_env(gcs_stack: Settings, gcs_client: storage.Client, tmp_path: Path) -> IngestEnv:
    """A fresh bucket and an embedded lake under ``tmp_path``."""
    settings = gcs_stack.model_copy(update={"raw_bucket": f"raw-{uuid.uuid4().hex[:10]}", "state_dir": tmp_path})
    ensure_bucket(gcs_client, settings.raw_bucket)
    repo = open_repository(settings)
    repo.ensure()
    return IngestEnv(settings=settings, client=gcs_client, repo=repo)
