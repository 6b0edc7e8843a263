"""Drift monitoring end to end: a model trained on the lake, the latest snapshot, quiet on unshifted data,
firing on a 15 % price rise and a 30 % engagement drop after training, and (retraining with the report as
reason) when customer behaviour shifts."""

from __future__ import annotations

import json

import pytest
from google.cloud import storage

from churnops.data.versioning import open_repository
from churnops.local import datagen, driftsim
from churnops.model import registry
from churnops.model.online import OnlineSnapshot
from churnops.platform.alerts import AlertSink
from churnops.platform.settings import Settings
from churnops.training import monitoring
from churnops.training.config import TrainingConfig
from churnops.training.features import feature_spec
from churnops.training.online import build_snapshot, refresh_online_features
from churnops.training.train import TrainingResult
from tests.integration.training.conftest import CUSTOMERS, HOURS, SEED, START, Lake, publish_through_ingest

SHIFT_FROM_H = HOURS - 12
SHIFTED_CUSTOMERS = CUSTOMERS // 3  # shares are compared, so a smaller population is enough (and cheaper)


class RecordingSink(AlertSink):
    """The real sink (log line), remembering what it emitted."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.sent: list[str] = []

    def emit(self, alert) -> None:  # type: ignore[no-untyped-def]
        super().emit(alert)
        self.sent.append(alert.kind)


@pytest.fixture(name="production")
def production_fixture(trained: tuple[Lake, TrainingResult]) -> tuple[Lake, TrainingResult]:
    """The trained model promoted to production, as a person would."""
    lake, result = trained
    client = registry.client_for(lake.settings)
    if registry.alias_holder(client, lake.settings.registered_model, "production") is None:
        registry.promote(client, lake.settings.registered_model, "staging")
        registry.promote(client, lake.settings.registered_model, "production")
    return lake, result


def test_unshifted_data_does_not_fire(production: tuple[Lake, TrainingResult]) -> None:
    lake, result = production
    snapshot = refresh_online_features(lake.settings, repo=lake.repo)
    sink = RecordingSink(lake.settings)
    report = monitoring.check_drift(lake.settings, "production", repo=lake.repo, alerts=sink)

    assert report.version == result.model_version
    assert not report.fired and not sink.sent
    assert report.snapshot_commit == snapshot.commit_id
    # recorded in the lake and in MLflow, whatever the verdict
    assert report.lake_uri is not None
    commit, _, path = report.lake_uri.removeprefix(f"lakefs://{lake.settings.lakefs_repository}/").partition("/")
    stored = json.loads(lake.repo.get_object(commit, path))
    assert stored["fired"] is False and len(stored["distributions"]) == len(snapshot.spec.columns) + 1
    run = registry.client_for(lake.settings).get_run(report.mlflow_run_id)
    assert run.data.tags["drift_fired"] == "false"
    assert run.data.metrics["drifted_feature_share"] == 0.0
    assert run.data.params["false_alarm_rate"] == str(lake.settings.drift_false_alarm_rate)


@pytest.mark.parametrize(
    ("scenario", "moved"),
    [
        ("none", ()),
        ("price", ("monthly_charges",)),
        ("engagement", ("events_6h", "relative_activity_6h", "relative_activity_24h", "rate_change_6h_24h")),
    ],
)
def test_a_price_rise_and_an_engagement_drop_after_training_fire_and_unshifted_data_does_not(
    production: tuple[Lake, TrainingResult], scenario: str, moved: tuple[str, ...]
) -> None:
    """The production model was trained on HOURS generated hours; twelve more hours follow, shifted from the
    first of them (the benchmark's scenarios, benchmarks/drift_sensitivity.py), and the snapshot at their end
    is checked against the model's reference in the lake."""
    lake, _ = production
    shift = driftsim.Shift(hours=HOURS + 12, customers=CUSTOMERS, shift_hour=HOURS)
    events, subscriptions = driftsim.simulate(shift, scenario, SEED)
    spec = feature_spec(TrainingConfig.from_settings(lake.settings).windows_h)
    features, inactive, cutoff = build_snapshot(events, subscriptions, spec)
    snapshot = OnlineSnapshot(features, inactive, f"simulated-{scenario}", cutoff, spec, commit_id="")
    sink = RecordingSink(lake.settings)
    report = monitoring.check_drift(lake.settings, "production", repo=lake.repo, alerts=sink, snapshot=snapshot)

    assert report.fired is (scenario != "none") and sink.sent == (["drift"] if report.fired else [])
    table = report.table()
    drifted_features = set(table.loc[table["drifted"] & (table["kind"] != "prediction"), "name"])
    assert drifted_features & set(moved) if moved else not drifted_features
    assert report.reference_uri.endswith(f"/{monitoring.REFERENCE_SPLIT}.parquet")


def test_shifted_behaviour_fires_alerts_and_retrains_with_the_report_as_reason(
    production: tuple[Lake, TrainingResult], gcs_client: storage.Client, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lake, _ = production
    settings = lake.settings.model_copy(
        update={
            "state_dir": tmp_path_factory.mktemp("shifted"),
            "raw_bucket": "training-raw-shifted",
            "registered_model": f"{lake.settings.registered_model}-retrained",
        }
    )
    shifted_repo = open_repository(settings)
    data = datagen.generate(
        HOURS,
        SHIFTED_CUSTOMERS,
        start=START,
        seed=SEED,
        drift=datagen.Drift(start_h=SHIFT_FROM_H, share=0.6, activity_factor=0.1),
    )
    publish_through_ingest(settings, shifted_repo, gcs_client, data)
    snapshot = refresh_online_features(settings, repo=shifted_repo)

    sink = RecordingSink(lake.settings)
    report = monitoring.check_drift(lake.settings, "production", repo=lake.repo, alerts=sink, snapshot=snapshot)
    assert report.fired and sink.sent == ["drift"]
    assert any(name.startswith("events_") for name in report.drifted)

    retrained = monitoring.retrain_for(settings, report, repo=shifted_repo)
    tags = registry.client_for(lake.settings).get_run(retrained.parent_run_id).data.tags
    assert tags["trigger"] == "drift"
    assert tags["trigger_report"] == report.lake_uri
    assert tags["data_commit"] == shifted_repo.head("main")
