"""The assembled system, read from its parts, and the upstream rules it is held to.

The parts: the Pulumi program's resources (both stacks, under mocks, dumped by ``infra/dump_resources.py``
in the program's own environment), the rendered kustomize overlays, the compiled pipelines and the
Cloud Build configs. The rules, from the pinned upstream releases vendored under
``tests/specs/upstream`` (see its README): Binary Authorization's allowlist pattern semantics,
Knative Serving's pod-spec field masks and feature flags, the images every pinned release runs, and
Kourier's internal gateway. Each ``check_*`` function returns the problems it finds (empty: none), so
a test can run it on the real parts and on a deliberately broken copy.
"""

from __future__ import annotations

import json
import re

# The Pulumi program's own interpreter runs the dump script: an argument list, never a shell.
import subprocess  # nosec B404
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import celpy
import yaml
from celpy import celtypes

from churnops.platform import declaration as platform

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ROOT / "tests" / "specs" / "upstream"
KNATIVE = UPSTREAM / "knative-serving-1.18.0"
OPERATOR = UPSTREAM / "knative-operator-1.18.1"
CHARTS = UPSTREAM / "charts"
INFRA_PYTHON = ROOT / "infra" / "pulumi" / ".venv" / "bin" / "python"
SA = "kubernetes:core/v1:ServiceAccount"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
GSA = "gcp:serviceaccount/account:Account"
WI_BINDING = "gcp:serviceaccount/iAMMember:IAMMember"
HELM = "kubernetes:helm.sh/v3:Release"
CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup"
KNATIVE_SERVING = "kubernetes:operator.knative.dev/v1beta1:KnativeServing"
BINAUTHZ = "gcp:binaryauthorization/policy:Policy"


@dataclass
class Stack:
    """The resources one stack's program registers."""

    name: str
    project: str
    resources: list[dict[str, Any]]

    def of_type(self, token: str) -> list[dict[str, Any]]:
        """The inputs of every resource of type ``token``."""
        return [r["inputs"] for r in self.resources if r["type"] == token]

    def kfp_objects(self) -> list[dict[str, Any]]:
        """The objects of KFP's release manifests the program applies."""
        return [obj for group in self.of_type(CONFIG_GROUP) for obj in group.get("objs", [])]


def dump_stack(name: str) -> Stack:
    """Run the Pulumi program for stack ``name`` under mocks in its environment; its resources."""
    completed = subprocess.run(  # nosec B603
        [str(INFRA_PYTHON), str(ROOT / "infra" / "dump_resources.py"), name],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the Pulumi program failed for {name}: {completed.stderr[-2000:]}")
    data = json.loads(completed.stdout)
    return Stack(data["stack"], data["project"], data["resources"])


# ---- references: everything referenced is created -------------------------------------------------


@dataclass
class Parts:
    """What the checks read: one stack, the rendered overlays, the compiled pipelines, the builds."""

    stack: Stack
    rendered: dict[str, list[dict[str, Any]]]  # environment -> objects
    pipelines: dict[str, dict[str, Any]]  # pipeline -> compiled platform spec (kubernetes executor configs)
    pipeline_accounts: dict[str, str]  # pipeline -> service account runs use
    builds: dict[str, dict[str, Any]]  # file -> parsed config
    problems: list[str] = field(default_factory=list)


def _ksas(stack: Stack) -> dict[tuple[str, str], dict[str, Any]]:
    found = {(sa["metadata"]["namespace"], sa["metadata"]["name"]): sa for sa in stack.of_type(SA)}
    for obj in stack.kfp_objects():
        if obj["kind"] == "ServiceAccount":
            found[(obj["metadata"].get("namespace", platform.NS_KUBEFLOW), obj["metadata"]["name"])] = obj
    return found


def _roles(stack: Stack) -> set[tuple[str, str]]:
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in stack.of_type(ROLE)}
    roles |= {
        (o["metadata"].get("namespace", platform.NS_KUBEFLOW), o["metadata"]["name"])
        for o in stack.kfp_objects()
        if o["kind"] == "Role"
    }
    return roles


def _config_maps(stack: Stack) -> dict[tuple[str, str], set[str]]:
    return {
        (c["metadata"]["namespace"], c["metadata"]["name"]): set(c.get("data") or {}) for c in stack.of_type(CONFIG_MAP)
    }


def _secrets(stack: Stack) -> dict[tuple[str, str], set[str]]:
    """Kubernetes Secrets External Secrets renders: (namespace, name) -> keys."""
    return {
        (e["metadata"]["namespace"], e["spec"]["target"]["name"]): set(e["spec"]["target"]["template"]["data"])
        for e in stack.of_type(EXTERNAL_SECRET)
    }


def _gsas(stack: Stack) -> set[str]:
    return {platform.gsa_email(a["accountId"], stack.project) for a in stack.of_type(GSA)} | {
        platform.gsa_email(platform.identity("nodes").gsa, stack.project)
    }


def _wi_members(stack: Stack) -> set[tuple[str, str]]:
    """(GSA e-mail, ``namespace/ksa``) pairs bound through Workload Identity."""
    pairs = set()
    for binding in stack.of_type(WI_BINDING):
        if binding["role"] == "roles/iam.workloadIdentityUser":
            match = re.search(r"\[([^/]+/[^\]]+)\]$", binding["member"])
            if match:
                pairs.add((binding["serviceAccountId"].rsplit("/", 1)[-1], match.group(1)))
    return pairs


def _services(stack: Stack) -> set[tuple[str, str, int]]:
    """(namespace, service, port) the platform creates: Helm releases' services and KFP's."""
    found = set()
    for release in stack.of_type(HELM):
        port = (release.get("values") or {}).get("service", {}).get("port")
        if port:
            found.add((release["namespace"], release["name"], int(port)))
    for obj in stack.kfp_objects():
        if obj["kind"] == "Service":
            for port in obj["spec"].get("ports", []):
                found.add(
                    (obj["metadata"].get("namespace", platform.NS_KUBEFLOW), obj["metadata"]["name"], int(port["port"]))
                )
    return found


def check_identity(stack: Stack, namespace: str, ksa: str, where: str) -> list[str]:
    """The service account exists, and the Google identity it names exists and is bound to it."""
    accounts = _ksas(stack)
    if (namespace, ksa) not in accounts:
        return [f"{where}: service account {namespace}/{ksa} is created by nothing"]
    gsa = ((accounts[(namespace, ksa)].get("metadata") or {}).get("annotations") or {}).get(platform.WI_ANNOTATION)
    if gsa is None:
        return []
    problems = []
    if gsa not in _gsas(stack):
        problems.append(f"{where}: {namespace}/{ksa} acts as {gsa}, which is created by nothing")
    if (gsa, f"{namespace}/{ksa}") not in _wi_members(stack):
        problems.append(f"{where}: {namespace}/{ksa} is not Workload-Identity-bound to {gsa}")
    return problems


def check_references(parts: Parts) -> list[str]:
    """Every ConfigMap, Secret, service account, Google identity, RBAC subject and service address that
    a part references is created by a part."""
    stack = parts.stack
    secrets = _secrets(stack)
    problems = _check_pipeline_configs(parts)
    for pipeline, ksa in parts.pipeline_accounts.items():
        problems += check_identity(stack, platform.NS_KUBEFLOW, ksa, f"pipeline {pipeline}")
    for env, objects in parts.rendered.items():
        namespace = platform.SERVING_NAMESPACES[env]
        for isvc in (o for o in objects if o["kind"] == "InferenceService"):
            for component in ("predictor", "transformer"):
                pod = isvc["spec"][component]
                where = f"{env} {component}"
                problems += check_identity(stack, namespace, pod.get("serviceAccountName", "default"), where)
                refs = [
                    (env_var.get("valueFrom") or {}).get("secretKeyRef")
                    for container in pod["containers"]
                    for env_var in container.get("env", [])
                ]
                problems += [
                    f"{where}: Secret {namespace}/{ref['name']} key {ref['key']} is created by nothing"
                    for ref in refs
                    if ref and ref["key"] not in secrets.get((namespace, ref["name"]), set())
                ]
                callers = [
                    account
                    for container in pod["containers"]
                    for env_var in container.get("env", [])
                    if env_var["name"].endswith("_CALLERS")
                    for account in json.loads(env_var["value"])
                ]
                problems += [
                    f"{where}: caller {account} is created by nothing"
                    for account in callers
                    if platform.gsa_email(account, stack.project) not in _gsas(stack)
                ]
    problems += _check_rbac(stack)
    problems += _check_builds(parts)
    for url, what in ((platform.MLFLOW, "MLflow"), (platform.LAKEFS, "lakeFS")):
        if (url.namespace, url.name, url.port) not in _services(stack):
            problems.append(f"{what}'s address {url.url} is served by nothing the platform installs")
    return problems


def _check_pipeline_configs(parts: Parts) -> list[str]:
    """The ConfigMaps and Secrets every compiled task takes as environment exist in kubeflow with those keys."""
    problems = []
    kinds = (
        ("configMapAsEnv", "configMapName", "configMapKey", "ConfigMap", _config_maps(parts.stack)),
        ("secretAsEnv", "secretName", "secretKey", "Secret", _secrets(parts.stack)),
    )
    for pipeline, spec in parts.pipelines.items():
        for task, config in spec.items():
            for field_name, name_key, key_key, kind, existing in kinds:
                for ref in config.get(field_name, []):
                    keys = {entry[key_key] for entry in ref.get("keyToEnv", [])}
                    have = existing.get((platform.NS_KUBEFLOW, ref[name_key]))
                    where = f"pipeline {pipeline}, task {task}"
                    if have is None:
                        problems.append(f"{where}: {kind} kubeflow/{ref[name_key]} is created by nothing")
                    elif keys - have:
                        problems.append(f"{where}: {kind} {ref[name_key]} lacks {sorted(keys - have)}")
    return problems


def _check_rbac(stack: Stack) -> list[str]:
    problems, roles, accounts, gsas = [], _roles(stack), _ksas(stack), _gsas(stack)
    for binding in stack.of_type(ROLE_BINDING):
        namespace = binding["metadata"]["namespace"]
        name = f"RoleBinding {namespace}/{binding['metadata']['name']}"
        if binding["roleRef"]["kind"] == "Role" and (namespace, binding["roleRef"]["name"]) not in roles:
            problems.append(f"{name}: Role {binding['roleRef']['name']} is created by nothing")
        for subject in binding["subjects"]:
            if subject["kind"] == "ServiceAccount" and (subject["namespace"], subject["name"]) not in accounts:
                problems.append(f"{name}: subject {subject['namespace']}/{subject['name']} is created by nothing")
            if (
                subject["kind"] == "User"
                and subject["name"].endswith(".iam.gserviceaccount.com")
                and subject["name"] not in gsas
            ):
                problems.append(f"{name}: subject {subject['name']} is created by nothing")
    return problems


def _check_builds(parts: Parts) -> list[str]:
    problems, stack = [], parts.stack
    services = _services(stack)
    gsas = {email.replace(stack.project, "$PROJECT_ID") for email in _gsas(stack)}
    for file, config in parts.builds.items():
        account = config["serviceAccount"].rsplit("/", 1)[-1]
        if account not in gsas:
            problems.append(f"{file}: runs as {account}, which is created by nothing")
        for value in config.get("substitutions", {}).values():
            for namespace, service, port in re.findall(r"k8s://([a-z0-9-]+)/([a-z0-9-]+):(\d+)", str(value)):
                if (namespace, service, int(port)) not in services:
                    problems.append(f"{file}: {namespace}/{service}:{port} is served by nothing")
    return problems


# ---- admission: Binary Authorization ------------------------------------------------------------------


def _go_constants(path: Path) -> dict[str, str]:
    """The string constants a Go file declares (``name = "value"``)."""
    return dict(re.findall(r'^\s+(\w+)\s+= "([^"]*)"$', path.read_text(encoding="utf-8"), flags=re.M))


def normalize_image(image: str) -> str:
    """A reference as the registry names it, by Docker's normalisation (distribution/reference's
    ``splitDockerDomain``, vendored): a first element with a ``.`` or ``:``, ``localhost`` or an upper-case
    letter is a registry; anything else is on Docker Hub, whose one-element names are under ``library/``."""
    constants = _go_constants(UPSTREAM / "distribution-reference" / "normalize.go")
    hub, legacy, official = (
        constants["defaultDomain"],
        constants["legacyDefaultDomain"],
        constants["officialRepoPrefix"],
    )
    first, has_path, rest = image.partition("/")
    if not has_path:
        domain, remote = hub, image
    elif first == "localhost" or any(c in first for c in ".:") or first.lower() != first:
        domain, remote = (hub if first == legacy else first), rest
    else:
        domain, remote = hub, image
    if domain == hub and "/" not in remote:
        remote = official + remote
    return f"{domain}/{remote}"


def operator_image_tag(chart_version: str) -> str:
    """The tag the Knative operator's chart gives its images: its release script (``hack/generate-helm.sh``,
    vendored) writes ``${VERSION}`` for ``{{ tag }}`` in values.yaml and ``${VERSION:1}`` (the version
    without its leading ``v``) for ``{{ version }}`` in Chart.yaml, so the tag is the chart version with
    its ``v``."""
    script = (OPERATOR / "generate-helm.sh").read_text(encoding="utf-8")
    tag = re.search(r'sed -i\.bak "s/\{\{ tag \}\}/\$\{VERSION\}/g" \$\{TARGET_DIR\}/values\.yaml', script)
    version = re.search(r'sed -i\.bak "s/\{\{ version \}\}/\$\{VERSION:1\}/g" \$\{TARGET_DIR\}/Chart\.yaml', script)
    default = re.search(r"^VERSION=(v[\d.]+)$", script, flags=re.M)
    if not (tag and version and default):
        raise ValueError("the vendored generate-helm.sh no longer sets the chart's tag this way")
    return chart_version if chart_version.startswith("v") else "v" + chart_version


def pattern_admits(pattern: str, image: str) -> bool:
    """Binary Authorization's allowlist rule (``AdmissionWhitelistPattern``, vendored proto): a trailing ``**``
    matches subdirectories; a trailing ``*`` matches within one path segment (it does not cross ``/``)."""
    if pattern.endswith("**"):
        return image.startswith(pattern[:-2])
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return image.startswith(prefix) and "/" not in image[len(prefix) :]
    return image == pattern


def _values(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _dig(values: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        values = values[key]
    return values


def _containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj.get("spec") or {}
    pod = (
        (spec.get("template") or {}).get("spec")
        or (spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec"))
        or {}
    )
    yield from pod.get("containers", [])
    yield from pod.get("initContainers", [])


def _manifest_images(objects: list[dict[str, Any]]) -> set[str]:
    images = set()
    for obj in objects:
        for container in _containers(obj):
            images.add(container["image"])
            images |= {e["value"] for e in container.get("env", []) if e["name"].endswith("_IMAGE") and "value" in e}
            args = container.get("args", [])
            images |= {args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--executor-image"}
        if obj.get("kind") == "ConfigMap" and obj["metadata"]["name"] == "config-deployment":
            images.add(obj["data"]["queue-sidecar-image"])
    return images


def upstream_images(stack: Stack) -> dict[str, set[str]]:
    """Every image the pinned platform releases run, by release, read from their vendored sources."""
    knative = [
        o
        for f in (OPERATOR / "serving-core-1.18.0.yaml", OPERATOR / "kourier-1.18.yaml")
        for o in yaml.safe_load_all(f.read_text(encoding="utf-8"))
        if o
    ]
    kserve = _values(CHARTS / "kserve-v0.15.2" / "values.yaml")["kserve"]
    kserve_tag = _values(CHARTS / "kserve-v0.15.2" / "Chart.yaml")["version"]
    certs = _values(CHARTS / "cert-manager-v1.18.2" / "values.yaml")
    eso = _values(CHARTS / "external-secrets-0.19.2" / "values.yaml")
    eso_tag = _values(CHARTS / "external-secrets-0.19.2" / "Chart.yaml")["appVersion"]
    lakefs = _values(CHARTS / "lakefs-1.11.1" / "values.yaml")
    mlflow = _values(CHARTS / "mlflow-1.7.3" / "values.yaml")
    mlflow_tag = _values(CHARTS / "mlflow-1.7.3" / "Chart.yaml")["appVersion"]
    # The chart's release script substitutes the release's tag for the template's {{ tag }}.
    operator_values = (CHARTS / "knative-operator-v1.18.1" / "values.yaml").read_text(encoding="utf-8")
    operator = yaml.safe_load(
        operator_values.replace("{{ tag }}", operator_image_tag(platform.KNATIVE_OPERATOR.version))
    )["knative_operator"]
    return {
        "kubeflow-pipelines": _manifest_images(stack.kfp_objects()),
        "knative-serving": _manifest_images(knative),
        "knative-operator": {
            f"{operator[c]['image']}:{operator[c]['tag']}" for c in ("knative_operator", "operator_webhook")
        },
        "kserve": {
            f"{kserve['controller']['image']}:{kserve_tag}",
            kserve["controller"]["rbacProxyImage"],
            f"{kserve['storage']['image']}:{kserve_tag}",
        },  # injected into every predictor
        "cert-manager": {f"{certs[part]['repository']}:{platform.CERT_MANAGER.version}" for part in ("image",)}
        | {
            f"{_dig(certs, part + '.image.repository')}:{platform.CERT_MANAGER.version}"
            for part in ("webhook", "cainjector", "startupapicheck")
        },
        "external-secrets": {
            f"{eso['image']['repository']}:{eso_tag}",
            f"{eso['webhook']['image']['repository']}:{eso_tag}",
            f"{eso['certController']['image']['repository']}:{eso_tag}",
        },
        "lakefs": {f"treeverse/lakefs:{lakefs['image']['community']['tag']}"},
        "mlflow": _mlflow_images(stack, mlflow, mlflow_tag),
    }


def _mlflow_images(stack: Stack, defaults: dict[str, Any], tag: str) -> set[str]:
    """The upstream images the MLflow release runs: the chart's (server, migration, auth-file init), each unless
    the release's values replace it (the program runs the project's components image, admitted by attestation)."""
    (release,) = [r for r in stack.of_type(HELM) if r["name"] == "mlflow"]
    values = release.get("values") or {}
    found = set()
    for path in ("image", "initImages.mlflowDbMigration", "initImages.iniFileInitializer"):
        if _dig_or_none(values, path) is None:
            image = _dig(defaults, path)
            found.add(f"{image['repository']}:{image.get('tag') or tag}")
    return found


def _dig_or_none(values: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(values, dict) or key not in values:
            return None
        values = values[key]
    return values


def check_admission(stack: Stack, images: dict[str, set[str]]) -> list[str]:
    """Every image that will run is admitted: ours by attestation, upstream ones by an allowlist pattern
    under the upstream rule; and no pattern admits a whole registry namespace."""
    (policy,) = stack.of_type(BINAUTHZ)
    patterns = [entry["namePattern"] for entry in policy.get("admissionWhitelistPatterns", [])]
    problems = []
    for release, refs in images.items():
        for image in sorted(refs):
            name = normalize_image(image)
            if not any(pattern_admits(pattern, name) for pattern in patterns):
                problems.append(f"{release}: {name} is admitted by no allowlist pattern")
    every = {normalize_image(image) for refs in images.values() for image in refs}
    for pattern in patterns:
        if not any(pattern_admits(pattern, image) for image in every):
            problems.append(f"allowlist pattern {pattern} admits no image the platform runs")
        if pattern.endswith("/*") or pattern.endswith("**"):
            problems.append(f"allowlist pattern {pattern} admits a whole namespace of a registry")
    rule = policy["defaultAdmissionRule"]
    if rule["evaluationMode"] != "REQUIRE_ATTESTATION":
        problems.append("our own images must need the build's attestation")
    return problems


# ---- Knative: the pod-spec fields the pinned release admits ---------------------------------------------


def _json_name(go_field: str) -> str:
    """The JSON name of a Kubernetes Go field: its leading initialism or word in lower case (FSGroup: fsGroup)."""
    lead = re.match(r"[A-Z]+(?=[A-Z][a-z]|$)|[A-Z]", go_field)
    assert lead is not None, go_field
    return lead.group(0).lower() + go_field[lead.end() :]


def knative_flags(features: dict[str, str]) -> dict[str, str]:
    """Feature flag name -> value: the release's defaults with ``features`` (the config the platform sets)."""
    source = (KNATIVE / "features.go").read_text(encoding="utf-8")
    defaults_body = source[source.index("func defaultFeaturesConfig()") :]
    defaults_body = defaults_body[: defaults_body.index("\n}\n")]
    defaults = dict(re.findall(r"^\s+(\w+):\s+(\w+),$", defaults_body, flags=re.M))
    constants = dict(re.findall(r'^\t(Feature\w+)\s+= "([\w.-]+)"$', source, flags=re.M))
    names = {
        constants.get(name, name.strip('"')): go_field
        for name, go_field in re.findall(r'asFlag\(("[\w.-]+"|Feature\w+), &nc\.(\w+)\)', source)
    }
    flags = {name: defaults.get(go_field, "Disabled").lower() for name, go_field in names.items()}
    flags.update({key: value.lower() for key, value in features.items()})
    return flags | {"__fields__": json.dumps(names)}


def knative_allowed_pod_fields(flags: dict[str, str]) -> tuple[set[str], set[str]]:
    """(pod-spec fields, pod securityContext fields) Knative admits with ``flags``, from its field masks."""
    names = json.loads(flags["__fields__"])
    by_field = {go_field: name for name, go_field in names.items()}
    source = (KNATIVE / "fieldmask.go").read_text(encoding="utf-8")
    body = source[source.index("func PodSpecMask(") :]
    body = body[: body.index("\n}\n")]
    allowed = set(re.findall(r"^\tout\.(\w+) = in\.\1$", body[: body.index("// Feature fields")], flags=re.M))
    if "AutomountServiceAccountToken" in body:
        allowed.add("AutomountServiceAccountToken")  # admitted when false (the mask's own comment)
    for go_flag, go_field in re.findall(r"if cfg\.Features\.(\w+) != config\.Disabled \{\n\t\tout\.(\w+) = in", body):
        if flags.get(by_field.get(go_flag, ""), "disabled") != "disabled":
            allowed.add(go_field)
    security = source[source.index("func PodSecurityContextMask(") :]
    security = security[: security.index("\n}\n")]
    security_fields = {"SeccompProfile"} if flags.get("secure-pod-defaults") == "enabled" else set()
    if flags.get("kubernetes.podspec-securitycontext", "disabled") != "disabled":
        security_fields |= set(re.findall(r"^\tout\.(\w+) = in\.\1$", security, flags=re.M))
    return {_json_name(f) for f in allowed}, {_json_name(f) for f in security_fields}


# Fields of a KServe component that are KServe's own, not the pod's (the CRD's ComponentExtensionSpec).
KSERVE_COMPONENT_FIELDS = {
    "minReplicas",
    "maxReplicas",
    "scaleMetric",
    "scaleMetricType",
    "scaleTarget",
    "containerConcurrency",
    "timeout",
    "canaryTrafficPercent",
    "logger",
    "batcher",
    "labels",
    "annotations",
    "deploymentStrategy",
    "autoScaling",
}


def check_knative_fields(stack: Stack, rendered: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every pod-spec field our InferenceServices set is one the pinned Knative admits with the flags the
    platform's KnativeServing sets."""
    (serving,) = stack.of_type(KNATIVE_SERVING)
    flags = knative_flags(serving["spec"].get("config", {}).get("features", {}))
    pod_fields, security_fields = knative_allowed_pod_fields(flags)
    problems = []
    for env, objects in rendered.items():
        for isvc in (o for o in objects if o["kind"] == "InferenceService"):
            for component in ("predictor", "transformer"):
                pod = isvc["spec"][component]
                for key in sorted(set(pod) - KSERVE_COMPONENT_FIELDS - pod_fields):
                    problems.append(f"{env} {component}: Knative refuses spec.{key} with the flags set")
                if "securityContext" in pod and "securityContext" in pod_fields:
                    for key in sorted(set(pod["securityContext"]) - security_fields):
                        problems.append(f"{env} {component}: Knative refuses securityContext.{key}")
    return problems


# ---- admission: what an InferenceService in a serving namespace may run -------------------------------

ADMISSION_POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
ADMISSION_BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"


def _selects(binding: dict[str, Any], namespace: str) -> bool:
    """Whether a binding's namespace selector (``kubernetes.io/metadata.name`` expressions) selects ``namespace``."""
    selector = binding["spec"].get("matchResources", {}).get("namespaceSelector", {})
    for expression in selector.get("matchExpressions", []):
        if expression["key"] != "kubernetes.io/metadata.name":
            raise AssertionError(f"unexpected namespace selector {expression}")
        inside = namespace in expression["values"]
        if inside != (expression["operator"] == "In"):
            return False
    return True


def _matches(policy: dict[str, Any], obj: dict[str, Any], operation: str) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    for rule in policy["spec"]["matchConstraints"]["resourceRules"]:
        if (
            group in rule["apiGroups"]
            and (version in rule["apiVersions"] or "*" in rule["apiVersions"])
            and operation in rule["operations"]
            and f"{obj['kind'].lower()}s" in rule["resources"]
        ):
            return True
    return False


def admission_refusals(stack: Stack, namespace: str, obj: dict[str, Any], operation: str = "CREATE") -> list[str]:
    """The messages of the stack's ValidatingAdmissionPolicies (bound to ``namespace`` with ``Deny``) whose CEL
    rules refuse ``obj``; an expression that fails to evaluate refuses too (``failurePolicy: Fail``)."""
    policies = {p["metadata"]["name"]: p for p in stack.of_type(ADMISSION_POLICY)}
    refusals: list[str] = []
    environment = celpy.Environment()
    for binding in stack.of_type(ADMISSION_BINDING):
        if "Deny" not in binding["spec"]["validationActions"] or not _selects(binding, namespace):
            continue
        policy = policies[binding["spec"]["policyName"]]
        if not _matches(policy, obj, operation):
            continue
        activation = {"object": celpy.json_to_cel(obj)}
        for rule in policy["spec"]["validations"]:
            try:
                result = environment.program(environment.compile(rule["expression"])).evaluate(activation)
            except celpy.CELEvalError:
                result = None
            if not (isinstance(result, celtypes.BoolType) and bool(result)):
                refusals.append(f"{policy['metadata']['name']}: {rule['message']}")
    return refusals
