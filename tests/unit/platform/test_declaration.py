"""The platform declaration is the one source of names and versions: every reader agrees with it.

The build configs are YAML (they cannot import it), so they are held to it here; the settings, the
pipelines and the manifest renderer read it and are checked to have done so.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from churnops.deploy.render import Release, render
from churnops.platform import declaration as platform
from churnops.platform.settings import Settings
from pipelines import common

ROOT = Path(__file__).resolve().parents[3]
BUILDS = sorted(platform.BUILD_IDENTITY)
DIGEST = "sha256:" + "a" * 64
# A Google service account id (IAM's rule): 6-30 characters, lowercase letters, digits and hyphens,
# starting with a letter and not ending with a hyphen.
ACCOUNT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
# A Kubernetes object name (RFC 1123 label).
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def build_config(name: str) -> dict[str, Any]:
    """One Cloud Build config, parsed."""
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def test_the_declaration_imports_only_the_standard_library() -> None:
    """The Pulumi program imports it in an environment without churnops' dependencies."""
    tree = ast.parse(Path(platform.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        str(node.module).split(".", maxsplit=1)[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    assert imported - {"__future__"} <= set(sys.stdlib_module_names)


def test_identities_are_valid_and_distinct() -> None:
    gsas = [identity.gsa for identity in platform.IDENTITIES.values()]
    assert len(gsas) == len(set(gsas))
    assert all(ACCOUNT_ID.match(gsa) for gsa in gsas), [gsa for gsa in gsas if not ACCOUNT_ID.match(gsa)]
    bound = [(i.namespace, i.ksa) for i in platform.IDENTITIES.values() if i.ksa] + list(platform.DEPLOYER_KSAS)
    assert len(bound) == len(set(bound))
    assert all(K8S_NAME.match(str(ksa)) and namespace in platform.NAMESPACES for namespace, ksa in bound)


def test_one_identity_per_workload_and_environment() -> None:
    for workload in ("predictor", "transformer"):
        per_env = [platform.serving_identity(workload, env) for env in platform.ENVIRONMENTS]
        assert len({identity.gsa for identity in per_env}) == len(platform.ENVIRONMENTS)
        assert [identity.namespace for identity in per_env] == list(platform.SERVING_NAMESPACES.values())
    pipelines = {key for pipeline, key in platform.PIPELINE_IDENTITY.items() if pipeline != "drift"}
    assert len(pipelines) == 4 and platform.PIPELINE_IDENTITY["drift"] == platform.PIPELINE_IDENTITY["training"]
    for key in ("mlflow", "lakefs", "builder", "deployer", "attestor"):
        assert platform.identity(key).gsa.startswith("churnops-")
    with pytest.raises(KeyError, match="no identity 'nobody'"):
        platform.identity("nobody")


@pytest.mark.parametrize("name", BUILDS)
def test_build_configs_use_the_declared_names(name: str) -> None:
    config = build_config(name)
    assert config["serviceAccount"] == platform.build_service_account(name)
    expected = platform.build_substitutions(name)
    declared = {key: config["substitutions"].get(key) for key in expected}
    assert declared == expected
    assert config["options"]["pool"]["name"].endswith(f"/workerPools/{platform.WORKER_POOL}")
    email = platform.identity(platform.BUILD_IDENTITY[name]).email("$PROJECT_ID")
    actors = [
        entry.split("=", 1)[1]
        for step in config["steps"]
        for entry in step.get("env", [])
        if entry.startswith("CHURNOPS_SERVICE_ACCOUNT=")
    ]
    assert all(actor == email for actor in actors)


def test_a_build_config_that_drifts_from_the_declaration_is_caught() -> None:
    config = build_config(platform.BUILD_CI)
    config["substitutions"]["_KFP_HOST"] = "k8s://kubeflow/ml-pipeline-ui:80"
    declared = {key: config["substitutions"].get(key) for key in platform.build_substitutions(platform.BUILD_CI)}
    assert declared != platform.build_substitutions(platform.BUILD_CI)
    with pytest.raises(ValueError, match="no build config"):
        platform.build_substitutions("cloudbuild.other.yaml")


def test_gke_settings_defaults_are_the_declared_addresses_and_names() -> None:
    settings = Settings(profile="gke", gcp_project="acme-churn")
    assert settings.mlflow_tracking_uri == platform.MLFLOW.url == "http://mlflow.mlflow.svc.cluster.local:5000"
    assert settings.lakefs_endpoint == platform.LAKEFS.url
    assert settings.pipeline_service_accounts == platform.pipeline_service_accounts()
    assert settings.pipeline_settings_config_map == platform.CONFIG_MAP_PIPELINES
    assert settings.pipeline_secret == platform.SECRET_PIPELINES.name
    assert settings.deploy_service == platform.INFERENCE_SERVICE


def test_the_pipeline_settings_config_map_carries_exactly_what_tasks_read() -> None:
    data = platform.pipeline_settings("acme-churn")
    assert tuple(data) == common.CONFIG_KEYS == platform.PIPELINE_CONFIG_KEYS
    # Each value is what the task's Settings would default to on GKE for that project.
    settings = Settings(**{key.removeprefix("CHURNOPS_").lower(): value for key, value in data.items()})
    assert settings.profile == "gke" and settings.raw_bucket == "acme-churn-churnops-raw"
    assert settings.mlflow_tracking_uri == platform.MLFLOW.url
    assert set(common.SECRET_KEYS) == set(platform.SECRET_PIPELINES.keys)


@pytest.mark.parametrize("env", platform.ENVIRONMENTS)
def test_rendered_serving_pods_run_as_their_declared_identities_on_their_pool(env: str) -> None:
    settings = Settings(profile="gke", gcp_project="acme-churn")
    objects = render(settings, Release(env=env, image=DIGEST, model_uri="gs://m/1"), ROOT / "manifests")
    (isvc,) = [obj for obj in objects if obj["kind"] == "InferenceService"]
    assert isvc["metadata"]["namespace"] == platform.SERVING_NAMESPACES[env]
    for workload in ("predictor", "transformer"):
        pod = isvc["spec"][workload]
        assert pod["serviceAccountName"] == platform.serving_identity(workload, env).ksa
        assert pod["nodeSelector"] == {platform.POOL_LABEL: platform.POOL_SERVING}
        assert pod["tolerations"] == [
            {
                "key": platform.POOL_TAINT_KEY,
                "operator": "Equal",
                "value": platform.POOL_SERVING,
                "effect": "NoSchedule",
            }
        ]
    # Service accounts and RBAC are the Pulumi program's: the manifests do not define them a second time.
    assert not {obj["kind"] for obj in objects} & {"ServiceAccount", "Role", "RoleBinding"}


def test_bucket_and_registry_names() -> None:
    assert platform.bucket_name("p", "raw") == "p-churnops-raw"
    assert platform.registry("europe-west1", "p") == "europe-west1-docker.pkg.dev/p/churnops"
    with pytest.raises(ValueError, match="no bucket purpose"):
        platform.bucket_name("p", "models")


def test_the_kfp_backend_the_platform_installs_is_the_sdk_release_and_is_vendored() -> None:
    """The SDK compiles what the declared backend parses; Pulumi applies that backend's release manifests."""
    assert metadata.version("kfp-server-api") == metadata.version("kfp") == platform.KFP_BACKEND
    vendored = ROOT / "infra" / "pulumi" / "upstream" / f"kfp-{platform.KFP_BACKEND}"
    images = {image for file in vendored.glob("*.yaml") for image in re.findall(r"image: (\S+)", file.read_text())}
    assert f"ghcr.io/kubeflow/kfp-api-server:{platform.KFP_BACKEND}" in images
