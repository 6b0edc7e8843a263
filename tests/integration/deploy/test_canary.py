"""The production canary end to end against the doubles: the predictor and the transformer move together;
start smoke-tests both new revisions and rolls back on failure; the automatic analysis promotes (alias and
traffic as one step, undone when the traffic change fails) or rolls back, also at its deadline; every
rollback raises an alert, and a rollback that fails says so loudly."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from churnops.cli import canary as cli_canary
from churnops.deploy.canary import Canary
from churnops.model import registry
from churnops.platform.settings import Settings
from tests.integration.deploy.conftest import DIGEST, run_cli
from tests.support.kube_double import KubeApiDouble
from tests.support.prometheus_double import PrometheusDouble, load_series
from tests.support.v2_double import TransformerDouble, V2Double

PRODUCTION = "churnops-production"
NEW_IMAGE = "sha256:" + "cd" * 32
MERGE = "application/merge-patch+json"
BOTH = ("predictor", "transformer")


def _deploy_v1(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    run_cli(
        settings,
        monkeypatch,
        [
            "deploy",
            "--env",
            "production",
            "--image",
            DIGEST,
            "--model-uri",
            "gs://acme-models/churn/1",
            "--model-version",
            "1",
        ],
    )


def _start_v2(settings: Settings, monkeypatch: pytest.MonkeyPatch, predictor: V2Double, exit_code: int = 0) -> str:
    """A new model on a new image: the predictor and the transformer both get a new revision."""
    predictor.model_version = "2"  # what the new revision serves
    return run_cli(
        settings,
        monkeypatch,
        [
            "canary",
            "start",
            "--percent",
            "10",
            "--model-uri",
            "gs://acme-models/churn/2",
            "--model-version",
            "2",
            "--image",
            NEW_IMAGE,
        ],
        exit_code=exit_code,
    )


def _traffic(kube: KubeApiDouble) -> dict[str, dict[str, int]]:
    isvc = kube.stored("InferenceService", "churn-predictor", PRODUCTION)
    return {
        component: {t["tag"]: t["percent"] for t in isvc["status"]["components"][component]["traffic"]}
        for component in BOTH
    }


def _patches(kube: KubeApiDouble) -> list[Any]:
    return [w.body for w in kube.writes() if w.content_type == MERGE]


def _both(percent: int | None) -> dict[str, Any]:
    return {"spec": {component: {"canaryTrafficPercent": percent} for component in BOTH}}


def _alerts(caplog: pytest.LogCaptureFixture, kind: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if getattr(r, "alert_kind", None) == kind]


@pytest.fixture(name="prometheus")
def fixture_prometheus(request: pytest.FixtureRequest) -> Iterator[PrometheusDouble]:
    """The Prometheus double replaying the series named by the test's parameter, for both components."""
    with PrometheusDouble(load_series(request.param), Settings().probability_metric) as double:
        double.revisions = {
            f"churn-predictor-{component}-0000{number}": role
            for component in BOTH
            for number, role in ((1, "stable"), (2, "canary"))
        }
        yield double


def _with_prometheus(settings: Settings, prometheus: PrometheusDouble, monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = settings.model_copy(
        update={"prometheus_url": prometheus.url, "canary_intervals": 3, "canary_interval_s": 0.5}
    )

    def sleep(seconds: float) -> None:
        # Each analysis window starts after a sleep of canary_interval_s: the double moves to its next stored
        # window instead. Other sleeps (readiness polls) stay real, and nothing else in the process is touched.
        if seconds == settings.canary_interval_s:
            prometheus.advance()
        else:
            time.sleep(seconds)

    monkeypatch.setattr(cli_canary, "_canary", lambda s: Canary(s, cli_canary.cluster_for(s), sleep=sleep))
    return settings


def _registry(settings: Settings, tracking_uri: str) -> tuple[Settings, MlflowClient, str]:
    name = f"churn-canary-{time.monotonic_ns()}"
    settings = settings.model_copy(update={"mlflow_tracking_uri": tracking_uri, "registered_model": name})
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(name)
    for number in (1, 2):
        client.create_model_version(name, source=f"gs://acme-models/churn/{number}")
    registry.assign_alias(client, name, "production", "1", action="promote")
    return settings, client, name


def test_start_splits_the_predictor_and_the_transformer_and_smoke_tests_both(
    deploy_settings: Settings,
    kube: KubeApiDouble,
    predictor: V2Double,
    transformer: TransformerDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transformer.calls.clear()
    _deploy_v1(deploy_settings, monkeypatch)
    kube.proxied.clear()
    out = _start_v2(deploy_settings, monkeypatch, predictor)
    assert out.strip() == (
        "canary churn-predictor-predictor-00002 takes 10% of production; stable churn-predictor-predictor-00001"
    )
    isvc = kube.stored("InferenceService", "churn-predictor", PRODUCTION)
    assert [isvc["spec"][component]["canaryTrafficPercent"] for component in BOTH] == [10, 10]
    for component in BOTH:
        assert isvc["spec"][component]["containers"][0]["image"].endswith(NEW_IMAGE)
    assert isvc["metadata"]["annotations"]["churnops.io/model-version"] == "2"
    assert _traffic(kube) == {"predictor": {"prev": 90, "latest": 10}, "transformer": {"prev": 90, "latest": 10}}
    # both new revisions were smoke-tested through the API server's service proxy
    assert {revision for revision, _, _ in kube.proxied} == {
        "churn-predictor-predictor-00002",
        "churn-predictor-transformer-00002",
    }
    assert transformer.calls[-1] == "POST /v2/models/churn/infer"


@pytest.mark.parametrize("prometheus", ["healthy", "shifted"], indirect=True)
def test_auto_promotes_a_healthy_canary_moving_alias_and_traffic_together(
    deploy_settings: Settings,
    kube: KubeApiDouble,
    prometheus: PrometheusDouble,
    predictor: V2Double,
    mlflow_tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, client, name = _registry(_with_prometheus(deploy_settings, prometheus, monkeypatch), mlflow_tracking_uri)
    # Registry URIs resolve to the version's storage location and number.
    run_cli(
        settings,
        monkeypatch,
        ["deploy", "--env", "production", "--image", DIGEST, "--model-uri", f"models:/{name}@production"],
    )
    predictor.model_version = "2"
    run_cli(
        settings,
        monkeypatch,
        ["canary", "start", "--percent", "10", "--model-uri", f"models:/{name}/2", "--image", NEW_IMAGE],
    )
    isvc = kube.stored("InferenceService", "churn-predictor", PRODUCTION)
    assert isvc["spec"]["predictor"]["containers"][0]["env"][0]["value"] == "gs://acme-models/churn/2"

    out = run_cli(settings, monkeypatch, ["canary", "auto"])
    assert out.count("healthy:") == 3  # 300, 600, 900 canary requests: healthy, and three windows passed
    assert "promoted churn-predictor-predictor-00002 (model version 2) after 3 windows" in out
    if prometheus.series == load_series("shifted"):  # the shifted outputs are reported, not acted on
        assert "note: predicted-probability PSI" in out and "rolls nothing back" in out
    assert _patches(kube) == [_both(None)]  # one patch moves both components
    isvc = kube.stored("InferenceService", "churn-predictor", PRODUCTION)
    assert all("canaryTrafficPercent" not in isvc["spec"][component] for component in BOTH)
    assert _traffic(kube) == {"predictor": {"latest": 100}, "transformer": {"latest": 100}}
    assert registry.alias_holder(client, name, "production") == "2"
    assert registry.production_history(client, name) == ["1", "2"]  # the registry's alias history


@pytest.mark.parametrize("prometheus", ["healthy"], indirect=True)
def test_a_failed_promotion_moves_the_alias_back_rolls_back_and_alerts(
    deploy_settings: Settings,
    kube: KubeApiDouble,
    prometheus: PrometheusDouble,
    predictor: V2Double,
    mlflow_tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, client, name = _registry(_with_prometheus(deploy_settings, prometheus, monkeypatch), mlflow_tracking_uri)
    _deploy_v1(settings, monkeypatch)
    _start_v2(settings, monkeypatch, predictor)
    kube.fail_patches = 1  # the API server refuses the traffic change of the promotion

    out = run_cli(settings, monkeypatch, ["canary", "auto"], exit_code=2)
    assert "promotion of churn-predictor-predictor-00002 failed and was undone" in out
    assert registry.alias_holder(client, name, "production") == "1"  # moved, then moved back
    assert registry.production_history(client, name) == ["1"]
    assert _patches(kube) == [_both(None), _both(0)]  # the refused promotion, then the rollback
    assert _traffic(kube) == {"predictor": {"prev": 100, "latest": 0}, "transformer": {"prev": 100, "latest": 0}}
    (alert,) = _alerts(caplog, "canary_promotion_failed")
    assert "the production alias was moved back" in alert and "All traffic is on the stable revisions" in alert


@pytest.mark.parametrize("prometheus", ["errors", "latency"], indirect=True)
def test_auto_rolls_back_a_worse_canary_keeps_the_alias_and_alerts(
    deploy_settings: Settings,
    kube: KubeApiDouble,
    prometheus: PrometheusDouble,
    predictor: V2Double,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = _with_prometheus(deploy_settings, prometheus, monkeypatch)
    _deploy_v1(settings, monkeypatch)
    _start_v2(settings, monkeypatch, predictor)

    class Untouchable:
        """The registry, which a rollback must not touch."""

        def promote(self, version: str, note: str) -> None:
            """Fails the test."""
            pytest.fail(f"the alias must not move to {version} ({note})")

        undo = promote

    monkeypatch.setattr(cli_canary, "_alias_mover", lambda _s: Untouchable())

    out = run_cli(settings, monkeypatch, ["canary", "auto"], exit_code=1)
    assert "rolled back after window" in out and "vs stable" in out
    assert _patches(kube) == [_both(0)]
    assert _traffic(kube) == {"predictor": {"prev": 100, "latest": 0}, "transformer": {"prev": 100, "latest": 0}}
    (alert,) = _alerts(caplog, "canary_rolled_back")
    assert "production canary churn-predictor-predictor-00002 (model version 2) rolled back" in alert
    assert "the production alias is unchanged" in alert


@pytest.mark.parametrize("prometheus", ["little_traffic"], indirect=True)
def test_too_little_traffic_holds_then_the_deadline_rolls_back_with_an_alert(
    deploy_settings: Settings,
    kube: KubeApiDouble,
    prometheus: PrometheusDouble,
    predictor: V2Double,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = _with_prometheus(deploy_settings, prometheus, monkeypatch)
    _deploy_v1(settings, monkeypatch)
    _start_v2(settings, monkeypatch, predictor)
    writes_before = len(kube.writes())
    out = run_cli(settings, monkeypatch, ["canary", "analyze"], exit_code=3)
    assert "hold: " in out and "too little traffic to decide" in out
    assert len(kube.writes()) == writes_before  # analysing changes nothing

    out = run_cli(settings, monkeypatch, ["canary", "auto", "--deadline-s", "0"], exit_code=1)
    assert "rolled back: no decision within the deadline of 0 s (1 windows): too little traffic" in out
    assert _traffic(kube) == {"predictor": {"prev": 100, "latest": 0}, "transformer": {"prev": 100, "latest": 0}}
    (alert,) = _alerts(caplog, "canary_expired")
    assert "no decision within the deadline" in alert


def test_a_failed_smoke_test_rolls_the_new_canary_back_with_an_alert(
    deploy_settings: Settings,
    kube: KubeApiDouble,
    predictor: V2Double,
    transformer: TransformerDouble,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _deploy_v1(deploy_settings, monkeypatch)
    transformer.ready = False  # the new transformer revision does not answer
    out = _start_v2(deploy_settings, monkeypatch, predictor, exit_code=2)
    assert "not started and rolled back" in out and "server not ready" in out
    assert _patches(kube) == [_both(0)]
    assert _traffic(kube) == {"predictor": {"prev": 100, "latest": 0}, "transformer": {"prev": 100, "latest": 0}}
    (alert,) = _alerts(caplog, "canary_start_failed")
    assert "the canary failed to start" in alert and "All traffic is on the stable revisions" in alert


def test_a_rollback_that_fails_says_loudly_that_production_may_be_on_the_canary(
    deploy_settings: Settings,
    kube: KubeApiDouble,
    predictor: V2Double,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _deploy_v1(deploy_settings, monkeypatch)
    kube.fail_readiness = ("RevisionFailed", "Revision failed with message: container exited: OOMKilled")
    settings = deploy_settings.model_copy(update={"deploy_ready_timeout_s": 0.3, "deploy_poll_interval_s": 0.05})
    kube.fail_patches = 1  # and the rollback's patch is refused
    out = _start_v2(settings, monkeypatch, predictor, exit_code=2)
    assert "patch InferenceService/churn-predictor refused: HTTP 500" in out
    (alert,) = _alerts(caplog, "canary_rollback_failed")
    assert alert.startswith("canary_rollback_failed: PRODUCTION MAY STILL SEND TRAFFIC TO THE CANARY")
    assert "OOMKilled" in alert
    assert "churnops canary rollback" in alert


def test_manual_rollback_and_refusals(
    deploy_settings: Settings,
    kube: KubeApiDouble,
    predictor: V2Double,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert kube.stored("InferenceService", "churn-predictor", PRODUCTION) is None
    out = run_cli(deploy_settings, monkeypatch, ["canary", "rollback"], exit_code=2)
    assert "DeploymentError: no InferenceService churn-predictor in namespace churnops-production" in out
    _deploy_v1(deploy_settings, monkeypatch)
    out = run_cli(deploy_settings, monkeypatch, ["canary", "promote"], exit_code=2)
    assert "no canary in progress" in out
    predictor.model_version = None
    run_cli(
        deploy_settings, monkeypatch, ["canary", "start", "--percent", "20", "--model-uri", "gs://acme-models/churn/2"]
    )
    out = run_cli(deploy_settings, monkeypatch, ["canary", "promote"], exit_code=2)
    assert "carries no churnops.io/model-version annotation" in out
    # a new model on the same image: the transformer has no new revision and keeps all its traffic
    assert _traffic(kube) == {"predictor": {"prev": 80, "latest": 20}, "transformer": {"latest": 100}}
    out = run_cli(deploy_settings, monkeypatch, ["canary", "rollback", "--reason", "customer complaints"])
    assert "all traffic on churn-predictor-predictor-00001; production alias unchanged" in out
    isvc = kube.stored("InferenceService", "churn-predictor", PRODUCTION)
    assert [isvc["spec"][component]["canaryTrafficPercent"] for component in BOTH] == [0, 0]
    (alert,) = _alerts(caplog, "canary_rolled_back")
    assert "customer complaints" in alert


def _first_registry(settings: Settings, tracking_uri: str) -> tuple[Settings, MlflowClient, str]:
    """A registry with one version and no production alias: nothing was ever released."""
    name = f"churn-first-{time.monotonic_ns()}"
    settings = settings.model_copy(update={"mlflow_tracking_uri": tracking_uri, "registered_model": name})
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(name)
    client.create_model_version(name, source="gs://acme-models/churn/1")
    return settings, client, name


def _first_start(settings: Settings, monkeypatch: pytest.MonkeyPatch, name: str, exit_code: int = 0) -> str:
    args = ["canary", "start", "--percent", "10", "--model-uri", f"models:/{name}/1", "--image", NEW_IMAGE]
    return run_cli(settings, monkeypatch, args, exit_code=exit_code)


def test_the_first_release_serves_everything_after_its_smoke_tests_and_moves_the_alias(
    deploy_settings: Settings,
    kube: KubeApiDouble,
    predictor: V2Double,
    transformer: TransformerDouble,
    mlflow_tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No production InferenceService yet: no stable revision to split with or compare against. The new
    revisions take all traffic once both pass their smoke tests, the alias moves to the version, and the
    automatic analysis that follows in the build has nothing to analyse (and changes nothing)."""
    settings, client, name = _first_registry(deploy_settings, mlflow_tracking_uri)
    predictor.model_version = "1"
    transformer.calls.clear()
    assert kube.stored("InferenceService", "churn-predictor", PRODUCTION) is None
    out = _first_start(settings, monkeypatch, name)
    assert out.strip() == (
        "first production release: churn-predictor-predictor-00001 takes all traffic (no stable revision to "
        "compare with); production alias -> version 1"
    )
    isvc = kube.stored("InferenceService", "churn-predictor", PRODUCTION)
    assert [isvc["spec"][component]["canaryTrafficPercent"] for component in BOTH] == [100, 100]
    assert _traffic(kube) == {"predictor": {"latest": 100}, "transformer": {"latest": 100}}
    assert {revision for revision, _, _ in kube.proxied} == {
        "churn-predictor-predictor-00001",
        "churn-predictor-transformer-00001",
    }
    assert transformer.calls[-1] == "POST /v2/models/churn/infer"
    assert registry.alias_holder(client, name, "production") == "1"
    assert registry.production_history(client, name) == ["1"]
    writes = len(kube.writes())
    out = run_cli(settings, monkeypatch, ["canary", "auto"])
    assert "nothing to analyse: no canary in progress" in out
    assert len(kube.writes()) == writes and not _alerts(caplog, "canary_rolled_back")


def test_a_failed_first_release_says_loudly_that_there_is_no_stable_revision(
    deploy_settings: Settings,
    kube: KubeApiDouble,
    predictor: V2Double,
    transformer: TransformerDouble,
    mlflow_tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, client, name = _first_registry(deploy_settings, mlflow_tracking_uri)
    predictor.model_version = "1"
    transformer.ready = False  # the new transformer does not answer its smoke test
    out = _first_start(settings, monkeypatch, name, exit_code=2)
    assert "first production release of model version 1 failed" in out and "server not ready" in out
    (alert,) = _alerts(caplog, "first_release_failed")
    assert "THE FIRST PRODUCTION RELEASE FAILED and there is no stable revision to return to" in alert
    assert "the production alias is not set" in alert
    assert registry.alias_holder(client, name, "production") is None
    assert not _patches(kube)  # nothing to roll back to: no traffic change was attempted
