"""The production canary end to end against the doubles: start, automatic analysis, promotion with the
registry's alias history, rollback with an alert, and a hold when traffic is too low."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from mlflow.tracking import MlflowClient

from churnops.cli import canary as cli_canary
from churnops.deploy.canary import Canary
from churnops.platform.settings import Settings
from churnops.model import registry
from tests.integration.deploy.conftest import DIGEST, run_cli
from tests.support.kube_double import KubeApiDouble
from tests.support.prometheus_double import PrometheusDouble, load_series

PRODUCTION = "churnops-production"


def _deploy_v1(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    run_cli(settings, monkeypatch, ["deploy", "--env", "production", "--image", DIGEST, "--model-uri",
                                    "gs://acme-models/churn/1", "--model-version", "1"])


def _start_v2(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    return run_cli(settings, monkeypatch, ["canary", "start", "--percent", "10", "--model-uri",
                                           "gs://acme-models/churn/2", "--model-version", "2"])


@pytest.fixture(name="prometheus")
def fixture_prometheus(request: pytest.FixtureRequest) -> Iterator[PrometheusDouble]:
    """The Prometheus double replaying the series named by the test's parameter."""
    with PrometheusDouble(load_series(request.param), Settings().probability_metric) as double:
        double.revisions = {"churn-predictor-predictor-00001": "stable", "churn-predictor-predictor-00002": "canary"}
        yield double


def _with_prometheus(settings: Settings, prometheus: PrometheusDouble, monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = settings.model_copy(update={"prometheus_url": prometheus.url, "canary_intervals": 3})

    def sleep(seconds: float) -> None:
        # Each analysis window starts after a sleep of canary_interval_s: the double moves to its next stored
        # window instead. Other sleeps (readiness polls) stay real, and nothing else in the process is touched.
        if seconds == settings.canary_interval_s:
            prometheus.advance()
        else:
            time.sleep(seconds)

    monkeypatch.setattr(cli_canary, "_canary", lambda s: Canary(s, cli_canary.cluster_for(s), sleep=sleep))
    return settings


def test_start_splits_traffic_between_the_stable_and_the_new_revision(
    deploy_settings: Settings, kube: KubeApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    _deploy_v1(deploy_settings, monkeypatch)
    out = _start_v2(deploy_settings, monkeypatch)
    assert out.strip() == ("canary churn-predictor-predictor-00002 takes 10% of production; "
                           "stable churn-predictor-predictor-00001")
    isvc = kube.stored("InferenceService", "churn-predictor", PRODUCTION)
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert isvc["spec"]["predictor"]["containers"][0]["image"].endswith(DIGEST)  # the image is kept
    assert isvc["metadata"]["annotations"]["churnops.io/model-version"] == "2"
    traffic = {t["tag"]: t["percent"] for t in isvc["status"]["components"]["predictor"]["traffic"]}
    assert traffic == {"prev": 90, "latest": 10}


@pytest.mark.parametrize("prometheus", ["healthy"], indirect=True)
def test_auto_promotes_a_healthy_canary_and_moves_the_production_alias(
    deploy_settings: Settings, kube: KubeApiDouble, prometheus: PrometheusDouble, mlflow_tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"churn-canary-{id(prometheus)}"
    settings = _with_prometheus(deploy_settings, prometheus, monkeypatch).model_copy(
        update={"mlflow_tracking_uri": mlflow_tracking_uri, "registered_model": name}
    )
    client = MlflowClient(tracking_uri=mlflow_tracking_uri, registry_uri=mlflow_tracking_uri)
    client.create_registered_model(name)
    for number in (1, 2):
        client.create_model_version(name, source=f"gs://acme-models/churn/{number}")
    registry.assign_alias(client, name, "production", "1", action="promote")
    # Registry URIs resolve to the version's storage location and number.
    run_cli(settings, monkeypatch, ["deploy", "--env", "production", "--image", DIGEST,
                                    "--model-uri", f"models:/{name}@production"])
    run_cli(settings, monkeypatch, ["canary", "start", "--percent", "10", "--model-uri", f"models:/{name}/2"])
    isvc = kube.stored("InferenceService", "churn-predictor", PRODUCTION)
    assert isvc["spec"]["predictor"]["containers"][0]["env"][0]["value"] == "gs://acme-models/churn/2"
    assert isvc["metadata"]["annotations"]["churnops.io/model-version"] == "2"

    out = run_cli(settings, monkeypatch, ["canary", "auto"])
    assert out.count("healthy:") == 3
    assert "promoted churn-predictor-predictor-00002 (model version 2)" in out
    promote = [w for w in kube.writes() if w.content_type == "application/merge-patch+json"]
    assert [w.body for w in promote] == [{"spec": {"predictor": {"canaryTrafficPercent": None}}}]
    isvc = kube.stored("InferenceService", "churn-predictor", PRODUCTION)
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    assert isvc["status"]["components"]["predictor"]["traffic"][0]["percent"] == 100
    assert registry.alias_holder(client, name, "production") == "2"
    assert registry.production_history(client, name) == ["1", "2"]  # the registry's alias history


@pytest.mark.parametrize("prometheus", ["errors", "latency", "shifted"], indirect=True)
def test_auto_rolls_back_a_bad_canary_keeps_the_alias_and_alerts(
    deploy_settings: Settings, kube: KubeApiDouble, prometheus: PrometheusDouble, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = _with_prometheus(deploy_settings, prometheus, monkeypatch)
    _deploy_v1(settings, monkeypatch)
    _start_v2(settings, monkeypatch)
    moved: list[str] = []
    monkeypatch.setattr(cli_canary, "_alias_mover", lambda _s: lambda version, note: moved.append(version))

    out = run_cli(settings, monkeypatch, ["canary", "auto"], exit_code=1)
    assert "rolled back after window" in out
    patches = [w.body for w in kube.writes() if w.content_type == "application/merge-patch+json"]
    assert patches == [{"spec": {"predictor": {"canaryTrafficPercent": 0}}}]
    isvc = kube.stored("InferenceService", "churn-predictor", PRODUCTION)
    traffic = {t["tag"]: t["percent"] for t in isvc["status"]["components"]["predictor"]["traffic"]}
    assert traffic == {"prev": 100, "latest": 0}
    assert not moved
    alerts = [r for r in caplog.records if getattr(r, "alert_kind", None) == "canary_rolled_back"]
    assert len(alerts) == 1 and "production alias is unchanged" in alerts[0].getMessage()


@pytest.mark.parametrize("prometheus", ["little_traffic"], indirect=True)
def test_too_little_traffic_holds_and_changes_nothing(
    deploy_settings: Settings, kube: KubeApiDouble, prometheus: PrometheusDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _with_prometheus(deploy_settings, prometheus, monkeypatch)
    _deploy_v1(settings, monkeypatch)
    _start_v2(settings, monkeypatch)
    writes_before = len(kube.writes())
    out = run_cli(settings, monkeypatch, ["canary", "analyze"], exit_code=3)
    assert "hold: " in out and "too little traffic to decide" in out
    out = run_cli(settings, monkeypatch, ["canary", "auto"], exit_code=3)
    assert "held: 3 of 3 windows had too little traffic to decide" in out
    assert len(kube.writes()) == writes_before


def test_manual_rollback_and_refusals(
    deploy_settings: Settings, kube: KubeApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kube.stored("InferenceService", "churn-predictor", PRODUCTION) is None
    out = run_cli(deploy_settings, monkeypatch, ["canary", "rollback"], exit_code=2)
    assert "DeploymentError: no InferenceService churn-predictor in namespace churnops-production" in out
    _deploy_v1(deploy_settings, monkeypatch)
    out = run_cli(deploy_settings, monkeypatch, ["canary", "promote"], exit_code=2)
    assert "no canary in progress" in out
    run_cli(deploy_settings, monkeypatch,
            ["canary", "start", "--percent", "20", "--model-uri", "gs://acme-models/churn/2"])
    out = run_cli(deploy_settings, monkeypatch, ["canary", "promote"], exit_code=2)
    assert "carries no churnops.io/model-version annotation" in out
    out = run_cli(deploy_settings, monkeypatch, ["canary", "rollback", "--reason", "customer complaints"])
    assert "all traffic on churn-predictor-predictor-00001; production alias unchanged" in out
    isvc = kube.stored("InferenceService", "churn-predictor", PRODUCTION)
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0
