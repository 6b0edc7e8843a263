"""`churnops deploy` against the Kubernetes API double: what it sends, what it waits for, how it fails."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from churnops.deploy.kube import Cluster
from churnops.errors import DeploymentError
from churnops.platform.settings import Settings
from tests.integration.deploy.conftest import DIGEST, run_cli
from tests.support.kube_double import KubeApiDouble
from tests.support.v2_double import TransformerDouble, V2Double

STAGING = [
    "deploy",
    "--env",
    "staging",
    "--image",
    DIGEST,
    "--model-uri",
    "gs://acme-models/churn/3",
    "--model-version",
    "1",
]


def test_deploy_applies_server_side_waits_for_ready_and_smoke_tests(
    deploy_settings: Settings,
    kube: KubeApiDouble,
    predictor: V2Double,
    transformer: TransformerDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = run_cli(deploy_settings, monkeypatch, STAGING)
    assert out.count("\n") == 1
    assert "deployed staging: 1 object applied, revision churn-predictor-predictor-00001 ready" in out
    # the new revisions are reached through the API server's service proxy (the path a private pool has)
    proxy = f"{kube.url}/api/v1/namespaces/churnops-staging/services/churn-predictor-predictor-00001-private:http/proxy"
    assert f"smoke test passed at {proxy} (model version 1, 2 predictions" in out
    assert {revision for revision, _, _ in kube.proxied} == {
        "churn-predictor-predictor-00001",
        "churn-predictor-transformer-00001",
    }
    assert transformer.calls == ["GET /v2/health/ready", "GET /v2/models/churn/ready", "POST /v2/models/churn/infer"]
    # the API server consumes Authorization; the model server's token travels in its own header
    metadata_and_infer = predictor.tokens[2:]
    assert all(authorization is None and str(own).startswith("Bearer ey") for authorization, own in metadata_and_infer)

    writes = kube.writes()
    assert {w.verb for w in writes} == {"PATCH"}
    assert all(w.content_type == "application/apply-patch+yaml" for w in writes)
    assert all(w.params.get("fieldManager") == "churnops-deploy" for w in writes)
    assert all(w.params.get("force") in ("true", "True") for w in writes)
    written = [w.path.rsplit("/", 2)[-2] for w in writes]
    assert written == ["inferenceservices"]  # namespace and network are not the deployer's (accounts, RBAC: Pulumi's)
    stored = kube.stored("InferenceService", "churn-predictor", "churnops-staging")
    assert stored is not None
    container = stored["spec"]["predictor"]["containers"][0]
    assert container["env"][0]["value"] == "gs://acme-models/churn/3" and container["image"].endswith(DIGEST)
    assert stored["metadata"]["managedFields"][0]["manager"] == "churnops-deploy"
    polls = [r for r in kube.requests if r.verb == "GET" and r.path.endswith("/inferenceservices/churn-predictor")]
    assert len(polls) == 3  # Unknown, Unknown, Ready
    assert predictor.calls == [
        "GET /v2/health/ready",
        "GET /v2/models/churn/ready",
        "GET /v2/models/churn",
        "POST /v2/models/churn/infer",
    ]


def test_bootstrap_also_applies_the_namespace_and_network(
    deploy_settings: Settings, kube: KubeApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_cli(deploy_settings, monkeypatch, [*STAGING, "--bootstrap"])
    assert kube.stored("Namespace", "churnops-staging", None) is not None
    # the deployer's Role is defined once, by infra/pulumi: the manifests do not carry a second one
    assert kube.stored("Role", "churnops-deployer", "churnops-staging") is None
    assert kube.stored("NetworkPolicy", "default-deny-all", "churnops-staging") is not None
    monitoring = kube.stored("PodMonitoring", "churn-predictor", "churnops-staging")
    assert monitoring is not None and monitoring["spec"]["endpoints"][0]["port"] == 9091


def test_redeploying_the_same_release_changes_nothing_and_a_new_model_makes_a_new_revision(
    deploy_settings: Settings, kube: KubeApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_cli(deploy_settings, monkeypatch, STAGING)
    first = kube.stored("InferenceService", "churn-predictor", "churnops-staging")
    run_cli(deploy_settings, monkeypatch, STAGING)
    again = kube.stored("InferenceService", "churn-predictor", "churnops-staging")
    assert again["metadata"]["generation"] == first["metadata"]["generation"] == 1
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    newer = [*STAGING[:-4], "--model-uri", "gs://acme-models/churn/4"]
    out = run_cli(deploy_settings, monkeypatch, newer)
    assert "revision churn-predictor-predictor-00002 ready" in out
    assert kube.stored("InferenceService", "churn-predictor", "churnops-staging")["metadata"]["generation"] == 2


def test_a_failing_smoke_test_exits_non_zero_with_one_clear_line(
    deploy_settings: Settings, predictor: V2Double, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor.inputs = predictor.inputs[1:]
    out = run_cli(deploy_settings, monkeypatch, STAGING, exit_code=2)
    assert "SmokeTestFailed: model metadata does not match the feature spec: missing ['recency_h']" in out
    predictor.inputs = predictor.inputs + [("recency_h", "FP64")]
    out = run_cli(deploy_settings, monkeypatch, STAGING, exit_code=2)
    assert "inputs out of order from position 0 ('" in out and "expected 'recency_h')" in out
    predictor.inputs = [(name, "FP32" if name == "recency_h" else kind) for name, kind in predictor.inputs]
    out = run_cli(deploy_settings, monkeypatch, STAGING, exit_code=2)
    assert "wrong type ['recency_h']" in out
    predictor.inputs = [("recency_h", "FP64")] + predictor.inputs[:-1]
    predictor.model_version = "2"
    out = run_cli(deploy_settings, monkeypatch, STAGING, exit_code=2)
    assert "the predictor serves model version '2', expected '1'" in out
    predictor.model_version = "1"
    predictor.probability = 1.5
    out = run_cli(deploy_settings, monkeypatch, STAGING, exit_code=2)
    assert "holds values outside [0, 1]" in out
    predictor.ready = False
    out = run_cli(deploy_settings, monkeypatch, STAGING, exit_code=2)
    assert "server not ready: GET /v2/health/ready answered HTTP 503" in out


def test_a_readiness_timeout_exits_non_zero_with_the_reason(
    deploy_settings: Settings, kube: KubeApiDouble, predictor: V2Double, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube.fail_readiness = ("RevisionFailed", "Revision failed with message: container exited: OOMKilled")
    settings = deploy_settings.model_copy(update={"deploy_ready_timeout_s": 0.3, "deploy_poll_interval_s": 0.05})
    out = run_cli(settings, monkeypatch, STAGING, exit_code=2)
    assert "not Ready after 0.3 s" in out and "Ready=False RevisionFailed" in out and "OOMKilled" in out
    assert predictor.calls == []  # no smoke test against a revision that never became ready


def test_the_api_server_refusals_come_back_as_one_line(kube: KubeApiDouble) -> None:
    cluster = Cluster(k8s.ApiClient(k8s.Configuration(host=kube.url)), "someone-else")
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "x", "namespace": "churnops-staging"},
        "automountServiceAccountToken": False,
    }
    cluster.apply(sa)
    mine = Cluster(k8s.ApiClient(k8s.Configuration(host=kube.url)), "churnops-deploy")
    changed = {**sa, "automountServiceAccountToken": True}
    with pytest.raises(DeploymentError, match=r'409.*conflict with "someone-else": .automountServiceAccountToken'):
        mine.apply(changed, force=False)
    assert mine.apply(changed, force=True)["automountServiceAccountToken"] is True
    bad = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "churn-predictor", "namespace": "churnops-staging"},
        "spec": {"predictor": {"minReplicas": "two"}},
    }
    with pytest.raises(DeploymentError, match=r"422.*is invalid"):
        mine.apply(bad)
    assert mine.get("serving.kserve.io/v1beta1", "InferenceService", "churn-predictor", "churnops-staging") is None
    with pytest.raises(DeploymentError, match="no InferenceService churn-predictor in namespace churnops-staging"):
        mine.inference_service("churn-predictor", "churnops-staging")
