"""From a registered version back to its data, code and parameters: reproduce, lake URIs, model loads."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from churnops.cli import main as cli
from churnops.cli import reproduce as cli_reproduce
from churnops.model import registry
from churnops.model.scoring import load_model
from churnops.platform.buildinfo import git_sha
from churnops.platform.settings import Settings
from churnops.training.reproduce import IDENTICAL, reproduce
from churnops.training.train import TrainingResult
from tests.integration.training.conftest import Lake

Trained = tuple[Lake, TrainingResult]


def invoke(settings: Settings, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> tuple[int, str]:
    """``churnops ARGS`` with ``settings`` as the process settings and the lake backend they name."""
    monkeypatch.setattr(cli_reproduce, "get_settings", lambda: settings)
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    monkeypatch.setattr(cli, "setup_logging", lambda _settings: None)
    result = CliRunner().invoke(cli.main, args)
    return result.exit_code, result.output


def test_reproducing_a_version_gives_identical_metrics_and_predictions_and_registers_nothing(
    trained: Trained,
) -> None:
    lake, result = trained
    client = registry.client_for(lake.settings)
    name = lake.settings.registered_model
    versions_before = len(client.search_model_versions(f"name = '{name}'"))
    # A long-lived process may have last worked in another experiment (a drift check does).
    registry.use_tracking(lake.settings)
    mlflow.set_experiment(f"{lake.settings.mlflow_experiment}-elsewhere")

    report = reproduce(lake.settings, f"{name}@{result.model_version}", repo=lake.repo)

    assert report.verdict == IDENTICAL and not report.causes
    assert report.version == result.model_version and report.model_type == result.gate.winner
    # the version's run is the winner's refit on every labelled cutoff: reproduced as such
    version = client.get_model_version(name, result.model_version)
    assert report.source_run_id == version.run_id and report.data_commit == lake.commit
    assert client.get_run(report.run_id).data.tags["refit_on_all_cutoffs"] == "true"
    assert {check.name for check in report.metrics} == set(result.metrics[result.gate.winner])
    assert all(check.verdict == IDENTICAL for check in report.metrics)
    assert report.predictions.verdict == IDENTICAL and report.predictions.reproduced == 0.0
    assert report.features == IDENTICAL
    new_run = client.get_run(report.run_id)
    assert new_run.data.tags["reproduces"] == report.source_run_id
    assert new_run.data.metrics == client.get_run(report.source_run_id).data.metrics
    parent = client.get_run(report.parent_run_id)
    assert parent.data.tags["reproduction_verdict"] == IDENTICAL
    assert parent.info.experiment_id == client.get_run(report.source_run_id).info.experiment_id
    assert len(client.search_model_versions(f"name = '{name}'")) == versions_before


def test_a_changed_setting_is_reported_as_the_cause_of_a_different_result(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, result = trained
    contact_cost = lake.settings.retention_contact_cost + 1.5  # a setting only the decision rule reads
    changed = lake.settings.model_copy(
        update={"label_horizon_hours": 8, "code_version": "f" * 40, "retention_contact_cost": contact_cost}
    )
    code, out = invoke(changed, monkeypatch, ["reproduce", result.parent_run_id, "--current-settings"])
    assert code == 3, out
    refit_run = (
        registry.client_for(lake.settings)
        .get_model_version(lake.settings.registered_model, result.model_version)
        .run_id
    )
    assert f"reproduced {result.gate.winner} run {refit_run}" in out
    assert "verdict: different" in out and "Traceback" not in out
    assert "differs from the original: parameter horizon_h: recorded 6, used 8" in out
    recorded_cost = json.dumps(lake.settings.retention_contact_cost)
    assert f"parameter contact_cost: recorded {recorded_cost}, used {json.dumps(contact_cost)}" in out
    assert f"differs from the original: code version: recorded {git_sha(lake.settings)}, now {'f' * 40}" in out
    assert "feature matrices rebuilt from the lake: different" in out

    unknown = invoke(lake.settings, monkeypatch, ["reproduce", f"{lake.settings.registered_model}@999"])
    assert unknown[0] == 2 and "has no version or alias '999'" in unknown[1] and "Traceback" not in unknown[1]


def test_recorded_uris_read_back_from_the_command_line(
    trained: Trained, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lake, result = trained
    source = f"s3://{lake.settings.lakefs_repository}/{lake.commit}/subscriptions/"
    code, out = invoke(lake.settings, monkeypatch, ["lake", "read", source, "--limit", "2"])
    rows = lake.repo.read_table(lake.commit, "subscriptions/").num_rows
    assert code == 0 and out.splitlines()[0].startswith(f"{rows} rows")
    schema = f"{result.features_uri}/schema.json"
    code, out = invoke(lake.settings, monkeypatch, ["lake", "read", schema])
    assert code == 0 and f'"data_commit": "{lake.commit}"' in out
    target = tmp_path / "test.parquet"
    code, out = invoke(
        lake.settings, monkeypatch, ["lake", "read", f"{result.features_uri}/test.parquet", "--output", str(target)]
    )
    assert code == 0 and target.read_bytes()[:4] == b"PAR1"
    code, out = invoke(lake.settings, monkeypatch, ["lake", "read", f"s3://other-repo/{lake.commit}/events/"])
    assert code == 2 and "this lake is" in out


def test_twenty_model_loads_leave_no_temporary_folder_behind(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, result = trained
    uri = f"models:/{lake.settings.registered_model}/{result.model_version}"
    mlflow.set_tracking_uri(lake.settings.mlflow_tracking_uri)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    mlflow.sklearn.load_model(uri)
    assert list(tmp_path.iterdir()), "MLflow alone leaves its download folder behind"
    left = set(tmp_path.iterdir())
    for _ in range(20):
        assert load_model(uri).pipeline is not None
    assert set(tmp_path.iterdir()) == left
