"""`churnops demo`: the whole data-to-model path on a real local stack, in small."""

from __future__ import annotations

import psutil

from churnops.local import demo
from churnops.platform.settings import Settings
from tests.conftest import free_port


def test_demo_ingests_trains_registers_and_stops_what_it_started(tmp_path) -> None:
    settings = Settings(state_dir=tmp_path, gcs_port=free_port(), mlflow_port=free_port())
    summary = demo.run_demo(settings, keep=False, hours=40, customers=600, seed=3)

    assert len(summary.ingests) == 40 + demo.LATE_HOURS
    totals = {key: sum(r.accounting()[key] for r in summary.ingests)
              for key in ("rows_in", "rows_published", "rows_quarantined", "duplicates_dropped")}
    assert totals["rows_in"] == totals["rows_published"] + totals["rows_quarantined"] + totals["duplicates_dropped"]
    assert totals["rows_quarantined"] > 0 and summary.alerts  # the demo injects anomalies
    commits = [r.commit_id for r in summary.ingests if r.commit_id]
    assert summary.training is not None
    assert summary.training.data_commit == commits[-1]  # trained on the latest published commit
    assert set(summary.training.metrics) == {"baseline", "xgboost"}
    assert (summary.training.model_version is not None) == summary.training.gate.passed

    run_dir = demo.demo_settings(settings).state_dir / "run"
    assert not list(run_dir.glob("*.json")), "the demo stops the stack it started"
    ours = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert not ours
