"""The production model judged on labels that matured after its training data: the figures against the lake's
matured labels recomputed here, the MLflow run, the alert and the command's exit codes."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from churnops.cli import main as cli
from churnops.cli import training as cli_training
from churnops.data.versioning import open_repository
from churnops.local import driftsim
from churnops.model import registry
from churnops.model.scoring import load_model
from churnops.platform.alerts import Alert, AlertSink
from churnops.platform.settings import Settings
from churnops.training import evaluate
from churnops.training.config import LABELS_THROUGH_TAG
from churnops.training.features import LABEL, build_training_set
from churnops.training.performance import check_production_performance, precision_at_k
from churnops.training.train import TrainingResult, load_tables
from tests.integration.training.conftest import CUSTOMERS, HOURS, SEED, START, Lake

LATER_HOURS = 12  # published after the model's data; the first six of them have matured labels


class RecordingSink(AlertSink):
    """The real sink (log line), remembering what it emitted."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.sent: list[Alert] = []

    def emit(self, alert: Alert) -> None:
        super().emit(alert)
        self.sent.append(alert)


def run(settings: Settings, monkeypatch: pytest.MonkeyPatch, args: list[str], exit_code: int) -> str:
    """Invoke ``churnops ARGS`` with ``settings`` as the process settings; return its output."""
    monkeypatch.setattr(cli_training, "get_settings", lambda: settings)
    monkeypatch.setattr(cli, "setup_logging", lambda _settings: None)  # leave the test's logging alone
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    return result.output


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def matured_by_hand(settings: Settings, model_uri: str) -> tuple[pd.DatetimeIndex, pd.DataFrame, np.ndarray]:
    """Recomputed from the lake: every hourly cutoff from the end of the model's data whose label window has
    passed at main's head, their features and labels, and the model's probabilities."""
    repo = open_repository(settings)
    events, subscriptions = load_tables(repo, repo.head("main"))
    horizon = settings.label_horizon_hours
    end = pd.Timestamp(START) + pd.Timedelta(hours=HOURS + LATER_HOURS - horizon)
    cutoffs = pd.date_range(pd.Timestamp(START) + pd.Timedelta(hours=HOURS), end, freq="h")
    frame = build_training_set(events, subscriptions, list(cutoffs), horizon=horizon)
    model = load_model(model_uri, registry.client_for(settings).tracking_uri)
    return cutoffs, frame, evaluate.churn_probability(model.pipeline, frame[model.columns])


@pytest.fixture(name="later_lake")
def later_lake_fixture(trained: tuple[Lake, TrainingResult], tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A lake whose main holds the model's 48 hours and 12 more of the same generator, seed and customers."""
    lake, _ = trained
    settings = lake.settings.model_copy(update={"state_dir": tmp_path_factory.mktemp("later-lake")})
    events, subscriptions = driftsim.simulate(
        driftsim.Shift(hours=HOURS + LATER_HOURS, customers=CUSTOMERS, shift_hour=HOURS), "none", SEED
    )
    repo = open_repository(settings)
    repo.ensure()
    repo.put_objects(
        "main", {"events/part-0.parquet": _parquet(events), "subscriptions/part-0.parquet": _parquet(subscriptions)}
    )
    repo.commit("main", f"{HOURS + LATER_HOURS} generated hours", {})
    return settings


def test_the_model_is_judged_on_labels_matured_after_its_data(
    trained: tuple[Lake, TrainingResult], later_lake: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, result = trained
    version = str(result.model_version)
    client = registry.client_for(lake.settings)
    since = pd.Timestamp(client.get_model_version(lake.settings.registered_model, version).tags[LABELS_THROUGH_TAG])
    assert since == pd.Timestamp(START) + pd.Timedelta(hours=HOURS)  # the model's labels end with its data

    head = open_repository(later_lake).head("main")
    cutoffs, frame, probability = matured_by_hand(later_lake, f"models:/{lake.settings.registered_model}/{version}")
    labels = frame[LABEL].to_numpy()
    auc = roc_auc_score(labels, probability)
    share = later_lake.retention_capacity_share

    output = run(later_lake, monkeypatch, ["model", "performance", "--model", version], exit_code=0)
    assert f"v{version} on data commit {head[:12]}" in output and "within limits" in output
    assert f"{len(cutoffs)} matured cutoffs" in output and f"{len(frame)} rows, {int(labels.sum())} churners" in output
    assert f"ROC-AUC            {auc:.4f}" in output

    run_id = output.split("MLflow run ")[1].split()[0]
    logged = client.get_run(run_id).data
    assert logged.tags["model_version"] == version and logged.tags["data_commit"] == head
    assert logged.tags["run_kind"] == "performance" and logged.tags["performance_degraded"] == "false"
    assert logged.metrics["roc_auc"] == pytest.approx(auc)
    assert logged.metrics["rows"] == len(frame) and logged.metrics["cutoffs"] == len(cutoffs)
    assert logged.metrics["churn_rate"] == pytest.approx(labels.mean())
    assert logged.metrics["mean_probability"] == pytest.approx(float(np.mean(probability)))
    assert logged.metrics["precision_at_k"] == pytest.approx(precision_at_k(frame, probability, share))

    # The same figures against a floor above them: a degraded model, an alert naming the run, exit 3.
    strict = later_lake.model_copy(update={"performance_min_auc": round(auc + 0.01, 4)})
    sink = RecordingSink(strict)
    check = check_production_performance(strict, version, alerts=sink)
    assert check.degraded and [a.kind for a in sink.sent] == ["performance"]
    assert sink.sent[0].run_id == check.mlflow_run_id and "ROC-AUC" in sink.sent[0].message
    assert client.get_run(str(check.mlflow_run_id)).data.tags["performance_degraded"] == "true"
    output = run(strict, monkeypatch, ["model", "performance", "--model", version], exit_code=3)
    assert "DEGRADED: ROC-AUC" in output


def test_nothing_matured_since_the_model_s_data_is_said_not_failed(
    trained: tuple[Lake, TrainingResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the lake the model was trained on, no label window has passed since its data ended."""
    lake, result = trained
    output = run(lake.settings, monkeypatch, ["model", "performance", "--model", str(result.model_version)], 0)
    assert "nothing to judge yet: no label has matured since" in output
