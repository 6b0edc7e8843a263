"""Training configuration, lineage helpers and refusals that need no tracking server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from churnops.cli.training import train_command
from churnops.platform.buildinfo import lock_sha256
from churnops.platform.settings import Settings
from churnops.training.estimators import model_signature
from churnops.training.features import FEATURE_SPEC
from churnops.training.lineage import dataset_source
from churnops.training.train import TrainingConfig, build_splits
from tests.unit.training.conftest import event, events_frame, record, subscriptions_frame


def test_config_follows_the_settings_and_overrides(settings: Settings) -> None:
    custom = settings.model_copy(
        update={"feature_windows_hours": [2, 8], "label_horizon_hours": 4, "gate_margin": 0.05}
    )
    config = TrainingConfig.from_settings(custom, cutoff_step_h=3)
    assert (config.windows_h, config.horizon_h, config.gate_margin, config.cutoff_step_h) == ((2, 8), 4, 0.05, 3)
    assert set(config.as_params()) >= {"windows_h", "horizon_h", "xgb_max_depth", "split_fractions"}


def test_every_gate_setting_is_a_training_parameter_and_the_config_travels_between_tasks(settings: Settings) -> None:
    custom = settings.model_copy(update={"gate_confidence": 0.9, "gate_resamples": 250, "gate_min_auc": 0.7})
    config = TrainingConfig.from_settings(custom, holdout_share=0.2)
    params = config.as_params()
    assert (
        params["gate_confidence"],
        params["gate_resamples"],
        params["gate_min_auc"],
        params["gate_margin"],
        params["holdout_share"],
    ) == ("0.9", "250", "0.7", "0.01", "0.2")
    assert TrainingConfig.from_json(config.to_json()) == config
    assert isinstance(TrainingConfig.from_json(config.to_json()).xgb_params["n_estimators"], int)
    with pytest.raises(ValueError, match="unknown training parameters"):
        TrainingConfig.from_json(json.dumps({**json.loads(config.to_json()), "gate_seed": 0}))


def test_lineage_helpers(settings: Settings, tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_bytes(b"pandas==2.3.3\n")
    assert lock_sha256(lock) == hashlib.sha256(b"pandas==2.3.3\n").hexdigest()
    assert lock_sha256(tmp_path / "absent") == "missing"
    assert dataset_source(settings, "abc123", "events/") == f"s3://{settings.lakefs_repository}/abc123/events/"


def test_a_training_split_without_churners_is_refused() -> None:
    subs = subscriptions_frame([record(f"c{i}", 0) for i in range(5)])
    events = events_frame([event(f"c{i}", h) for i in range(5) for h in range(0, 30, 3)])
    config = TrainingConfig(windows_h=(1, 6), horizon_h=2, min_history_h=6, cutoff_step_h=2)
    with pytest.raises(ValueError, match="one class only"):
        build_splits(events, subs, config)


def test_signature_marks_every_feature_optional() -> None:
    X = pd.DataFrame({name: [1.0] for name in FEATURE_SPEC.numeric} | {n: ["a"] for n in FEATURE_SPEC.categorical})
    signature = model_signature(FEATURE_SPEC, X, np.array([[0.3, 0.7]]))
    assert signature.inputs.input_names() == FEATURE_SPEC.columns
    assert not any(spec.required for spec in signature.inputs.inputs)


@pytest.mark.parametrize("args", [[], ["--latest", "--data-commit", "abc"]])
def test_train_needs_exactly_one_data_selector(args: list[str]) -> None:
    result = CliRunner().invoke(train_command, args)
    assert result.exit_code == 2
    assert "exactly one of --data-commit C or --latest" in result.output
