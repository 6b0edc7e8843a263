"""Both overlays, rendered by kustomize with a release's values, are valid and safe to apply.

Core kinds are checked against the upstream Kubernetes schemas (kubernetes-validate, strict), every
InferenceService against the vendored KServe CRD with unknown fields rejected, and every pod spec
against Pod Security ``restricted``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from churnops.deploy.canary import APP_REVISION_LABEL
from churnops.deploy.render import Release, image_reference, is_platform_object, render
from churnops.errors import ConfigurationError, DeploymentError
from churnops.model.registry import resolve_actor
from churnops.platform import auth
from churnops.platform import declaration as platform
from churnops.platform.settings import Settings
from tests.support.k8s_schemas import schema_errors

DIGEST = "sha256:" + "0123456789abcdef" * 4
MANIFESTS = Path(__file__).resolve().parents[3] / "manifests"


@pytest.fixture(scope="module", name="rendered")
def fixture_rendered() -> dict[str, list[dict[str, Any]]]:
    """Both overlays rendered once, with a staging and a production release."""
    settings = Settings(gcp_project="acme-churn", manifests_dir=MANIFESTS)
    return {
        "staging": render(settings, Release("staging", DIGEST, "gs://acme-models/churn/3", "3")),
        "production": render(settings, Release("production", DIGEST, "gs://acme-models/churn/4", "4")),
    }


def _isvc(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (isvc,) = [obj for obj in objects if obj["kind"] == "InferenceService"]
    return isvc


@pytest.mark.parametrize("env", ["staging", "production"])
def test_every_rendered_object_validates_against_its_upstream_schema(rendered: dict, env: str) -> None:
    kinds = sorted({obj["kind"] for obj in rendered[env]})
    # service accounts and RBAC are created by infra/pulumi from the platform declaration, not here
    assert kinds == ["InferenceService", "Namespace", "NetworkPolicy", "PodDisruptionBudget", "PodMonitoring"]
    for obj in rendered[env]:
        assert schema_errors(obj) == [], f"{obj['kind']}/{obj['metadata']['name']}"


def test_the_strict_crd_schema_rejects_unknown_and_mistyped_fields(rendered: dict) -> None:
    isvc = copy.deepcopy(_isvc(rendered["production"]))
    isvc["spec"]["predictor"]["canaryTraficPercent"] = 10
    assert any("canaryTraficPercent" in error for error in schema_errors(isvc))
    isvc = copy.deepcopy(_isvc(rendered["production"]))
    isvc["spec"]["predictor"]["minReplicas"] = "two"
    assert schema_errors(isvc)
    policy = copy.deepcopy(next(o for o in rendered["staging"] if o["kind"] == "NetworkPolicy"))
    policy["spec"]["podSelectr"] = {}
    assert schema_errors(policy)
    monitoring = copy.deepcopy(next(o for o in rendered["staging"] if o["kind"] == "PodMonitoring"))
    monitoring["spec"]["targetLabels"]["fromPod"][0]["to"] = "serving.knative.dev/revision"  # not a label name
    assert schema_errors(monitoring)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_managed_prometheus_scrapes_what_the_canary_queries_through_the_ports_the_policy_opens(
    rendered: dict, env: str
) -> None:
    objects = rendered[env]
    (monitoring,) = [o for o in objects if o["kind"] == "PodMonitoring"]
    (scrape,) = [
        o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "predictor-metrics-scrape"
    ]
    assert monitoring["metadata"]["namespace"] == f"churnops-{env}"
    assert monitoring["spec"]["selector"] == scrape["spec"]["podSelector"]
    assert {endpoint["port"] for endpoint in monitoring["spec"]["endpoints"]} == {
        port["port"] for rule in scrape["spec"]["ingress"] for port in rule["ports"]
    }
    revision = {"from": "serving.knative.dev/revision", "to": APP_REVISION_LABEL}
    assert revision in monitoring["spec"]["targetLabels"]["fromPod"]
    (isvc,) = [o for o in objects if o["kind"] == "InferenceService"]
    selected = monitoring["spec"]["selector"]["matchLabels"]["serving.kserve.io/inferenceservice"]
    assert selected == isvc["metadata"]["name"]


@pytest.mark.parametrize("env", ["staging", "production"])
def test_objects_land_in_the_environment_namespace_with_the_release_values(rendered: dict, env: str) -> None:
    namespace = f"churnops-{env}"
    for obj in rendered[env]:
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == namespace
        else:
            assert obj["metadata"]["namespace"] == namespace
    isvc = _isvc(rendered[env])
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Serverless"
    assert annotations["serving.kserve.io/enable-tag-routing"] == "true"
    assert annotations["churnops.io/model-version"] == {"staging": "3", "production": "4"}[env]
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["image"] == f"europe-west1-docker.pkg.dev/acme-churn/churnops/churnops-serving@{DIGEST}"
    model_uri = f"gs://acme-models/churn/{3 if env == 'staging' else 4}"
    assert container["env"][0] == {"name": "STORAGE_URI", "value": model_uri}
    env_vars = {e["name"]: e for e in container["env"]}
    assert env_vars["CHURNOPS_IMAGE_DIGEST"] == {"name": "CHURNOPS_IMAGE_DIGEST", "value": DIGEST}  # lineage
    assert env_vars["CHURNOPS_SERVICE_ACCOUNT"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    version = {"staging": "3", "production": "4"}[env]
    assert container["args"] == [
        "--model_uri=/mnt/models",
        "--host=0.0.0.0",
        "--model_name=churn",
        "--http_port=8080",
        f"--model_version={version}",
    ]
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"] and predictor["scaleTarget"] > 0
    assert predictor["serviceAccountName"] == "churnops-predictor"
    assert predictor["nodeSelector"] == {"cloud.google.com/gke-nodepool": "serving"}
    assert ("canaryTrafficPercent" in predictor) == (env == "production")
    transformer = isvc["spec"]["transformer"]
    (by_customer,) = transformer["containers"]
    assert by_customer["image"] == container["image"]  # the same serving image, the transformer's entry point
    assert by_customer["command"] == ["python", "-m", "serving.transformer"]
    assert by_customer["args"] == [
        "--model_name=churn",
        "--host=0.0.0.0",
        "--http_port=8080",
        "--predictor_protocol=v2",
    ]
    assert by_customer["env"][0] == {"name": "CHURNOPS_GCP_PROJECT", "value": "acme-churn"}
    lake_keys = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in by_customer["env"] if "valueFrom" in e}
    assert set(lake_keys) == {"CHURNOPS_LAKEFS_ACCESS_KEY_ID", "CHURNOPS_LAKEFS_SECRET_ACCESS_KEY"}
    assert all("value" not in e for e in by_customer["env"] if "valueFrom" in e)  # references only
    assert transformer["serviceAccountName"] == "churnops-transformer"
    assert transformer["nodeSelector"] == predictor["nodeSelector"]
    # the predictor knows its project (callers are named in it) and serves the transformer's Google identity
    assert env_vars["CHURNOPS_GCP_PROJECT"]["value"] == "acme-churn"
    gsa = platform.serving_identity("transformer", env).email("acme-churn")
    callers = Settings(
        gcp_project="acme-churn", predictor_callers=json.loads(env_vars["CHURNOPS_PREDICTOR_CALLERS"]["value"])
    )
    assert gsa in auth.allowlist(callers, callers.predictor_callers)
    transformer_env = {e["name"]: e.get("value") for e in by_customer["env"]}
    assert (
        json.loads(transformer_env["CHURNOPS_TRANSFORMER_CALLERS"])
        and int(transformer_env["CHURNOPS_TRANSFORMER_MAX_IDS_PER_MINUTE"]) > 0
    )


@pytest.mark.parametrize("env", ["staging", "production"])
def test_pod_specs_meet_pod_security_restricted(rendered: dict, env: str) -> None:
    (namespace,) = [o for o in rendered[env] if o["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for component in ("predictor", "transformer"):
        pod = _isvc(rendered[env])["spec"][component]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            assert context["readOnlyRootFilesystem"] is True
            assert "privileged" not in context and "add" not in context["capabilities"]
        assert not any(key in pod for key in ("hostNetwork", "hostPID", "hostIPC"))
        assert all("hostPath" not in volume for volume in pod.get("volumes", []))


@pytest.mark.parametrize("env", ["staging", "production"])
def test_network_is_denied_by_default_and_opened_only_for_the_predictor_paths(rendered: dict, env: str) -> None:
    policies = {o["metadata"]["name"]: o["spec"] for o in rendered[env] if o["kind"] == "NetworkPolicy"}
    assert policies["default-deny-all"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    sources = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for name in ("predictor-from-gateway", "predictor-metrics-scrape")
        for rule in policies[name]["ingress"]
        for peer in rule["from"]
    }
    assert sources == {"knative-serving", "gmp-system"}  # Kourier and the activator; the collectors
    egress_ports = {port["port"] for rule in policies["predictor-egress"]["egress"] for port in rule["ports"]}
    assert egress_ports == {53, 80, 443, 988}
    transformer = policies["transformer-egress"]
    assert transformer["podSelector"]["matchLabels"]["component"] == "transformer"
    assert transformer["policyTypes"] == ["Egress"]
    hops = {
        (rule["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], rule["ports"][0]["port"])
        for rule in transformer["egress"]
    }
    assert hops == {("knative-serving", 8081), ("knative-serving", 8012), ("lakefs", 8000)}  # Kourier, activator


def test_no_secret_value_is_rendered_and_platform_objects_are_labelled(rendered: dict) -> None:
    objects = rendered["production"]
    assert not [o for o in objects if o["kind"] == "Secret"]
    applied_by_admin = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects if is_platform_object(o))
    assert applied_by_admin == [
        "Namespace/churnops-production",
        "NetworkPolicy/default-deny-all",
        "NetworkPolicy/predictor-egress",
        "NetworkPolicy/predictor-from-gateway",
        "NetworkPolicy/predictor-metrics-scrape",
        "NetworkPolicy/transformer-egress",
        "PodDisruptionBudget/churn-predictor-predictor",
        "PodDisruptionBudget/churn-predictor-transformer",
        "PodMonitoring/churn-predictor",
    ]
    # what serves keeps a pod through voluntary disruptions: one eviction at a time, per component
    budgets = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "PodDisruptionBudget"}
    isvc = _isvc(objects)
    for component in ("predictor", "transformer"):
        budget = budgets[f"churn-predictor-{component}"]
        assert budget["maxUnavailable"] == 1 and isvc["spec"][component]["minReplicas"] >= 1
        assert budget["selector"]["matchLabels"] == {
            "serving.kserve.io/inferenceservice": "churn-predictor",
            "component": component,
        }


def test_a_canary_share_overrides_the_production_default() -> None:
    settings = Settings(manifests_dir=MANIFESTS)
    isvc = _isvc(render(settings, Release("production", DIGEST, "gs://m/5", canary_percent=25)))
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert "churnops.io/model-version" not in isvc["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("image", "uri", "env", "percent"),
    [
        ("churnops-serving:latest", "gs://m/1", "staging", None),
        ("registry/churnops-serving@sha256:abc", "gs://m/1", "staging", None),
        (DIGEST, "/local/model", "staging", None),
        (DIGEST, "gs://m/1", "qa", None),
        (DIGEST, "gs://m/1", "staging", 10),
        (DIGEST, "gs://m/1", "production", 101),
    ],
)
def test_releases_that_cannot_be_rendered_safely_are_refused(
    image: str, uri: str, env: str, percent: int | None
) -> None:
    with pytest.raises(ConfigurationError):
        release = Release(env, image, uri, canary_percent=percent)  # type: ignore[arg-type]
        image_reference(Settings(), release.image)


def test_a_manifest_whose_first_variable_is_not_the_storage_uri_fails_the_render(tmp_path: Path) -> None:
    broken = tmp_path / "manifests"
    (broken / "base").mkdir(parents=True)
    for source in (MANIFESTS / "base").iterdir():
        text = source.read_text(encoding="utf-8")
        if source.name == "inferenceservice.yaml":
            text = text.replace("- name: STORAGE_URI", "- name: MODEL_URI")
        (broken / "base" / source.name).write_text(text, encoding="utf-8")
    (broken / "overlays" / "staging").mkdir(parents=True)
    (broken / "overlays" / "staging" / "kustomization.yaml").write_text(
        (MANIFESTS / "overlays" / "staging" / "kustomization.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    with pytest.raises(DeploymentError, match="kustomize failed"):
        render(Settings(manifests_dir=broken), Release("staging", DIGEST, "gs://m/1"))


def test_the_predictors_lineage_variables_are_what_churnops_reads(
    rendered: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = _isvc(rendered["production"])["spec"]["predictor"]
    for var in predictor["containers"][0]["env"]:
        if not var["name"].startswith("CHURNOPS_"):
            continue
        if "valueFrom" in var:  # what the kubelet resolves the downward API reference to
            assert var["valueFrom"]["fieldRef"]["fieldPath"] == "spec.serviceAccountName"
            monkeypatch.setenv(var["name"], predictor["serviceAccountName"])
        else:
            monkeypatch.setenv(var["name"], var["value"])
    settings = Settings()
    assert settings.image_digest == DIGEST and settings.service_account == "churnops-predictor"
    assert resolve_actor(settings).name == "sa:churnops-predictor"
