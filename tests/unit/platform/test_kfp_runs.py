"""The exit task asks the KFP API which of the run's tasks failed (against the double, kfp-server-api's models)."""

from __future__ import annotations

import pytest
from kfp_server_api import models

from churnops.errors import ServiceUnavailable
from churnops.platform.kfp_runs import FailedTask, describe_failure, failed_tasks
from churnops.platform.settings import Settings
from tests.support.kfp_double import KfpDouble


def _task(name: str, state: str, error: str = "", children: int = 0) -> models.V2beta1PipelineTaskDetail:
    return models.V2beta1PipelineTaskDetail(
        display_name=name,
        state=state,
        error=models.GoogleRpcStatus(code=2, message=error) if error else None,
        child_tasks=[models.PipelineTaskDetailChildTask(task_id=f"{name}-{i}") for i in range(children)] or None,
    )


def _failed_run(double: KfpDouble) -> None:
    double.runs["run-1"] = models.V2beta1Run(
        run_id="run-1",
        display_name="churnops-ingest 2026-11-01T05",
        state="FAILED",
        run_details=models.V2beta1RunDetails(
            task_details=[
                _task("churnops-ingest", "FAILED", "", children=1),  # the root DAG
                _task("exit-handler-1", "FAILED", "", children=3),
                _task("ingest", "SUCCEEDED"),
                _task("ingest-gate", "FAILED", "ingest refused: ValueError: hour 'x' is not a time"),
                _task("alert-on-failure", "RUNNING"),
            ]
        ),
    )


def test_the_failed_tasks_of_a_run_are_named_with_their_error() -> None:
    with KfpDouble() as double:
        _failed_run(double)
        found = failed_tasks(double.url, "run-1")
        assert not double.validation_errors
    assert found == [FailedTask("ingest-gate", "ingest refused: ValueError: hour 'x' is not a time")]
    assert str(found[0]) == "ingest-gate (ingest refused: ValueError: hour 'x' is not a time)"


def test_an_unknown_run_or_an_unreachable_api_is_service_unavailable() -> None:
    with KfpDouble() as double:
        with pytest.raises(ServiceUnavailable, match="cannot read run nope"):
            failed_tasks(double.url, "nope")
        url = double.url
    with pytest.raises(ServiceUnavailable, match="KFP API at"):
        failed_tasks(url, "run-1", timeout_seconds=2)


def test_on_the_cluster_the_alert_names_the_failed_task_and_elsewhere_what_the_status_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    status = ("exit-handler-1", "")
    with KfpDouble() as double:
        _failed_run(double)
        local = Settings()
        assert describe_failure(local, "run-1", *status, host=double.url) == status
        assert not double.recorded("GET", "/apis/v2beta1/runs/run-1")  # off the cluster the API is not asked
        monkeypatch.setenv("CHURNOPS_PROFILE", "gke")
        gke = Settings()
        assert describe_failure(gke, "run-1", *status, host=double.url) == (
            "ingest-gate",
            "ingest-gate (ingest refused: ValueError: hour 'x' is not a time)",
        )
        assert describe_failure(gke, "unknown-run", *status, host=double.url) == status  # cannot be asked
        assert double.recorded("GET", "/apis/v2beta1/runs/run-1")
