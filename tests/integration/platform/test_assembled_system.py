"""The assembled system: the Pulumi program (both stacks, under mocks), the rendered overlays, the compiled
pipelines and the build configs read together, and held to the rules of the pinned upstream releases.

Each check also runs on a deliberately broken copy of one part and must fail there: a removed ConfigMap,
a ``*`` pattern on a nested image, a pod ``securityContext`` without Knative's flag, a NetworkPolicy that
drops the hop through Kourier's gateway.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from churnops.deploy.render import Release, render
from churnops.platform import declaration as platform
from churnops.platform.settings import Settings
from pipelines.compile import compile_all
from tests.support import assembly
from tests.support.assembly import Parts, Stack

ROOT = Path(__file__).resolve().parents[3]
DIGEST = "sha256:" + "b" * 64


@pytest.fixture(name="stack", scope="module", params=("staging", "prod"))
def stack_fixture(request: pytest.FixtureRequest) -> Stack:
    """What the Pulumi program registers for one stack."""
    return assembly.dump_stack(request.param)


@pytest.fixture(name="rendered", scope="module")
def rendered_fixture(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """Both overlays rendered by kustomize for the stack's project."""
    settings = Settings(profile="gke", gcp_project=stack.project)
    return {
        env: render(settings, Release(env=env, image=DIGEST, model_uri="gs://m/1"), ROOT / "manifests")
        for env in platform.ENVIRONMENTS
    }


@pytest.fixture(name="pipelines", scope="module")
def pipelines_fixture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every pipeline compiled; per pipeline, its tasks' Kubernetes executor configs."""
    specs = {}
    for path in compile_all(tmp_path_factory.mktemp("pipelines")):
        name = path.stem
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        executors = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if len(documents) > 1 else {}
        specs[name] = executors
    return specs


@pytest.fixture(name="parts")
def parts_fixture(stack: Stack, rendered: dict, pipelines: dict) -> Parts:
    """Every part, read together."""
    builds = {name: yaml.safe_load((ROOT / name).read_text(encoding="utf-8")) for name in platform.BUILD_IDENTITY}
    accounts = Settings(profile="gke", gcp_project=stack.project).pipeline_service_accounts
    return Parts(stack, rendered, pipelines, dict(accounts), builds)


def test_every_reference_is_created_by_a_part(parts: Parts) -> None:
    assert parts.pipelines and all(parts.pipelines.values()), "the compiled pipelines carry platform configs"
    assert not (problems := assembly.check_references(parts)), problems


def test_a_removed_config_map_is_caught(parts: Parts) -> None:
    broken = copy.deepcopy(parts)
    broken.stack.resources = [
        r
        for r in broken.stack.resources
        if not (r["type"] == assembly.CONFIG_MAP and r["inputs"]["metadata"]["name"] == platform.CONFIG_MAP_PIPELINES)
    ]
    problems = assembly.check_references(broken)
    assert problems and all("ConfigMap kubeflow/churnops-settings is created by nothing" in p for p in problems)


def test_an_unbound_identity_and_a_missing_service_are_caught(parts: Parts) -> None:
    broken = copy.deepcopy(parts)
    broken.stack.resources = [
        r
        for r in broken.stack.resources
        if not (
            r["type"] == assembly.WI_BINDING
            and "churnops-transformer" in r["inputs"]["member"]
            or r["type"] == assembly.HELM
            and r["inputs"]["name"] == "mlflow"
        )
    ]
    problems = assembly.check_references(broken)
    assert any("transformer" in p and "not Workload-Identity-bound" in p for p in problems)
    assert any("MLflow's address" in p for p in problems)


def test_every_image_that_will_run_is_admitted(stack: Stack) -> None:
    images = assembly.upstream_images(stack)
    assert sum(map(len, images.values())) > 30
    assert not (problems := assembly.check_admission(stack, images)), problems


def test_binary_authorization_pattern_rule() -> None:
    """The rule pattern_admits implements, as the vendored API definition states it."""
    proto = " ".join((assembly.UPSTREAM / "binauthz" / "resources.proto").read_text(encoding="utf-8").split())
    assert (
        "This supports a trailing `*` wildcard, but this is allowed only in // text after the `registry/` part. "
        "This also supports a trailing `**` // wildcard which matches subdirectories of a given entry."
    ) in proto
    queue = "gcr.io/knative-releases/knative.dev/serving/cmd/queue@sha256:" + "c" * 64
    assert not assembly.pattern_admits("gcr.io/knative-releases/*", queue)  # '*' stops at '/'
    assert assembly.pattern_admits("gcr.io/knative-releases/**", queue)  # '**' crosses it
    assert assembly.pattern_admits("gcr.io/nginx*", "gcr.io/nginx@latest")
    assert assembly.normalize_image("mysql:8.4") == "docker.io/library/mysql:8.4"
    assert assembly.normalize_image("treeverse/lakefs:1") == "docker.io/treeverse/lakefs:1"


def test_a_star_pattern_on_a_nested_image_is_caught(stack: Stack) -> None:
    broken = copy.deepcopy(stack)
    (policy,) = broken.of_type(assembly.BINAUTHZ)
    policy["admissionWhitelistPatterns"] = [
        p for p in policy["admissionWhitelistPatterns"] if "knative.dev/serving" not in p["namePattern"]
    ]
    policy["admissionWhitelistPatterns"].append({"namePattern": "gcr.io/knative-releases/*"})
    problems = assembly.check_admission(broken, assembly.upstream_images(broken))
    assert any("serving/cmd/queue" in p and "admitted by no allowlist pattern" in p for p in problems)
    assert any("gcr.io/knative-releases/* admits a whole namespace" in p for p in problems)


def test_serving_pod_specs_use_only_fields_the_pinned_knative_admits(stack: Stack, rendered: dict) -> None:
    assert not (problems := assembly.check_knative_fields(stack, rendered)), problems


def test_a_pod_security_context_without_the_flag_is_caught(stack: Stack, rendered: dict) -> None:
    broken = copy.deepcopy(stack)
    (serving,) = broken.of_type(assembly.KNATIVE_SERVING)
    del serving["spec"]["config"]["features"]["kubernetes.podspec-securitycontext"]
    problems = assembly.check_knative_fields(broken, rendered)
    assert any("predictor: Knative refuses spec.securityContext" in p for p in problems)
    assert any("transformer: Knative refuses spec.securityContext" in p for p in problems)


def test_the_required_network_flows_are_allowed(stack: Stack, rendered: dict) -> None:
    vip = assembly.resolve_google_api(stack, "storage.googleapis.com")
    assert assembly.ip_in(platform.GOOGLE_APIS_VIP_CIDR, vip)
    assert not (problems := assembly.check_network(stack, rendered)), problems


def test_a_policy_that_drops_the_ingress_hop_is_caught(stack: Stack, rendered: dict) -> None:
    broken = copy.deepcopy(rendered)
    for objects in broken.values():
        for obj in objects:
            if obj["kind"] == "NetworkPolicy" and obj["metadata"]["name"] == "transformer-egress":
                obj["spec"]["egress"] = [rule for rule in obj["spec"]["egress"] if rule["ports"][0]["port"] != 8081]
    problems = assembly.check_network(stack, broken)
    assert any("transformer -> Kourier internal gateway" in p for p in problems)


def test_google_apis_without_the_private_zone_are_caught(stack: Stack, rendered: dict) -> None:
    broken = copy.deepcopy(stack)
    broken.resources = [r for r in broken.resources if r["type"] != assembly.DNS_ZONE]
    problems = assembly.check_network(broken, rendered)
    assert any("storage.googleapis.com resolves to no private address" in p for p in problems)
