"""submit, schedule and upload through the real kfp.Client against a KFP API double (kfp-server-api shapes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from churnops.cli.main import main
from churnops.errors import ServiceUnavailable
from churnops.platform.settings import Settings
from pipelines import remote
from tests.support.apiserver_proxy import ApiServerProxy
from tests.support.kfp_double import KfpDouble


@pytest.fixture(name="kfp_api")
def kfp_api_fixture() -> Iterator[KfpDouble]:
    """A KFP API double; every request it saw must have fit the kfp-server-api models."""
    with KfpDouble() as double:
        yield double
    assert not double.validation_errors, double.validation_errors


def test_submit_sends_the_compiled_spec_with_arguments_and_service_account(kfp_api: KfpDouble) -> None:
    settings = Settings(pipeline_root="gs://kfp-artifacts/root")
    run = remote.submit("training", {"data_commit": "abc123", "seed": 7}, settings, host=kfp_api.url)
    (sent,) = kfp_api.recorded("POST", "/apis/v2beta1/runs")
    assert sent.body["display_name"] == "churnops-training"
    assert sent.body["service_account"] == settings.pipeline_service_accounts["training"]
    assert sent.body["runtime_config"] == {"parameters": {"data_commit": "abc123", "seed": 7},
                                           "pipeline_root": "gs://kfp-artifacts/root"}
    spec = sent.body["pipeline_spec"]
    assert spec["pipeline_spec"]["pipelineInfo"]["name"] == "churnops-training"
    assert "kubernetes" in spec["platform_spec"]["platforms"]
    assert sent.body["experiment_id"] in kfp_api.experiments
    assert kfp_api.runs[run.id].display_name == "churnops-training"


def test_schedule_creates_a_six_field_cron_recurring_run(kfp_api: KfpDouble) -> None:
    settings = Settings()
    job = remote.schedule("ingest", "0 5 * * * *", {"lookback": 3}, settings, host=kfp_api.url)
    (sent,) = kfp_api.recorded("POST", "/apis/v2beta1/recurringruns")
    assert sent.body["trigger"] == {"cron_schedule": {"cron": "0 5 * * * *"}}
    assert int(sent.body["max_concurrency"]) == 1
    assert sent.body["no_catchup"] is False
    assert sent.body["service_account"] == settings.pipeline_service_accounts["ingest"]
    assert sent.body["runtime_config"]["parameters"] == {"lookback": 3}
    assert sent.body["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "churnops-ingest"
    assert kfp_api.recurring_runs[job.id].trigger.cron_schedule.cron == "0 5 * * * *"


def test_schedule_refuses_a_five_field_cron_before_calling_the_server(kfp_api: KfpDouble) -> None:
    with pytest.raises(ValueError, match="six fields"):
        remote.schedule("ingest", "5 * * * *", {}, Settings(), host=kfp_api.url)
    assert not kfp_api.requests


def test_upload_creates_the_pipeline_once_then_adds_versions(kfp_api: KfpDouble) -> None:
    settings = Settings()
    first = remote.upload("scoring", "v1", settings, host=kfp_api.url)
    second = remote.upload("scoring", "v2", settings, host=kfp_api.url)
    assert len(kfp_api.recorded("POST", "/apis/v2beta1/pipelines/upload")) == 1
    uploads = kfp_api.recorded("POST", "/apis/v2beta1/pipelines/upload_version")
    assert [u.query["name"] for u in uploads] == ["v1", "v2"]
    assert {first.id, second.id} == set(kfp_api.pipeline_versions)
    (pipeline,) = kfp_api.pipelines.values()
    assert pipeline.display_name == "churnops-scoring"
    assert all(v.pipeline_id == pipeline.pipeline_id for v in kfp_api.pipeline_versions.values())
    assert uploads[0].upload is not None and uploads[0].upload[0]["pipelineInfo"]["name"] == "churnops-scoring"


def test_cli_schedule_says_kfp_cron_has_six_fields(kfp_api: KfpDouble) -> None:
    runner = CliRunner()
    refused = runner.invoke(main, ["pipeline", "schedule", "ingest", "--cron", "5 * * * *", "--host", kfp_api.url])
    assert refused.exit_code == 2
    assert "six fields" in refused.output and "0 5 * * * *" in refused.output
    assert not kfp_api.requests
    help_text = runner.invoke(main, ["pipeline", "schedule", "--help"]).output
    assert "SIX fields" in help_text
    created = runner.invoke(main, ["pipeline", "schedule", "ingest", "--host", kfp_api.url])
    assert created.exit_code == 0, created.output
    (job,) = kfp_api.recurring_runs.values()
    assert job.trigger.cron_schedule.cron == "0 5 * * * *"


def test_cli_compile_writes_every_pipeline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, ["pipeline", "compile", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drift.yaml", "ingest.yaml", "scoring.yaml", "training.yaml"]


def test_cli_params_parse_json_values_else_strings() -> None:
    from churnops.cli.pipeline import parse_params  # pylint: disable=import-outside-toplevel

    assert parse_params(("seed=7", "data_commit=abc", "flag=true", "hour=2026-11-01T05")) == {
        "seed": 7, "data_commit": "abc", "flag": True, "hour": "2026-11-01T05"}


def test_upload_pins_the_components_image_ci_pushed(kfp_api: KfpDouble) -> None:
    digest = "europe-docker.example/churnops/churnops-components@sha256:" + "ab" * 32
    result = CliRunner().invoke(main, ["pipeline", "upload", "--host", kfp_api.url, "--version", "abc1234",
                                       "--components-image", digest])
    assert result.exit_code == 0, result.output
    uploads = kfp_api.recorded("POST", "/apis/v2beta1/pipelines/upload")
    assert sorted(u.query["name"] for u in uploads) == ["churnops-drift", "churnops-ingest",
                                                                "churnops-scoring", "churnops-training"]
    for upload in uploads:
        assert upload.upload is not None
        executors = upload.upload[0]["deploymentSpec"]["executors"]
        assert {e["container"]["image"] for e in executors.values()} == {digest}


def test_a_k8s_host_reaches_the_kfp_api_through_the_api_server_proxy_with_the_kubeconfig_token(
    kfp_api: KfpDouble, tmp_path: Path
) -> None:
    with ApiServerProxy("build-token", {"kubeflow/ml-pipeline:8888": kfp_api.wsgi}) as proxy:
        settings = Settings(kubeconfig=proxy.kubeconfig(tmp_path / "config"))
        run = remote.submit("training", {"seed": 7}, settings, host="k8s://kubeflow/ml-pipeline:8888")
        assert ("POST", "/apis/v2beta1/runs") in proxy.seen
        assert kfp_api.runs[run.id].display_name == "churnops-training"

        stale = Settings(kubeconfig=proxy.kubeconfig(tmp_path / "stale", token="expired"))
        with pytest.raises(ServiceUnavailable, match="answered 401"):
            remote.submit("training", {}, stale, host="k8s://kubeflow/ml-pipeline:8888")
        with pytest.raises(ServiceUnavailable, match="answered 403"):  # no services/proxy grant on another service
            remote.submit("training", {}, settings, host="k8s://kubeflow/ml-pipeline-ui:80")
    assert len(kfp_api.runs) == 1
