"""`churnops demo` in small: the ingest, training and scoring pipelines with kfp.local, promotion, the V2
server and a drift check; every figure it reports is checked against the lake, the registry or the model."""

from __future__ import annotations

import json

import numpy as np
import psutil
import pytest

from churnops.cli import demo
from churnops.data.versioning import open_repository
from churnops.local.localstack import LocalStack
from churnops.model import registry
from churnops.model.predict import DecisionRule
from churnops.model.scoring import load_model
from churnops.platform.settings import Settings
from churnops.training import evaluate
from tests.conftest import free_port

HOURS = 20


@pytest.mark.timeout(900)
def test_demo_runs_the_system_through_its_pipelines_and_server_and_stops_what_it_started(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A smaller lake than the demo's: windows, history and horizon that fit 20 hours (the pipeline tasks,
    # subprocesses, read the same variables).
    for name, value in {
        "CHURNOPS_FEATURE_WINDOWS_HOURS": "[1, 4]",
        "CHURNOPS_MIN_HISTORY_HOURS": "4",
        "CHURNOPS_LABEL_HORIZON_HOURS": "4",
        # 300 customers: the regularised baseline may ignore the contract or the payment method; the behavioural
        # tests hold the chosen model to the declared directions on a larger population
        "CHURNOPS_GATE_BEHAVIOUR_SHARE": "0",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings(state_dir=tmp_path, gcs_port=free_port(), mlflow_port=free_port())
    ran = demo.demo_settings(settings)
    # keep=True: the stack and the server stay up so the figures can be checked against them; stopped below,
    # also when the demo itself fails (nothing it started may outlive the test)
    try:
        summary = demo.run_demo(settings, keep=True, hours=HOURS, customers=300, seed=3)
        check_figures(ran, summary)
    finally:
        demo.stop_kept_server(settings)
        LocalStack(ran).down()

    # every log line was written (a handler left on a closed stream makes logging print "--- Logging error ---")
    assert "Logging error" not in capsys.readouterr().err
    # and then nothing it started is left
    assert not list((ran.state_dir / "run").glob("*.json"))
    ours = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert not ours


def check_figures(ran: Settings, summary: demo.DemoSummary) -> None:
    """Every figure of the summary against the lake, the registry or the model."""
    # data: every figure is what the lake's commits say, and rows add up
    repo = open_repository(ran)
    assert summary.ingest_runs == -(-(HOURS + demo.LATE_HOURS) // demo.BATCH_HOURS)
    assert summary.commits and summary.commits[-1]["id"] in {c.id for c in repo.log("main", limit=500)}
    totals = summary.totals()
    assert totals["rows_in"] == totals["rows_published"] + totals["rows_quarantined"] + totals["duplicates_dropped"]
    assert repo.read_table(summary.commits[-1]["id"], "events/").num_rows > 0
    assert totals["rows_quarantined"] > 0 and summary.alerts  # anomalies were injected, alerts were delivered

    assert {r["model"] for r in summary.training_runs} >= {"baseline", "xgboost"}
    # calibrated probabilities: each model's test calibration figures are shown, read back from its run
    client = registry.client_for(ran)
    for row in summary.training_runs:
        metrics = client.get_run(row["run_id"]).data.metrics
        assert row["calibration"] == ran.calibration
        assert row["test_calibration_error"] == round(metrics["test_calibration_error"], 4)
        assert row["test_brier"] == round(metrics["test_brier"], 4) and "test_lift_at_k" in row
    # the training pipeline's gate passed on this seeded data and its register task registered the winner
    assert not summary.gate_refused
    check_served_and_scored(ran, summary)


def check_served_and_scored(ran: Settings, summary: demo.DemoSummary) -> None:
    """Registry, server answers, predictions table and drift report, against their sources."""
    # registry: the promoted version holds production, with its history
    assert summary.production_version is not None
    assert any("promote" in line and "production" in line for line in summary.alias_history)
    # the decision rule shown is the one recorded with the production version
    version = registry.client_for(ran).get_model_version(ran.registered_model, summary.production_version)
    assert summary.decision_rule == DecisionRule.from_dict(json.loads(version.tags["decision_rule"])).describe()

    # serving: what the server answered equals the production model on the same snapshot rows
    assert summary.snapshot is not None and len(summary.predictions) == demo.EXAMPLE_CUSTOMERS
    uri = f"models:/{ran.registered_model}/{summary.production_version}"
    model = load_model(uri, ran.mlflow_tracking_uri).pipeline  # not the process-wide registry: it stops below
    rows = summary.snapshot.features.loc[[p["customer_token"] for p in summary.predictions]]
    expected = evaluate.churn_probability(model, rows[summary.snapshot.spec.columns])
    served = np.array([p["churn_probability"] for p in summary.predictions])
    np.testing.assert_allclose(served, expected, atol=1e-6)
    assert {p["model_version"] for p in summary.predictions} == {summary.production_version}

    # by customer id through the transformer: the same answers as by features, per-row errors for the rest
    by_id = {row["customer_token"]: row for row in summary.by_customer}
    for served_row in summary.predictions:
        row = by_id[served_row["customer_token"]]
        assert row["error"] == "" and row["churn_label"] == served_row["churn_label"]
        assert row["churn_probability"] == pytest.approx(served_row["churn_probability"], abs=1e-9)
    unknown = summary.by_customer[-1]
    assert unknown["churn_probability"] is None and unknown["churn_label"] == -1 and "unknown" in unknown["error"]
    (inactive,) = summary.by_customer[demo.EXAMPLE_CUSTOMERS : -1]  # a known customer that is not active
    assert "not active" in inactive["error"] and inactive["customer_token"] in summary.snapshot.inactive.index
    assert summary.by_customer_parameters["model_version"] == summary.production_version
    assert summary.by_customer_parameters["data_commit"] == summary.snapshot.data_commit
    assert not any(row["customer_token"].startswith("CUST-") for row in summary.by_customer)  # tokens, never ids
    for log in ("transformer.log", "model-server.log"):
        assert "CUST-" not in (ran.state_dir / "run" / log).read_text(encoding="utf-8", errors="replace")

    # batch scoring: one prediction per active customer, by the production version, in the lake
    table = summary.predictions_table
    assert table["rows"] == len(summary.snapshot.features)
    assert table["model_versions"] == [summary.production_version]
    assert (
        registry.alias_holder(registry.client_for(ran), ran.registered_model, "production")
        == summary.production_version
    )
    assert summary.drift["verdict"] in {"quiet", "FIRED"} and summary.drift["report"].startswith("lakefs://")
