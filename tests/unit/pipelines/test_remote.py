"""submit, schedule and upload through the real kfp.Client against a KFP API double (kfp-server-api shapes)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import kfp
import kfp_server_api
import pytest
from click.testing import CliRunner

from churnops.cli.main import main
from churnops.data.ingest import scheduled_hour
from churnops.errors import ServiceUnavailable
from churnops.platform.buildinfo import git_sha
from churnops.platform.settings import Settings
from pipelines import remote
from pipelines.compile import compile_pipeline
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
    assert sent.body["runtime_config"] == {
        "parameters": {"data_commit": "abc123", "seed": 7},
        "pipeline_root": "gs://kfp-artifacts/root",
    }
    spec = sent.body["pipeline_spec"]
    assert spec["pipeline_spec"]["pipelineInfo"]["name"] == "churnops-training"
    assert "kubernetes" in spec["platform_spec"]["platforms"]
    assert sent.body["experiment_id"] in kfp_api.experiments
    assert kfp_api.runs[run.id].display_name == "churnops-training"


def test_schedule_creates_a_six_field_cron_recurring_run_of_the_uploaded_version(kfp_api: KfpDouble) -> None:
    settings = Settings()
    uploaded = remote.upload("ingest", "abc1234", settings, host=kfp_api.url)
    job = remote.schedule("ingest", "abc1234", "0 5 * * * *", {"lookback": 3}, settings, host=kfp_api.url)
    (sent,) = kfp_api.recorded("POST", "/apis/v2beta1/recurringruns")
    assert sent.body["trigger"] == {"cron_schedule": {"cron": "0 5 * * * *"}}
    assert int(sent.body["max_concurrency"]) == 1
    assert sent.body["no_catchup"] is False
    assert sent.body["service_account"] == settings.pipeline_service_accounts["ingest"]
    assert sent.body["runtime_config"]["parameters"] == {"lookback": 3}
    assert sent.body["pipeline_version_reference"]["pipeline_version_id"] == uploaded.id
    assert "pipeline_spec" not in sent.body  # the schedule names the version CI uploaded, not a spec of its own
    assert job.created and kfp_api.recurring_runs[job.id].trigger.cron_schedule.cron == "0 5 * * * *"
    assert kfp_api.recurring_runs[job.id].status == "ENABLED"


def test_scheduling_twice_leaves_one_job_and_a_new_version_replaces_it_in_place(kfp_api: KfpDouble) -> None:
    settings = Settings()
    remote.upload("ingest", "v1", settings, host=kfp_api.url)
    first = remote.schedule("ingest", "v1", None, {}, settings, host=kfp_api.url)
    again = remote.schedule("ingest", "v1", None, {}, settings, host=kfp_api.url)
    assert (again.id, again.created) == (first.id, False)
    assert len(kfp_api.recorded("POST", "/apis/v2beta1/recurringruns")) == 1

    newer = remote.upload("ingest", "v2", settings, host=kfp_api.url)
    replaced = remote.schedule("ingest", "v2", None, {}, settings, host=kfp_api.url)
    (job,) = kfp_api.recurring_runs.values()
    assert replaced.created and job.recurring_run_id == replaced.id != first.id
    assert job.pipeline_version_reference.pipeline_version_id == newer.id and job.status == "ENABLED"
    # created disabled, the old one deleted, then enabled: never two enabled jobs at once
    assert kfp_api.recorded("POST", "/apis/v2beta1/recurringruns")[-1].body["mode"] == "DISABLE"


def test_a_schedule_an_operator_disabled_stays_disabled_when_replaced(kfp_api: KfpDouble) -> None:
    settings = Settings()
    remote.upload("scoring", "v1", settings, host=kfp_api.url)
    first = remote.schedule("scoring", "v1", None, {}, settings, host=kfp_api.url)
    kfp_api.recurring_runs[first.id].status = "DISABLED"
    remote.upload("scoring", "v2", settings, host=kfp_api.url)
    remote.schedule("scoring", "v2", None, {}, settings, host=kfp_api.url)
    (job,) = kfp_api.recurring_runs.values()
    assert job.status == "DISABLED"


def test_schedule_refuses_a_version_that_is_not_uploaded(kfp_api: KfpDouble) -> None:
    with pytest.raises(remote.NotUploaded, match="churnops pipeline upload drift --version v9"):
        remote.schedule("drift", "v9", None, {}, Settings(), host=kfp_api.url)
    remote.upload("drift", "v1", Settings(), host=kfp_api.url)
    with pytest.raises(remote.NotUploaded, match="version 'v9'"):
        remote.schedule("drift", "v9", None, {}, Settings(), host=kfp_api.url)
    assert not kfp_api.recurring_runs


def test_schedule_refuses_a_five_field_cron_before_calling_the_server(kfp_api: KfpDouble) -> None:
    with pytest.raises(ValueError, match="six fields"):
        remote.schedule("ingest", "v1", "5 * * * *", {}, Settings(), host=kfp_api.url)
    assert not kfp_api.requests


def test_upload_creates_the_pipeline_once_then_adds_versions(kfp_api: KfpDouble) -> None:
    settings = Settings()
    first = remote.upload("scoring", "v1", settings, host=kfp_api.url)
    second = remote.upload("scoring", "v2", settings, host=kfp_api.url)
    # upload would add a version named "churnops-scoring"
    assert not kfp_api.recorded("POST", "/apis/v2beta1/pipelines/upload")
    assert len(kfp_api.recorded("POST", "/apis/v2beta1/pipelines")) == 1
    uploads = kfp_api.recorded("POST", "/apis/v2beta1/pipelines/upload_version")
    assert [u.query["name"] for u in uploads] == ["v1", "v2"]
    assert {first.id, second.id} == set(kfp_api.pipeline_versions)
    (pipeline,) = kfp_api.pipelines.values()
    assert pipeline.display_name == "churnops-scoring"
    assert all(v.pipeline_id == pipeline.pipeline_id for v in kfp_api.pipeline_versions.values())
    assert uploads[0].upload is not None and uploads[0].upload[0]["pipelineInfo"]["name"] == "churnops-scoring"


def test_running_ci_upload_and_schedule_twice_leaves_one_version_per_commit_and_one_job_per_pipeline(
    kfp_api: KfpDouble,
) -> None:
    runner = CliRunner()
    digest = "europe-docker.example/churnops/churnops-components@sha256:" + "cd" * 32
    for attempt in range(2):
        uploaded = runner.invoke(
            main, ["pipeline", "upload", "--host", kfp_api.url, "--version", "abc1234", "--components-image", digest]
        )
        assert uploaded.exit_code == 0, uploaded.output
        assert uploaded.output.count("already uploaded") == (6 if attempt else 0)
        scheduled = runner.invoke(main, ["pipeline", "schedule", "--host", kfp_api.url, "--version", "abc1234"])
        assert scheduled.exit_code == 0, scheduled.output
        assert scheduled.output.count("unchanged") == (4 if attempt else 0)
    assert sorted(p.display_name for p in kfp_api.pipelines.values()) == [
        "churnops-aggregates-backfill",
        "churnops-drift",
        "churnops-ingest",
        "churnops-purge",
        "churnops-scoring",
        "churnops-training",
    ]
    assert sorted(v.display_name for v in kfp_api.pipeline_versions.values()) == ["abc1234"] * 6
    # one recurring run per pipeline KFP schedules; training has one trigger, Cloud Scheduler's; the aggregates
    # backfill is run by hand
    assert sorted(j.display_name for j in kfp_api.recurring_runs.values()) == [
        "churnops-drift",
        "churnops-ingest",
        "churnops-purge",
        "churnops-scoring",
    ]
    assert all(j.status == "ENABLED" for j in kfp_api.recurring_runs.values())


def test_the_double_refuses_a_duplicate_version_name_like_the_server(kfp_api: KfpDouble, tmp_path: Path) -> None:
    remote.upload("scoring", "v1", Settings(), host=kfp_api.url)
    (pipeline_id,) = kfp_api.pipelines
    package = compile_pipeline("scoring", tmp_path)
    with pytest.raises(kfp_server_api.ApiException) as refused:
        kfp.Client(host=kfp_api.url).upload_pipeline_version(str(package), "v1", pipeline_id=pipeline_id)
    assert refused.value.status == 409
    assert len(kfp_api.pipeline_versions) == 1


def test_a_backend_older_than_the_sdk_accepts_the_upload_and_refuses_the_run_with_its_reason() -> None:
    with KfpDouble(backend_version="2.14.3") as old:
        settings = Settings()
        remote.upload("scoring", "v1", settings, host=old.url)  # upload keeps the config as a generic struct
        # The first task config the server parses names its first unknown field: either one 2.14.3 lacks.
        with pytest.raises(
            ServiceUnavailable, match=r"answered 500 .*has no field named \"(optional|securityContext)\""
        ):
            remote.submit("scoring", {}, settings, host=old.url)
        with pytest.raises(ServiceUnavailable, match="answered 500"):
            remote.schedule("scoring", "v1", None, {}, settings, host=old.url)
    assert not old.runs and not old.recurring_runs and len(old.refused) == 2
    assert not old.validation_errors


def test_cli_schedule_says_kfp_cron_has_six_fields(kfp_api: KfpDouble) -> None:
    runner = CliRunner()
    refused = runner.invoke(main, ["pipeline", "schedule", "ingest", "--cron", "5 * * * *", "--host", kfp_api.url])
    assert refused.exit_code == 2
    assert "six fields" in refused.output and "0 5 * * * *" in refused.output
    assert not kfp_api.requests
    help_text = runner.invoke(main, ["pipeline", "schedule", "--help"]).output
    assert "SIX fields" in help_text
    uploaded = runner.invoke(main, ["pipeline", "upload", "ingest", "--host", kfp_api.url, "--version", "v1"])
    assert uploaded.exit_code == 0, uploaded.output
    created = runner.invoke(main, ["pipeline", "schedule", "ingest", "--host", kfp_api.url, "--version", "v1"])
    assert created.exit_code == 0, created.output
    (job,) = kfp_api.recurring_runs.values()
    assert job.trigger.cron_schedule.cron == "0 5 * * * *"


def test_cli_refuses_to_schedule_training_which_has_one_trigger(kfp_api: KfpDouble) -> None:
    refused = CliRunner().invoke(main, ["pipeline", "schedule", "training", "--host", kfp_api.url])
    assert refused.exit_code == 2 and "Cloud Scheduler" in refused.output
    assert not kfp_api.requests


def test_the_aggregates_backfill_is_submitted_by_hand_as_the_ingest_account_and_never_scheduled(
    kfp_api: KfpDouble,
) -> None:
    """Run from the UI or ``churnops pipeline submit``: no parameter, the ingest's service account (it writes on the
    lake what the ingest writes); ``schedule`` refuses it, and scheduling every pipeline leaves it out."""
    runner = CliRunner()
    submitted = runner.invoke(main, ["pipeline", "submit", "aggregates-backfill", "--host", kfp_api.url])
    assert submitted.exit_code == 0, submitted.output
    (sent,) = kfp_api.recorded("POST", "/apis/v2beta1/runs")
    assert sent.body["display_name"] == "churnops-aggregates-backfill"
    assert sent.body["service_account"] == Settings().pipeline_service_accounts["ingest"] == "churnops-ingest"
    assert sent.body["runtime_config"].get("parameters", {}) == {}
    refused = runner.invoke(main, ["pipeline", "schedule", "aggregates-backfill", "--host", kfp_api.url])
    assert refused.exit_code == 2 and "run by hand" in refused.output
    assert not kfp_api.recorded("POST", "/apis/v2beta1/recurringruns")


def test_cli_compile_writes_every_pipeline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, ["pipeline", "compile", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "aggregates-backfill.yaml",
        "drift.yaml",
        "ingest.yaml",
        "purge.yaml",
        "scoring.yaml",
        "training.yaml",
    ]


def test_cli_params_take_the_type_the_pipeline_declares() -> None:
    from churnops.cli.pipeline import parse_params  # pylint: disable=import-outside-toplevel

    assert parse_params(("hour=2026", "lookback=7"), "ingest") == {"hour": "2026", "lookback": 7}
    assert parse_params(("data_commit=123", "seed=7"), "training") == {"data_commit": "123", "seed": 7}
    assert parse_params(("retrain=false", "model_ref=3"), "drift") == {"retrain": False, "model_ref": "3"}
    for pairs, name, message in [
        (("lookback=three",), "ingest", "lookback is integer"),
        (("retrain=maybe",), "drift", "retrain is boolean"),
        (("hours=5",), "ingest", "has no parameter 'hours'"),
        (("hour",), "ingest", "not KEY=VALUE"),
    ]:
        with pytest.raises(click.BadParameter, match=message):
            parse_params(pairs, name)


def test_upload_pins_the_components_image_ci_pushed(kfp_api: KfpDouble) -> None:
    digest = "europe-docker.example/churnops/churnops-components@sha256:" + "ab" * 32
    result = CliRunner().invoke(
        main, ["pipeline", "upload", "--host", kfp_api.url, "--version", "abc1234", "--components-image", digest]
    )
    assert result.exit_code == 0, result.output
    uploads = kfp_api.recorded("POST", "/apis/v2beta1/pipelines/upload_version")
    assert [u.query["name"] for u in uploads] == ["abc1234"] * 6
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


def test_backfill_runs_each_hour_of_the_range_once_in_order_on_the_uploaded_version(kfp_api: KfpDouble) -> None:
    runner = CliRunner()
    upload = ["pipeline", "upload", "ingest", "--host", kfp_api.url, "--version", "v1"]
    assert runner.invoke(main, upload).exit_code == 0
    args = [
        "pipeline",
        "backfill",
        "ingest",
        "--from",
        "2026-11-01T05",
        "--to",
        "2026-11-01T08",
        "--host",
        kfp_api.url,
        "--version",
        "v1",
        "--param",
        "lookback=0",
    ]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "created: 4 hour(s)" in first.output
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "unchanged" in again.output
    (job,) = kfp_api.recurring_runs.values()
    assert job.display_name == "churnops-ingest-backfill-20261101t05-20261101t08"
    assert int(job.max_concurrency) == 1 and job.no_catchup is False and job.status == "ENABLED"
    assert job.runtime_config.parameters == {"lookback": 0}
    cron = job.trigger.cron_schedule
    # The ingest cron's slots after start_time up to end_time (KFP's cron_schedule.go): 06:05 .. 09:05,
    # the runs that ingest 05:00 .. 08:00.
    assert cron.cron == "0 5 * * * *"
    assert _utc(cron.start_time) == datetime(2026, 11, 1, 6, 4, tzinfo=timezone.utc)
    assert _utc(cron.end_time) == datetime(2026, 11, 1, 9, 5, tzinfo=timezone.utc)
    slots = [_utc(cron.start_time).replace(minute=5) + timedelta(hours=n) for n in range(5)]
    assert [s for s in slots if _utc(cron.start_time) < s <= _utc(cron.end_time)] == slots[:4]
    assert [scheduled_hour("", s.isoformat()).hour for s in slots[:4]] == [5, 6, 7, 8]


def test_backfill_refuses_a_reversed_range_and_a_version_not_uploaded(kfp_api: KfpDouble) -> None:
    runner = CliRunner()
    reversed_range = runner.invoke(
        main,
        ["pipeline", "backfill", "ingest", "--from", "2026-11-01T08", "--to", "2026-11-01T05", "--host", kfp_api.url],
    )
    assert reversed_range.exit_code == 2 and "is before --from" in reversed_range.output
    with pytest.raises(remote.NotUploaded):
        remote.backfill(
            datetime(2026, 11, 1, 5, tzinfo=timezone.utc),
            datetime(2026, 11, 1, 6, tzinfo=timezone.utc),
            "v7",
            Settings(),
            host=kfp_api.url,
        )
    assert not kfp_api.recurring_runs


def _utc(value: object) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.astimezone(timezone.utc)


def test_cli_upload_and_schedule_without_version_use_the_code_version(
    kfp_api: KfpDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CHURNOPS_CODE_VERSION", "CHURNOPS_GIT_SHA"):  # a source checkout: git tells the version
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    uploaded = runner.invoke(main, ["pipeline", "upload", "ingest", "--host", kfp_api.url])
    assert uploaded.exit_code == 0, uploaded.output
    assert [v.display_name for v in kfp_api.pipeline_versions.values()] == [git_sha(Settings())]
    scheduled = runner.invoke(main, ["pipeline", "schedule", "ingest", "--host", kfp_api.url])
    assert scheduled.exit_code == 0, scheduled.output
    (job,) = kfp_api.recurring_runs.values()
    assert job.pipeline_version_reference.pipeline_version_id in kfp_api.pipeline_versions
