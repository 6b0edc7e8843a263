"""The training CLI commands against the real MLflow server and the test lake."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from churnops.cli import main as cli
from churnops.cli import training as cli_training
from churnops.model import registry
from churnops.platform.settings import Settings
from churnops.training.train import TrainingResult
from tests.integration.training.conftest import Lake


def run(settings: Settings, monkeypatch: pytest.MonkeyPatch, args: list[str], exit_code: int = 0) -> str:
    """Invoke ``churnops ARGS`` with ``settings`` as the process settings; return its output."""
    monkeypatch.setattr(cli_training, "get_settings", lambda: settings)
    monkeypatch.setattr(cli, "setup_logging", lambda _settings: None)  # leave the test's logging alone
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == exit_code, result.output
    return result.output


def test_compare_show_promote_and_rollback_from_the_command_line(
    trained: tuple[Lake, TrainingResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, result = trained
    settings = lake.fresh_settings()
    settings = settings.model_copy(update={"mlflow_experiment": lake.settings.mlflow_experiment})

    table = run(settings, monkeypatch, ["runs", "compare", "--limit", "50"]).splitlines()
    assert "test_roc_auc" in table[0].split() and "validation_roc_auc" in table[0].split()
    xgb_row = next(line for line in table if result.run_ids["xgboost"][:12] in line)
    assert f"{result.metrics['xgboost']['test_roc_auc']:.4f}" in xgb_row and result.data_commit[:12] in xgb_row

    empty = run(settings, monkeypatch, ["model", "show"])
    assert "no versions" in empty
    client = registry.client_for(settings)
    source = client.get_model_version(lake.settings.registered_model, result.model_version).source
    for _ in range(2):
        version = registry.register_version(settings.registered_model, source, {"data_commit": lake.commit})
        registry.assign_alias(client, settings.registered_model, "candidate", version)
        run(settings, monkeypatch, ["model", "promote", "--to", "staging"])
        out = run(settings, monkeypatch, ["model", "promote", "--to", "production", "--actor", "release-bot"])
        assert f"version {version} is now 'production'" in out
        event = json.loads(client.get_model_version(settings.registered_model, version).tags["alias_event.0003"])
        assert (event["alias"], event["by"], event["by_source"]) == ("production", "release-bot", "explicit")

    out = run(settings, monkeypatch, ["model", "rollback"])
    assert "rolled back from version 2 to version 1" in out
    shown = run(settings, monkeypatch, ["model", "show"]).splitlines()
    assert shown[0].split()[:2] == ["version", "aliases"]
    assert shown[2].split()[:2] == ["1", "production"]

    refused = run(settings, monkeypatch, ["model", "promote", "--to", "production"], exit_code=2)
    assert "nothing to promote" in refused and "Traceback" not in refused
