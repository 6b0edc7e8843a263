"""A small lake (generated, then published by the real ingest stage into an embedded repository) and MLflow settings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from google.cloud import storage

from churnops.data.ingest import IngestRun
from churnops.data.privacy import Tokenizer
from churnops.data.versioning import DataRepository, open_repository
from churnops.local import datagen
from churnops.platform.alerts import AlertSink
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket
from churnops.training.train import TrainingResult, train_from_commit

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
HOURS = 48
CUSTOMERS = 800
SEED = 1
KEY = "integration-test-key-0123456789ab"  # the tokenization key the lakes are ingested with


def publish_through_ingest(
    settings: Settings, repo: DataRepository, client: storage.Client, data: datagen.GeneratedData
) -> str:
    """Upload ``data`` (HOURS of activity from START), ingest every hour with the real stage; return main's head."""
    ensure_bucket(client, settings.raw_bucket)
    datagen.upload(client, settings.raw_bucket, data.objects)
    repo.ensure()
    run = IngestRun(
        settings,
        repo,
        client,
        Tokenizer(KEY.encode()),
        AlertSink(settings),
        now=lambda: START + timedelta(hours=HOURS + 1),
    )
    for offset in range(HOURS):
        run.run(START + timedelta(hours=offset), lookback=0)
    return repo.head("main")


@dataclass
class Lake:
    """The published lake and settings that point at it and at the session's MLflow server."""

    settings: Settings
    repo: DataRepository
    commit: str

    def fresh_settings(self) -> Settings:
        """The same lake and server, with a registered model and experiment of its own."""
        suffix = uuid.uuid4().hex[:8]
        return self.settings.model_copy(
            update={"registered_model": f"churn-{suffix}", "mlflow_experiment": f"churn-{suffix}"}
        )


@pytest.fixture(scope="session", name="lake")
def lake_fixture(
    mlflow_tracking_uri: str, gcs_stack: Settings, gcs_client: storage.Client, tmp_path_factory: pytest.TempPathFactory
) -> Lake:
    """48 generated hours of 800 customers, ingested once per session into an embedded lake."""
    state: Path = tmp_path_factory.mktemp("training-lake")
    settings = gcs_stack.model_copy(
        update={"state_dir": state, "mlflow_tracking_uri": mlflow_tracking_uri, "raw_bucket": "training-raw"}
    )
    repo = open_repository(settings)
    commit = publish_through_ingest(
        settings, repo, gcs_client, datagen.generate(HOURS, CUSTOMERS, start=START, seed=SEED)
    )
    return Lake(settings=settings, repo=repo, commit=commit)


@pytest.fixture(scope="session")
def trained(lake: Lake) -> tuple[Lake, TrainingResult]:
    """One training per session on the latest main of the lake, with its own registered model and experiment.

    Tests that move its aliases or register versions use ``fresh_settings`` or say so.
    """
    settings = lake.fresh_settings()
    result = train_from_commit(settings, None, seed=42, repo=lake.repo)
    print(
        f"test ROC-AUC: xgboost {result.metrics['xgboost']['test_roc_auc']:.4f}, "
        f"baseline {result.metrics['baseline']['test_roc_auc']:.4f}"
    )
    return Lake(settings, lake.repo, lake.commit), result


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The test that first asks for the session's training pays for it (features, the validation search, the
    calibration and the refit of the winner): minutes on a busy machine, so those tests get 900 s, not 300 s."""
    for item in items:
        if "trained" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(900))
