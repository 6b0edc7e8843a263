"""The demo's closing summary: after a gate that registered nothing it shows the data, alert and training
sections only (README, "Two commands")."""

from __future__ import annotations

from collections import Counter

import pytest

from churnops.cli import demo
from churnops.platform.settings import Settings

SECTIONS_AFTER_TRAINING = ("== registry ==", "== serving", "== by customer id", "== batch scoring", "== drift ==")


def summary(gate_refused: bool) -> demo.DemoSummary:
    """A demo's summary after training, as the run fills it: one ingest commit, two alerts, both models."""
    accounting = {"rows_in": 10, "rows_published": 8, "rows_quarantined": 1, "duplicates_dropped": 1}
    return demo.DemoSummary(
        ingest_runs=1,
        commits=[{"id": "a" * 40, "accounting": accounting}],
        alerts=Counter({"quarantined_rows": 2}),
        training_runs=[
            {"model": "xgboost", "run_id": "r1", "test_roc_auc": 0.55},
            {"model": "baseline", "run_id": "r2", "test_roc_auc": 0.52},
        ],
        gate_refused=gate_refused,
    )


def test_a_refused_gate_shows_the_data_alert_and_training_sections_only(capsys: pytest.CaptureFixture[str]) -> None:
    demo.print_summary(Settings(), summary(gate_refused=True), None)

    out = capsys.readouterr().out
    assert "rows in 10 = published 8 + quarantined 1 + duplicates dropped 1" in out
    assert "alerts received: quarantined_rows=2" in out
    assert "== training (MLflow) ==" in out and "xgboost" in out and "baseline" in out
    assert [section for section in SECTIONS_AFTER_TRAINING if section in out] == []
    assert "MLflow UI: http://127.0.0.1:" in out


def test_a_registered_model_shows_every_section(capsys: pytest.CaptureFixture[str]) -> None:
    demo.print_summary(Settings(), summary(gate_refused=False), None)

    out = capsys.readouterr().out
    assert [section for section in SECTIONS_AFTER_TRAINING if section not in out] == []
