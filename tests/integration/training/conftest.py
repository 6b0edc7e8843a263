"""A small published lake (generated, tokenized, committed to an embedded repository) and MLflow settings."""

from __future__ import annotations

import gzip
import io
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from components import datagen
from components.privacy import Tokenizer, apply_pii_policy
from components.settings import Settings
from components.train import TrainingResult, train_from_commit
from components.versioning import DataRepository, open_repository

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
HOURS = 48
CUSTOMERS = 800
SEED = 1


def published_tables(hours: int, customers: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """datagen output (no anomalies) turned into the lake's published format with plain pandas."""
    data = datagen.generate(hours, customers, start=START, seed=seed)
    events, records = [], []
    for obj in data.objects:
        if obj.name.startswith("activity/events/"):
            frame = pd.read_json(io.BytesIO(gzip.decompress(obj.data)), lines=True, dtype=False)
            events.append(frame.assign(_source_object=obj.name, _source_generation=1))
        else:
            frame = pd.read_csv(io.BytesIO(obj.data), dtype=str)
            records.append(frame.assign(_source_object=obj.name, _source_generation=1))
    tokenizer = Tokenizer(b"integration-test-key-0123456789ab")
    ev = apply_pii_policy(pd.concat(events, ignore_index=True), "events", tokenizer)
    subs = apply_pii_policy(pd.concat(records, ignore_index=True), "subscriptions", tokenizer)
    ev["event_time"] = pd.to_datetime(ev["event_time"], utc=True)
    ev[["duration_s", "amount"]] = ev[["duration_s", "amount"]].apply(pd.to_numeric)
    subs[["monthly_charges", "total_charges"]] = subs[["monthly_charges", "total_charges"]].apply(pd.to_numeric)
    subs["cancel_date"] = pd.to_datetime(subs["cancel_date"], utc=True)
    subs["updated_at"] = pd.to_datetime(subs["updated_at"], utc=True)
    subs["signup_date"] = pd.to_datetime(subs["signup_date"]).dt.date
    return ev, subs


def publish(repo: DataRepository, events: pd.DataFrame, subscriptions: pd.DataFrame) -> str:
    """Write both tables on a branch, commit, merge into main; return main's head."""
    repo.ensure()
    branch = f"publish-{uuid.uuid4().hex[:8]}"
    repo.create_branch(branch)
    files = {}
    for prefix, frame in (("events", events), ("subscriptions", subscriptions)):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        files[f"{prefix}/dt=2026-11-01/hr=00/part-0.parquet"] = buffer.getvalue()
    repo.put_objects(branch, files)
    metadata = {"schema_versions": '{"events": "events:v1", "subscriptions": "subscriptions:v1"}'}
    repo.commit(branch, "publish test data", metadata)
    return repo.merge(branch, "main", "publish test data", metadata)


@dataclass
class Lake:
    """The published lake and settings that point at it and at the session's MLflow server."""

    settings: Settings
    repo: DataRepository
    commit: str
    events: pd.DataFrame
    subscriptions: pd.DataFrame

    def fresh_settings(self) -> Settings:
        """The same lake and server, with a registered model and experiment of its own."""
        suffix = uuid.uuid4().hex[:8]
        return self.settings.model_copy(
            update={"registered_model": f"churn-{suffix}", "mlflow_experiment": f"churn-{suffix}"}
        )


@pytest.fixture(scope="session", name="lake")
def lake_fixture(mlflow_tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """48 generated hours of 800 customers, published once per session to an embedded lake."""
    state: Path = tmp_path_factory.mktemp("training-lake")
    settings = Settings(state_dir=state, mlflow_tracking_uri=mlflow_tracking_uri)
    repo = open_repository(settings)
    events, subscriptions = published_tables(HOURS, CUSTOMERS, SEED)
    commit = publish(repo, events, subscriptions)
    return Lake(settings=settings, repo=repo, commit=commit, events=events, subscriptions=subscriptions)


@pytest.fixture(scope="module")
def trained(lake: Lake) -> tuple[Lake, TrainingResult]:
    """One training on the latest main of the lake, with its own registered model and experiment."""
    settings = lake.fresh_settings()
    result = train_from_commit(settings, None, seed=42, repo=lake.repo)
    print(f"test ROC-AUC: xgboost {result.metrics['xgboost']['test_roc_auc']:.4f}, "
          f"baseline {result.metrics['baseline']['test_roc_auc']:.4f}")
    return Lake(settings, lake.repo, lake.commit, lake.events, lake.subscriptions), result
