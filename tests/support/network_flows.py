"""The network paths the assembled system needs, held to the NetworkPolicies, firewall rules and DNS that exist.

What exists: the NetworkPolicies of the rendered serving overlays, of the Pulumi program (``kubeflow``,
``mlflow``, ``lakefs``, and the serving namespaces' control-plane ingress) and of KFP's release manifests;
the VPC firewall rules; the private DNS zones. What is needed (:func:`required_flows`): each flow with the
labels and ports the pinned releases give their pods (KFP's Deployments and Services as the program
applies them, KServe's pod labels, Kourier's gateway) and the addresses the parts are configured with
(the database host in the lakeFS and MLflow releases, the control plane's range). Flows that must stay
refused (:func:`refused_flows`) hold the policies to least privilege.

The policy semantics are Kubernetes' (``networking.k8s.io/v1``): a pod selected by no policy of a type is
open in that direction; once selected, a connection needs a rule of some selecting policy; both the
source's egress and the target's ingress must allow it; a peer with only a ``podSelector`` means pods of
the policy's own namespace; ``ipBlock`` with its ``except``; selectors with ``matchLabels`` and
``matchExpressions``.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import urlsplit

import yaml

from churnops.platform import declaration as platform
from tests.support.assembly import OPERATOR, UPSTREAM, Stack

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
FIREWALL = "gcp:compute/firewall:Firewall"
CLUSTER = "gcp:container/cluster:Cluster"
WORKER_POOL = "gcp:cloudbuild/workerPool:WorkerPool"
DNS_ZONE = "gcp:dns/managedZone:ManagedZone"
DNS_RECORD = "gcp:dns/recordSet:RecordSet"
EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"
HELM = "kubernetes:helm.sh/v3:Release"
KFP_SOURCE = UPSTREAM / "kfp-2.17.0"
KSERVE_SOURCE = UPSTREAM / "kserve-v0.15.2"
INTERNET = "203.0.113.10"  # an address outside every private range (TEST-NET-3): any webhook host
# Namespaces GKE creates, beside those the platform declares.
GKE_NAMESPACES = (platform.NS_GMP, platform.NS_KUBE_SYSTEM)


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace and labels) or an address (ip)."""

    namespace: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    ip: str | None = None

    @classmethod
    def pod(cls, namespace: str, labels: dict[str, str]) -> Endpoint:
        """A pod of ``namespace`` labelled ``labels``."""
        return cls(namespace, tuple(sorted(labels.items())))


@dataclass(frozen=True)
class Flow:
    """A connection one endpoint opens to another."""

    name: str
    source: Endpoint
    target: Endpoint
    port: int
    protocol: str = "TCP"


@dataclass
class Network:
    """What decides whether a packet passes: policies (full objects with their namespace), firewall rules,
    and the stack (for DNS and the addresses of the parts)."""

    stack: Stack
    policies: list[dict[str, Any]]
    pipelines: dict[str, dict[str, Any]]
    rendered: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, stack: Stack, rendered: dict[str, list[dict[str, Any]]], pipelines: dict[str, dict[str, Any]]
    ) -> Network:
        """The network of one stack with both overlays and the compiled pipelines."""
        policies = [
            {"metadata": dict(p["metadata"]), "spec": p["spec"]}
            for p in stack.of_type(NETWORK_POLICY) + [o for o in stack.kfp_objects() if o["kind"] == "NetworkPolicy"]
        ]
        for policy in policies:
            policy["metadata"].setdefault("namespace", platform.NS_KUBEFLOW)
        for env, objects in rendered.items():
            for obj in objects:
                if obj["kind"] == "NetworkPolicy":
                    metadata = {**obj["metadata"], "namespace": platform.SERVING_NAMESPACES[env]}
                    policies.append({"metadata": metadata, "spec": obj["spec"]})
        return cls(copy.deepcopy(stack), copy.deepcopy(policies), pipelines, copy.deepcopy(rendered))


# ---- Kubernetes NetworkPolicy semantics ------------------------------------------------------------------


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against ``labels``; empty selects everything."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _namespace_labels(namespace: str) -> dict[str, str]:
    """The labels a namespace carries that policies select on (Kubernetes sets the name label itself)."""
    return {"kubernetes.io/metadata.name": namespace}


def _peer_matches(peer: dict[str, Any], other: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        if other.ip is None:
            return False
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(excluded) for excluded in block.get("except") or []
        )
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], _namespace_labels(other.namespace)):
            return False
    elif other.namespace != policy_namespace:
        return False
    return _selects(peer.get("podSelector"), dict(other.labels))


def _port_matches(rule: dict[str, Any], port: int, protocol: str) -> bool:
    if "ports" not in rule:
        return True
    for entry in rule["ports"]:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        low = int(entry["port"])
        if low <= port <= int(entry.get("endPort", low)):
            return True
    return False


def _applying(policies: list[dict[str, Any]], pod: Endpoint, kind: str) -> list[dict[str, Any]]:
    return [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and _selects(p["spec"].get("podSelector"), dict(pod.labels))
        and kind in p["spec"].get("policyTypes", ["Ingress"])
    ]


def admitting_rules(
    policies: list[dict[str, Any]], pod: Endpoint, other: Endpoint, port: int, protocol: str, direction: str
) -> list[dict[str, Any]] | None:
    """The rules that let ``pod`` send to (egress) or receive from (ingress) ``other``; None: no policy
    of that direction selects the pod (open)."""
    kind, key = ("Egress", "to") if direction == "egress" else ("Ingress", "from")
    applying = _applying(policies, pod, kind)
    if not applying:
        return None
    return [
        rule
        for policy in applying
        for rule in policy["spec"].get(direction) or []
        if (key not in rule or any(_peer_matches(peer, other, policy["metadata"]["namespace"]) for peer in rule[key]))
        and _port_matches(rule, port, protocol)
    ]


def policies_allow(policies: list[dict[str, Any]], flow: Flow) -> bool:
    """Whether the NetworkPolicies let the flow's connection through (egress of its source, ingress of its
    target; an address is governed by no policy)."""
    for pod, other, direction in ((flow.source, flow.target, "egress"), (flow.target, flow.source, "ingress")):
        if pod.namespace is None:
            continue
        rules = admitting_rules(policies, pod, other, flow.port, flow.protocol, direction)
        if rules is not None and not rules:
            return False
    return True


def firewall_allows(stack: Stack, source_ip: str, port: int) -> bool:
    """Whether an ingress allow rule of the VPC admits ``source_ip`` on TCP ``port`` to the nodes and pods
    (the deny-all rule has the lowest priority, so any allow rule wins)."""
    address = ipaddress.ip_address(source_ip)
    for rule in stack.of_type(FIREWALL):
        if rule.get("direction", "INGRESS") != "INGRESS" or not rule.get("allows"):
            continue
        if not any(address in ipaddress.ip_network(cidr) for cidr in rule.get("sourceRanges", [])):
            continue
        for allow in rule["allows"]:
            ports = allow.get("ports")
            if allow["protocol"] in ("tcp", "all") and (not ports or str(port) in ports):
                return True
    return False


# ---- addresses and labels of the parts -------------------------------------------------------------------


def resolve_google_api(stack: Stack, host: str) -> list[str]:
    """The addresses ``host`` resolves to inside the VPC (its private zones), or [] (public DNS)."""
    zones = {z["name"]: z["dnsName"] for z in stack.of_type(DNS_ZONE) if z.get("visibility") == "private"}
    records = [r for r in stack.of_type(DNS_RECORD) if r["managedZone"] in zones]
    name = host.rstrip(".") + "."
    for _ in range(5):
        exact = [r for r in records if r["name"] == name]
        wildcard = [r for r in records if r["name"].startswith("*.") and name.endswith(r["name"][1:])]
        if not (exact or wildcard):
            return []
        record = (exact or wildcard)[0]
        if record["type"] == "A":
            return list(record["rrdatas"])
        name = record["rrdatas"][0]
    return []


def control_plane_ip(stack: Stack) -> str:
    """The control plane's private address, as pods and the firewall see it: the second address of the
    cluster's master range (what GKE gives the private endpoint, and the kubernetes Service's endpoint)."""
    (cluster,) = stack.of_type(CLUSTER)
    return str(ipaddress.ip_network(cluster["privateClusterConfig"]["masterIpv4CidrBlock"])[2])


def database_hosts(stack: Stack) -> dict[str, str]:
    """The database host each server is configured with: lakeFS's connection string, MLflow's chart values."""
    hosts = {}
    for secret in stack.of_type(EXTERNAL_SECRET):
        connection = secret["spec"]["target"]["template"]["data"].get("connection_string")
        if connection and secret["metadata"]["namespace"] == platform.NS_LAKEFS:
            hosts[platform.NS_LAKEFS] = str(urlsplit(connection.replace("{{ .dbPassword }}", "x")).hostname)
    for release in stack.of_type(HELM):
        if release["namespace"] == platform.NS_MLFLOW:
            hosts[platform.NS_MLFLOW] = release["values"]["backendStore"]["postgres"]["host"]
    return hosts


def kfp_pod(stack: Stack, deployment: str) -> Endpoint:
    """A pod of one of KFP's Deployments, with the labels the release's pod template gives it."""
    for obj in stack.kfp_objects():
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == deployment:
            return Endpoint.pod(platform.NS_KUBEFLOW, obj["spec"]["template"]["metadata"]["labels"])
    raise KeyError(f"the KFP release applied has no Deployment {deployment}")


def kfp_service(stack: Stack, service: str, port: int) -> tuple[Endpoint, int]:
    """A pod behind one of KFP's Services and the pod port its ``port`` forwards to."""
    for obj in stack.kfp_objects():
        if obj["kind"] == "Service" and obj["metadata"]["name"] == service:
            (entry,) = [p for p in obj["spec"]["ports"] if int(p["port"]) == port]
            selector = obj["spec"]["selector"]
            pods = [
                o
                for o in stack.kfp_objects()
                if o["kind"] == "Deployment"
                and _selects({"matchLabels": selector}, o["spec"]["template"]["metadata"]["labels"])
            ]
            if not pods:
                raise KeyError(f"no KFP Deployment runs the pods of Service {service}")
            template = pods[0]["spec"]["template"]
            target = entry.get("targetPort", port)
            if isinstance(target, str):  # a named port of the pods' containers
                named = {
                    p.get("name"): p["containerPort"]
                    for c in template["spec"]["containers"]
                    for p in c.get("ports", [])
                }
                target = named[target]
            return Endpoint.pod(platform.NS_KUBEFLOW, template["metadata"]["labels"]), int(target)
    raise KeyError(f"the KFP release applied has no Service {service}")


def kfp_run_pod_labels() -> dict[str, str]:
    """The label KFP 2.17.0 puts on every pod of a run: the Workflow's podMetadata (vendored argo.go)."""
    source = (KFP_SOURCE / "argo.go").read_text(encoding="utf-8")
    block = source[source.index("PodMetadata: &wfapi.Metadata{") :]
    block = block[block.index("Labels: map[string]string{") :]
    block = block[: block.index("}")]
    return dict(re.findall(r'"([^"]+)":\s*"([^"]+)"', block))


def kfp_client_ports() -> dict[str, int]:
    """The ports the driver and launcher of every run dial: the KFP API's gRPC port and ML Metadata's."""
    grpc = re.search(r'mlPipelineGrpcServicePort\s*=\s*"(\d+)"', (KFP_SOURCE / "config-env.go").read_text("utf-8"))
    mlmd = re.search(r'metadataGrpcServicePort\s*=\s*"(\d+)"', (KFP_SOURCE / "metadata-env.go").read_text("utf-8"))
    assert grpc and mlmd, "the vendored KFP sources no longer name the ports"
    return {"ml-pipeline": int(grpc.group(1)), "metadata-grpc-service": int(mlmd.group(1))}


def kfp_log_store(stack: Stack) -> tuple[str, int]:
    """Where Argo's executor in every run pod archives the logs: the artifact repository's S3 endpoint
    (KFP's workflow-controller-configmap), as (service, port)."""
    for obj in stack.kfp_objects():
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "workflow-controller-configmap":
            endpoint = yaml.safe_load(obj["data"]["artifactRepository"])["s3"]["endpoint"]
            host, port = endpoint.rsplit(":", 1)
            return host.split(".", 1)[0], int(port)
    raise KeyError("the KFP release applied has no workflow-controller-configmap")


def kserve_pod_labels(component: str) -> dict[str, str]:
    """The labels KServe 0.15.2 puts on a component's pods (its reconciler for the component sets the
    InferenceService label key and the component label; the keys from pkg/constants)."""
    constants = (KSERVE_SOURCE / "constants.go").read_text(encoding="utf-8")
    group = re.search(r'KServeAPIGroupName\s*=\s*"([^"]+)"', constants)
    name = re.search(r'InferenceServiceName\s*=\s*"([^"]+)"', constants)
    key = re.search(r"InferenceServicePodLabelKey\s*=\s*KServeAPIGroupName \+ \"/\" \+ InferenceServiceName", constants)
    component_key = re.search(r'KServiceComponentLabel\s*=\s*"([^"]+)"', constants)
    reconciler = (KSERVE_SOURCE / f"{component}.go").read_text(encoding="utf-8")
    component_name = {"predictor": "PredictorComponent", "transformer": "TransformerComponent"}[component]
    sets = re.search(
        r"constants\.InferenceServicePodLabelKey:\s+isvc\.Name,\s+constants\.KServiceComponentLabel:\s+"
        rf"string\(v1beta1\.{component_name}\)",
        reconciler,
    )
    assert group and name and key and component_key and sets, "the vendored KServe sources changed shape"
    return {f"{group.group(1)}/{name.group(1)}": platform.INFERENCE_SERVICE, component_key.group(1): component}


def _kourier_internal() -> tuple[int, dict[str, str]]:
    objects = yaml.safe_load_all((OPERATOR / "kourier-1.18.yaml").read_text(encoding="utf-8"))
    service = next(o for o in objects if o and o["kind"] == "Service" and o["metadata"]["name"] == "kourier-internal")
    http = next(p for p in service["spec"]["ports"] if p["port"] == 80)
    return int(http["targetPort"]), dict(service["spec"]["selector"])


def alert_task_labels(pipelines: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per pipeline, the labels of its failure-alert task's pods (compiled podMetadata plus KFP's own)."""
    found = {}
    for pipeline, executors in pipelines.items():
        for executor, config in executors.items():
            if executor.endswith(platform.ALERT_TASK):
                labels = (config.get("podMetadata") or {}).get("labels") or {}
                found[pipeline] = {**kfp_run_pod_labels(), **labels}
    return found


# ---- the flows ---------------------------------------------------------------------------------------------

# KFP's own flows (deployment -> service:port), read from the release's configuration: the UI server's
# service addresses (frontend/server/configs.ts: the API, ML Metadata's Envoy, the visualization server,
# the object store for archived logs), the API server's (pipeline-install-config: mysql; OBJECTSTORECONFIG:
# seaweedfs:9000; the visualization server), ML Metadata's database, the cache webhook's database, and the
# controllers' defaults at 2.17.0 (persistence agent: the API's HTTP and gRPC ports; scheduled workflow:
# gRPC; metadata writer: ML Metadata).
KFP_FLOWS: tuple[tuple[str, str, int], ...] = (
    ("ml-pipeline-ui", "ml-pipeline", 8888),
    ("ml-pipeline-ui", "metadata-envoy-service", 9090),
    ("ml-pipeline-ui", "ml-pipeline-visualizationserver", 8888),
    ("ml-pipeline-ui", "seaweedfs", 9000),
    ("metadata-envoy-deployment", "metadata-grpc-service", 8080),
    ("metadata-grpc-deployment", "mysql", 3306),
    ("ml-pipeline", "mysql", 3306),
    ("ml-pipeline", "seaweedfs", 9000),
    ("ml-pipeline", "ml-pipeline-visualizationserver", 8888),
    ("cache-server", "mysql", 3306),
    ("ml-pipeline-persistenceagent", "ml-pipeline", 8888),
    ("ml-pipeline-persistenceagent", "ml-pipeline", 8887),
    ("ml-pipeline-scheduledworkflow", "ml-pipeline", 8887),
    ("metadata-writer", "metadata-grpc-service", 8080),
)
# KFP components that call the Kubernetes API (their controllers watch and patch its objects).
KFP_KUBE_API_CLIENTS = (
    "ml-pipeline",
    "ml-pipeline-persistenceagent",
    "ml-pipeline-scheduledworkflow",
    "ml-pipeline-ui",
    "ml-pipeline-viewer-crd",
    "metadata-writer",
    "cache-server",
    "cache-deployer-deployment",
    "workflow-controller",
)


def _google_flows(name: str, pod: Endpoint, vip: str) -> list[Flow]:
    return [
        Flow(f"{name} -> Google APIs (GCS, Secret Manager)", pod, Endpoint(ip=vip), platform.HTTPS_PORT),
        *(
            Flow(f"{name} -> GKE metadata server {ip}:{port} (Workload Identity)", pod, Endpoint(ip=ip), port)
            for ip, port in platform.GKE_METADATA_SERVER
        ),
    ]


def _dns_flow(name: str, pod: Endpoint) -> Flow:
    dns = Endpoint.pod(platform.NS_KUBE_SYSTEM, platform.KUBE_DNS_LABELS)
    return Flow(f"{name} -> DNS", pod, dns, platform.DNS_PORT, "UDP")


LAKEFS_POD = Endpoint.pod(platform.NS_LAKEFS, {"app.kubernetes.io/name": "lakefs"})
MLFLOW_POD = Endpoint.pod(platform.NS_MLFLOW, {"app.kubernetes.io/name": "mlflow"})


def _google_vip(stack: Stack) -> str:
    return (resolve_google_api(stack, "storage.googleapis.com") or ["8.8.8.8"])[0]


def _serving_flows(stack: Stack) -> list[Flow]:
    """The serving namespaces: model download, features, the hop through Kourier, the smoke test."""
    vip, api = _google_vip(stack), Endpoint(ip=control_plane_ip(stack))
    gateway_port, gateway_labels = _kourier_internal()
    gateway = Endpoint.pod(platform.NS_KNATIVE_SERVING, gateway_labels)
    flows: list[Flow] = []
    for env, namespace in platform.SERVING_NAMESPACES.items():
        predictor = Endpoint.pod(namespace, kserve_pod_labels("predictor"))
        transformer = Endpoint.pod(namespace, kserve_pod_labels("transformer"))
        smoke = f"{env}: build smoke test (API server proxy)"
        flows += [
            *_google_flows(f"{env}: storage initializer (predictor)", predictor, vip),
            *_google_flows(f"{env}: transformer", transformer, vip),
            _dns_flow(f"{env}: predictor", predictor),
            _dns_flow(f"{env}: transformer", transformer),
            Flow(f"{env}: transformer -> Kourier internal gateway", transformer, gateway, gateway_port),
            Flow(f"{env}: Kourier gateway -> predictor queue-proxy", gateway, predictor, platform.QUEUE_PROXY_PORT),
            Flow(f"{env}: transformer -> lakeFS", transformer, LAKEFS_POD, platform.LAKEFS.pod_port),
            # build -> cluster: the smoke test reaches each new revision through the API server's proxy
            Flow(f"{smoke} -> predictor", api, predictor, platform.QUEUE_PROXY_PORT),
            Flow(f"{smoke} -> transformer", api, transformer, platform.QUEUE_PROXY_PORT),
        ]
    return flows


def _pipeline_flows(net: Network) -> list[Flow]:
    """Every pod of a run (driver and task), and the failure alert to its webhook and the KFP API."""
    stack, api = net.stack, Endpoint(ip=control_plane_ip(net.stack))
    run = Endpoint.pod(platform.NS_KUBEFLOW, kfp_run_pod_labels())
    flows = [
        _dns_flow("pipelines", run),
        Flow("pipelines -> lakeFS", run, LAKEFS_POD, platform.LAKEFS.pod_port),
        Flow("pipelines -> MLflow", run, MLFLOW_POD, platform.MLFLOW.pod_port),
        Flow("pipelines -> Kubernetes API", run, api, platform.HTTPS_PORT),
        *_google_flows("pipelines", run, _google_vip(stack)),
    ]
    for service, port in kfp_client_ports().items():
        target, pod_port = kfp_service(stack, service, port)
        flows.append(Flow(f"pipelines -> KFP {service}:{port}", run, target, pod_port))
    log_service, log_port = kfp_log_store(stack)
    target, pod_port = kfp_service(stack, log_service, log_port)
    flows.append(Flow(f"pipelines -> KFP {log_service}:{log_port} (archived logs)", run, target, pod_port))
    for pipeline, labels in sorted(alert_task_labels(net.pipelines).items()):
        alert = Endpoint.pod(platform.NS_KUBEFLOW, labels)
        flows.append(Flow(f"pipeline {pipeline}: failure alert -> webhook", alert, Endpoint(ip=INTERNET), 443))
        # It reads the run's failed tasks from the KFP API (churnops/platform/kfp_runs.py).
        kfp_api, kfp_api_port = kfp_service(stack, platform.KFP_API.name, platform.KFP_API.port)
        flows.append(Flow(f"pipeline {pipeline}: failure alert -> KFP API", alert, kfp_api, kfp_api_port))
    return flows


def _kfp_flows(stack: Stack) -> list[Flow]:
    """KFP's own components, and the control plane's paths to them (webhook, the builds' and operators' proxy)."""
    api = Endpoint(ip=control_plane_ip(stack))
    flows = []
    for deployment, service, port in KFP_FLOWS:
        target, pod_port = kfp_service(stack, service, port)
        flows.append(Flow(f"KFP {deployment} -> {service}:{port}", kfp_pod(stack, deployment), target, pod_port))
    for deployment in KFP_KUBE_API_CLIENTS:
        pod = kfp_pod(stack, deployment)
        flows += [
            Flow(f"KFP {deployment} -> Kubernetes API", pod, api, platform.HTTPS_PORT),
            _dns_flow(f"KFP {deployment}", pod),
        ]
    cache, cache_port = kfp_service(stack, "cache-server", 443)
    ui, ui_port = kfp_service(stack, platform.KFP_UI.name, platform.KFP_UI.port)
    kfp_api, kfp_api_port = kfp_service(stack, platform.KFP_API.name, platform.KFP_API.port)
    return flows + [
        Flow("control plane -> KFP cache webhook", api, cache, cache_port),
        Flow("operators (API server proxy) -> KFP UI", api, ui, ui_port),
        # build -> cluster: builds reach the KFP API and MLflow through the API server's service proxy
        Flow("build (API server proxy) -> KFP API", api, kfp_api, kfp_api_port),
        Flow("build (API server proxy) -> MLflow", api, MLFLOW_POD, platform.MLFLOW.pod_port),
    ]


JOB = "kubernetes:batch/v1:Job"


def _job_flows(stack: Stack) -> list[Flow]:
    """The program's Jobs (MLflow's bootstrap): each to every platform service its command names by URL, and DNS."""
    services = {platform.MLFLOW.url: MLFLOW_POD, platform.LAKEFS.url: LAKEFS_POD}
    ports = {platform.MLFLOW.url: platform.MLFLOW.pod_port, platform.LAKEFS.url: platform.LAKEFS.pod_port}
    flows = []
    for job in stack.of_type(JOB):
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        template = job["spec"]["template"]
        pod = Endpoint.pod(namespace, template["metadata"]["labels"])
        flows.append(_dns_flow(f"Job {name}", pod))
        for container in template["spec"]["containers"]:
            for url in (arg for arg in container.get("command", []) + container.get("args", []) if arg in services):
                flows.append(Flow(f"Job {name} -> {url}", pod, services[url], ports[url]))
    return flows


def _server_flows(stack: Stack) -> list[Flow]:
    """MLflow's and lakeFS's own dependencies: their database (at the host each is configured with), GCS."""
    hosts, flows = database_hosts(stack), []
    for name, pod in (("MLflow", MLFLOW_POD), ("lakeFS", LAKEFS_POD)):
        host = hosts.get(str(pod.namespace))
        if host:
            flows.append(Flow(f"{name} -> its Cloud SQL database", pod, Endpoint(ip=host), platform.POSTGRES_PORT))
        flows += [*_google_flows(name, pod, _google_vip(stack)), _dns_flow(name, pod)]
    return flows


# The managed collectors of Managed Service for Prometheus (GKE runs them in gmp-system).
COLLECTOR = Endpoint.pod(platform.NS_GMP, {"app.kubernetes.io/name": "collector"})
POD_MONITORING = "kubernetes:monitoring.googleapis.com/v1:PodMonitoring"


def pod_monitorings(net: Network) -> list[dict[str, Any]]:
    """Every PodMonitoring that will exist: the program's (platform namespaces) and each overlay's."""
    found = [{**m, "metadata": dict(m["metadata"])} for m in net.stack.of_type(POD_MONITORING)]
    for env, objects in net.rendered.items():
        for obj in objects:
            if obj["kind"] == "PodMonitoring":
                found.append({**obj, "metadata": {**obj["metadata"], "namespace": platform.SERVING_NAMESPACES[env]}})
    return found


def known_pods(stack: Stack) -> dict[str, Endpoint]:
    """The pods the system runs, by a readable name, with the labels their releases give them."""
    pods = {"lakeFS": LAKEFS_POD, "MLflow": MLFLOW_POD}
    for env, namespace in platform.SERVING_NAMESPACES.items():
        for component in ("predictor", "transformer"):
            pods[f"{env} {component}"] = Endpoint.pod(namespace, kserve_pod_labels(component))
    for obj in stack.kfp_objects():
        if obj["kind"] == "Deployment":
            pods[f"KFP {obj['metadata']['name']}"] = kfp_pod(stack, obj["metadata"]["name"])
    return pods


def _scrape_flows(net: Network) -> list[Flow]:
    """The collectors to every port of every pod a PodMonitoring selects (numbered ports: ours are)."""
    flows = []
    pods = known_pods(net.stack)
    for monitoring in pod_monitorings(net):
        namespace, name = monitoring["metadata"]["namespace"], monitoring["metadata"]["name"]
        for pod_name, pod in pods.items():
            if pod.namespace != namespace or not _selects(monitoring["spec"]["selector"], dict(pod.labels)):
                continue
            for endpoint in monitoring["spec"]["endpoints"]:
                port = int(endpoint["port"])
                flows.append(Flow(f"metrics scrape ({namespace}/{name}) -> {pod_name}", COLLECTOR, pod, port))
    return flows


def required_flows(net: Network) -> list[Flow]:
    """Every connection the system opens, with the endpoints and ports the parts give it."""
    return [
        *_serving_flows(net.stack),
        *_pipeline_flows(net),
        *_kfp_flows(net.stack),
        *_server_flows(net.stack),
        *_job_flows(net.stack),
        *_scrape_flows(net),
    ]


def refused_flows(net: Network) -> list[Flow]:
    """Connections no policy may allow: serving to the registry and KFP, other namespaces to the platform
    services, the pods of a run (other than the alert) to the internet and the KFP API's REST port, one KFP
    component to another's database."""
    stack = net.stack
    elsewhere = Endpoint.pod(platform.NS_KSERVE, {"app": "anything"})
    mlflow, lakefs = MLFLOW_POD, LAKEFS_POD
    kfp_api, kfp_api_port = kfp_service(stack, platform.KFP_API.name, platform.KFP_API.port)
    mysql, mysql_port = kfp_service(stack, "mysql", 3306)
    run = Endpoint.pod(platform.NS_KUBEFLOW, kfp_run_pod_labels())
    flows = []
    for env, namespace in platform.SERVING_NAMESPACES.items():
        predictor = Endpoint.pod(namespace, kserve_pod_labels("predictor"))
        transformer = Endpoint.pod(namespace, kserve_pod_labels("transformer"))
        flows += [
            Flow(f"{env}: predictor -> MLflow", predictor, mlflow, platform.MLFLOW.pod_port),
            Flow(f"{env}: transformer -> MLflow", transformer, mlflow, platform.MLFLOW.pod_port),
            Flow(f"{env}: predictor -> lakeFS", predictor, lakefs, platform.LAKEFS.pod_port),
            Flow(f"{env}: transformer -> KFP API", transformer, kfp_api, kfp_api_port),
        ]
    flows += [
        Flow("another namespace -> MLflow", elsewhere, mlflow, platform.MLFLOW.pod_port),
        Flow("another namespace -> lakeFS", elsewhere, lakefs, platform.LAKEFS.pod_port),
        Flow("another namespace -> KFP API", elsewhere, kfp_api, kfp_api_port),
        Flow("another namespace -> KFP database", elsewhere, mysql, mysql_port),
        Flow("pipelines (not the alert) -> internet", run, Endpoint(ip=INTERNET), 443),
        Flow("pipelines (not the alert) -> KFP API", run, kfp_api, kfp_api_port),
        Flow("pipelines -> KFP database", run, mysql, mysql_port),
        Flow("KFP UI -> KFP database", kfp_pod(stack, "ml-pipeline-ui"), mysql, mysql_port),
        Flow("lakeFS -> internet", lakefs, Endpoint(ip=INTERNET), 443),
        Flow("MLflow -> lakeFS", mlflow, lakefs, platform.LAKEFS.pod_port),
        # the collectors reach what PodMonitorings name, nothing else
        Flow("metrics scrape -> MLflow (no metrics endpoint)", COLLECTOR, mlflow, platform.MLFLOW.pod_port),
        Flow("metrics scrape -> KFP database", COLLECTOR, mysql, mysql_port),
    ]
    return flows


def flow_problems(net: Network, flow: Flow) -> list[str]:
    """What :func:`check` reports about one required flow (empty: it passes)."""
    problems = []
    if not policies_allow(net.policies, flow):
        problems.append(f"{flow.name} (port {flow.port}) is not allowed by the NetworkPolicies")
    api = control_plane_ip(net.stack)
    if flow.source.ip == api and flow.target.namespace and not firewall_allows(net.stack, api, flow.port):
        problems.append(f"{flow.name} (port {flow.port}) is refused by the VPC firewall (control plane range)")
    return problems


def check(net: Network) -> list[str]:
    """Every required flow allowed, every refused flow refused, default deny in every platform namespace,
    and no policy naming a namespace that does not exist."""
    problems = []
    if not resolve_google_api(net.stack, "storage.googleapis.com"):
        problems.append("storage.googleapis.com resolves to no private address inside the VPC")
    if not alert_task_labels(net.pipelines) and net.pipelines:
        problems.append("no pipeline has a failure-alert task whose pods a policy can select")
    pods = known_pods(net.stack)
    for monitoring in pod_monitorings(net):
        namespace, name = monitoring["metadata"]["namespace"], monitoring["metadata"]["name"]
        if not any(
            pod.namespace == namespace and _selects(monitoring["spec"]["selector"], dict(pod.labels))
            for pod in pods.values()
        ):
            problems.append(f"PodMonitoring {namespace}/{name} selects no pod the system runs")
    for flow in required_flows(net):
        problems += flow_problems(net, flow)
    for flow in refused_flows(net):
        if policies_allow(net.policies, flow):
            problems.append(f"{flow.name} (port {flow.port}) is allowed, and must not be")
    protected = (platform.NS_KUBEFLOW, platform.NS_MLFLOW, platform.NS_LAKEFS, *platform.SERVING_NAMESPACES.values())
    for namespace in protected:
        if not any(
            p["metadata"]["namespace"] == namespace
            and not p["spec"].get("podSelector")
            and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
            for p in net.policies
        ):
            problems.append(f"namespace {namespace} has no default-deny policy (ingress and egress)")
    for policy in net.policies:
        for peer in _peers(policy):
            named = ((peer.get("namespaceSelector") or {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name")
            if named and named not in platform.NAMESPACES and named not in GKE_NAMESPACES:
                problems.append(f"{policy['metadata']['name']} names namespace {named}, which does not exist")
    return problems


def _peers(policy: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for rule in (policy["spec"].get("egress") or []) + (policy["spec"].get("ingress") or []):
        yield from rule.get("to") or []
        yield from rule.get("from") or []


def without_rules_for(net: Network, flow: Flow) -> Network:
    """A copy of ``net`` whose policies lose every rule that admits ``flow`` (either direction): the copy a
    flow check must fail on."""
    broken = Network(net.stack, copy.deepcopy(net.policies), net.pipelines, net.rendered)
    for pod, other, direction in ((flow.source, flow.target, "egress"), (flow.target, flow.source, "ingress")):
        if pod.namespace is None:
            continue
        doomed = admitting_rules(broken.policies, pod, other, flow.port, flow.protocol, direction) or []
        for policy in broken.policies:
            rules = policy["spec"].get(direction)
            if rules:
                policy["spec"][direction] = [rule for rule in rules if not any(rule is d for d in doomed)]
    return broken


# ---- build -> cluster -----------------------------------------------------------------------------------------


def check_build_path(stack: Stack, kubeconfig_script: str, builds: dict[str, dict[str, Any]]) -> list[str]:
    """The builds reach the control plane: from the private pool (which has egress to Google's front end)
    to the DNS-based endpoint (which admits external traffic), through the kubeconfig ``.ci/kubeconfig``
    writes for that endpoint, before any step that talks to the cluster."""
    problems = []
    (pool,) = stack.of_type(WORKER_POOL)
    if (pool.get("workerConfig") or {}).get("noExternalIp"):
        problems.append("the private pool has no external egress: it cannot reach the DNS-based endpoint")
    (cluster,) = stack.of_type(CLUSTER)
    dns = (cluster.get("controlPlaneEndpointsConfig") or {}).get("dnsEndpointConfig") or {}
    if not dns.get("allowExternalTraffic"):
        problems.append("the cluster's DNS-based endpoint does not admit traffic from outside the VPC")
    if "dnsEndpointConfig.endpoint" not in kubeconfig_script:
        problems.append(".ci/kubeconfig does not target the DNS-based endpoint")
    for file, config in builds.items():
        steps = config.get("steps", [])
        talks = [i for i, step in enumerate(steps) if _talks_to_cluster(step, config)]
        writes = [i for i, step in enumerate(steps) if ".ci/kubeconfig" in " ".join(map(str, step.get("args", [])))]
        if talks and (not writes or writes[0] > talks[0]):
            problems.append(f"{file}: step {talks[0]} talks to the cluster before .ci/kubeconfig writes its config")
    return problems


def _talks_to_cluster(step: dict[str, Any], config: dict[str, Any]) -> bool:
    text = " ".join(map(str, [*step.get("args", []), *step.get("env", []), step.get("entrypoint", "")]))
    proxied = [k for k, v in config.get("substitutions", {}).items() if str(v).startswith("k8s://")]
    return (
        "kubectl" in text or "KUBECONFIG" in text or any(f"${{{key}}}" in text or f"${key}" in text for key in proxied)
    )


def ip_in(cidr: str, ips: list[str]) -> bool:
    """Whether every address in ``ips`` is within ``cidr``."""
    return bool(ips) and all(ipaddress.ip_address(ip) in ipaddress.ip_network(cidr) for ip in ips)
