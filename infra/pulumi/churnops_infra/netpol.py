"""NetworkPolicies of the platform namespaces this program owns: ``kubeflow``, ``mlflow`` and ``lakefs``.

Each namespace denies every ingress and egress by default; the policies below then allow exactly the
flows its pods need (the serving namespaces' policies live with their manifests, ``manifests/base``):

- every pod: DNS (kube-dns);
- ``kubeflow``: what each KFP 2.17.0 component may receive is listed per component (its callers, by the
  labels of the release's own pod templates); egress inside the namespace is open, so the ingress
  lists decide. Outside the namespace, KFP's controllers and every pod of a run reach the Kubernetes
  API; the pods of a run reach lakeFS, MLflow, Google APIs (GCS, Secret Manager, through the private
  VIP) and the GKE metadata server (Workload Identity); only the failure-alert task reaches the
  internet (its webhook, through Cloud NAT), and only it reaches the KFP API's REST port (it reads
  the run's failed tasks, which its final status does not name). The control plane reaches the KFP API (builds, through
  the API server's service proxy), the UI (operators, the same way) and the cache webhook.
- ``mlflow``: the tracking server receives the pods of a run, the control plane (the deployer's
  builds through the service proxy) and the Job that creates its users (:data:`MLFLOW_BOOTSTRAP_LABELS`),
  which reaches nothing but the server; it reaches its Cloud SQL database, GCS and the metadata server.
- ``lakefs``: the server receives the pods of a run and the transformers of both serving namespaces;
  it reaches its Cloud SQL database, GCS and the metadata server.

Metrics: Managed Service for Prometheus scrapes what the PodMonitorings of :func:`pod_monitorings` name
(KFP's API server, lakeFS); each has a ``metrics-scrape`` policy that lets the
collectors (namespace ``gmp-system``) reach exactly those pods and ports. MLflow's chart runs its server
without a metrics endpoint, so nothing there is scraped.

KFP's release manifests bring one policy of their own (``seaweedfs``: its S3 port from any pod in
``kubeflow``), which stays as released.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from churnops_infra import versions

from churnops.platform import declaration as platform

TCP = "TCP"
# Addresses that are not the internet: the alert's webhook egress excludes them.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10")
# The KFP components (Deployments of the pinned release) that call the Kubernetes API.
KFP_API_CLIENTS = (
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
RUN_PODS = "run pods"  # every pod of a KFP run (platform.KFP_RUN_POD_LABELS)
CONTROL_PLANE = "control plane"  # the API server (its service proxy, admission webhooks)
FAILURE_ALERT = "failure alert"  # the exit task of every pipeline run (platform.ALERT_TASK)
# KFP component -> (pod port, who may connect): the callers of each, from the release's configuration
# (service addresses in its manifests and the defaults of its binaries at 2.17.0).
KFP_INGRESS: dict[str, tuple[tuple[int, tuple[str, ...]], ...]] = {
    "mysql": ((3306, ("ml-pipeline", "metadata-grpc-deployment", "cache-server")),),
    "ml-pipeline": (
        (platform.KFP_API.pod_port, ("ml-pipeline-ui", "ml-pipeline-persistenceagent", CONTROL_PLANE, FAILURE_ALERT)),
        (platform.KFP_API_GRPC_PORT, ("ml-pipeline-persistenceagent", "ml-pipeline-scheduledworkflow", RUN_PODS)),
    ),
    "metadata-grpc-deployment": ((8080, ("metadata-envoy-deployment", "metadata-writer", RUN_PODS)),),
    "metadata-envoy-deployment": ((9090, ("ml-pipeline-ui",)),),
    "ml-pipeline-visualizationserver": ((8888, ("ml-pipeline-ui", "ml-pipeline")),),
    "ml-pipeline-ui": ((platform.KFP_UI.pod_port, (CONTROL_PLANE,)),),
    "cache-server": ((8443, (CONTROL_PLANE,)),),
}


@dataclass(frozen=True)
class ScrapeTarget:
    """Pods the managed collectors scrape: a PodMonitoring and the policy that lets the scrape in."""

    namespace: str
    name: str
    pod_labels: dict[str, str]
    ports: tuple[int, ...]
    path: str = "/metrics"


# lakeFS serves its Prometheus metrics on the port of its API, at /metrics ("lakeFS exposes metrics
# through the same port used by the lakeFS service", docs.lakefs.io/latest/reference/monitor); the
# chart labels its pods with the release's name.
LAKEFS_POD_LABELS: dict[str, str] = {"app.kubernetes.io/name": "lakefs"}
SCRAPE_INTERVAL = "30s"
# The pods of the Job that creates MLflow's users (churnops_infra.platform).
MLFLOW_BOOTSTRAP_LABELS: dict[str, str] = {"app.kubernetes.io/name": "mlflow-bootstrap"}


def scrape_targets() -> list[ScrapeTarget]:
    """What is scraped in the namespaces this program owns: in KFP, what its release marks for scraping
    over HTTP (a Service's ``prometheus.io/scrape`` annotation, with its port and path: the API server),
    and lakeFS."""
    targets = []
    for obj in versions.kfp_objects("platform-agnostic"):
        name, annotations = obj["metadata"]["name"], obj["metadata"].get("annotations") or {}
        if (
            obj["kind"] == "Service"
            and annotations.get("prometheus.io/scrape") == "true"
            and annotations.get("prometheus.io/scheme", "http") == "http"
        ):
            targets.append(
                ScrapeTarget(
                    platform.NS_KUBEFLOW,
                    name,
                    dict(obj["spec"]["selector"]),
                    (int(annotations["prometheus.io/port"]),),
                    annotations.get("prometheus.io/path", "/metrics"),
                )
            )
    targets.append(ScrapeTarget(platform.NS_LAKEFS, "lakefs", dict(LAKEFS_POD_LABELS), (platform.LAKEFS.pod_port,)))
    return targets


def pod_monitorings() -> list[dict[str, Any]]:
    """One PodMonitoring (``monitoring.googleapis.com/v1``) per scrape target."""
    return [
        {
            "apiVersion": "monitoring.googleapis.com/v1",
            "kind": "PodMonitoring",
            "metadata": {"name": target.name, "namespace": target.namespace},
            "spec": {
                "selector": {"matchLabels": dict(target.pod_labels)},
                "endpoints": [
                    {"port": port, "path": target.path, "interval": SCRAPE_INTERVAL} for port in target.ports
                ],
            },
        }
        for target in scrape_targets()
    ]


def _scrape_policies(namespace: str) -> list[dict[str, Any]]:
    """Ingress from the managed collectors to each scrape target of ``namespace``, on its ports only."""
    return [
        _policy(
            f"{target.name}-metrics-scrape",
            namespace,
            {
                "podSelector": {"matchLabels": dict(target.pod_labels)},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [_namespace(platform.NS_GMP)], "ports": _ports(*target.ports)}],
            },
        )
        for target in scrape_targets()
        if target.namespace == namespace
    ]


def kfp_pod_labels(deployment: str) -> dict[str, str]:
    """The labels of a KFP Deployment's pods, as the pinned release's manifests set them."""
    for obj in versions.kfp_objects("platform-agnostic"):
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == deployment:
            return dict(obj["spec"]["template"]["metadata"]["labels"])
    raise KeyError(f"KFP {versions.KFP} has no Deployment {deployment!r}")


def _ports(*ports: int) -> list[dict[str, Any]]:
    return [{"port": port, "protocol": TCP} for port in ports]


def _policy(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}
    if labels is not None:
        peer["podSelector"] = {"matchLabels": dict(labels)}
    return peer


def _cidr(cidr: pulumi.Input[str], exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    block: dict[str, Any] = {"cidr": cidr}
    if exclude:
        block["except"] = list(exclude)
    return {"ipBlock": block}


def _google_apis() -> list[dict[str, Any]]:
    """Egress rules for a workload that calls Google APIs as its Workload Identity."""
    rules = [{"to": [_cidr(f"{ip}/32")], "ports": _ports(port)} for ip, port in platform.GKE_METADATA_SERVER]
    rules.append({"to": [_cidr(platform.GOOGLE_APIS_VIP_CIDR)], "ports": _ports(platform.HTTPS_PORT)})
    return rules


def _dns(namespace: str) -> list[dict[str, Any]]:
    """Default deny, and DNS for every pod of ``namespace``."""
    dns = [{"port": platform.DNS_PORT, "protocol": protocol} for protocol in ("UDP", TCP)]
    return [
        _policy("default-deny-all", namespace, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _policy(
            "dns",
            namespace,
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"to": [_namespace(platform.NS_KUBE_SYSTEM, platform.KUBE_DNS_LABELS)], "ports": dns}],
            },
        ),
    ]


def _peer(caller: str, control_plane_cidr: str) -> dict[str, Any]:
    if caller == CONTROL_PLANE:
        return _cidr(control_plane_cidr)
    if caller == RUN_PODS:
        return {"podSelector": {"matchLabels": dict(platform.KFP_RUN_POD_LABELS)}}
    if caller == FAILURE_ALERT:
        return {
            "podSelector": {"matchLabels": {**platform.KFP_RUN_POD_LABELS, platform.TASK_LABEL: platform.ALERT_TASK}}
        }
    return {"podSelector": {"matchLabels": kfp_pod_labels(caller)}}


def kubeflow(control_plane_cidr: str) -> list[dict[str, Any]]:
    """The policies of the kubeflow namespace."""
    namespace = platform.NS_KUBEFLOW
    run_pods = {"matchLabels": dict(platform.KFP_RUN_POD_LABELS)}
    kube_api = [{"to": [_cidr(control_plane_cidr)], "ports": _ports(platform.HTTPS_PORT)}]
    policies = _dns(namespace)
    policies.append(
        _policy(
            "within-namespace",
            namespace,
            {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": {}}]}]},
        )
    )
    for component, ports in KFP_INGRESS.items():
        policies.append(
            _policy(
                f"{component}-ingress",
                namespace,
                {
                    "podSelector": {"matchLabels": kfp_pod_labels(component)},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {"from": [_peer(caller, control_plane_cidr) for caller in callers], "ports": _ports(port)}
                        for port, callers in ports
                    ],
                },
            )
        )
    for component in KFP_API_CLIENTS:
        policies.append(
            _policy(
                f"{component}-kube-api",
                namespace,
                {
                    "podSelector": {"matchLabels": kfp_pod_labels(component)},
                    "policyTypes": ["Egress"],
                    "egress": kube_api,
                },
            )
        )
    policies.append(
        _policy(
            "run-pods-egress",
            namespace,
            {
                "podSelector": run_pods,
                "policyTypes": ["Egress"],
                "egress": [
                    *kube_api,
                    *_google_apis(),
                    {"to": [_namespace(platform.NS_LAKEFS)], "ports": _ports(platform.LAKEFS.pod_port)},
                    {"to": [_namespace(platform.NS_MLFLOW)], "ports": _ports(platform.MLFLOW.pod_port)},
                ],
            },
        )
    )
    policies.append(
        _policy(
            "alert-webhook-egress",
            namespace,
            {
                "podSelector": {
                    "matchLabels": {**platform.KFP_RUN_POD_LABELS, platform.TASK_LABEL: platform.ALERT_TASK}
                },
                "policyTypes": ["Egress"],
                "egress": [{"to": [_cidr("0.0.0.0/0", PRIVATE_RANGES)], "ports": _ports(platform.HTTPS_PORT)}],
            },
        )
    )
    return policies + _scrape_policies(namespace)


def _server(
    namespace: str, port: int, callers: list[dict[str, Any]], database: pulumi.Input[str]
) -> list[dict[str, Any]]:
    """A namespace holding one server (lakeFS or MLflow) on a Cloud SQL database and GCS."""
    return [
        *_dns(namespace),
        _policy(
            "server-ingress",
            namespace,
            {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": callers, "ports": _ports(port)}]},
        ),
        _policy(
            "server-egress",
            namespace,
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [_cidr(pulumi.Output.concat(database, "/32"))], "ports": _ports(platform.POSTGRES_PORT)},
                    *_google_apis(),
                ],
            },
        ),
    ]


def mlflow(control_plane_cidr: str, database: pulumi.Input[str]) -> list[dict[str, Any]]:
    """The policies of the mlflow namespace: the tracking server for the pods of a run, the deployer and the
    Job that creates its users."""
    callers = [
        _namespace(platform.NS_KUBEFLOW, platform.KFP_RUN_POD_LABELS),
        _cidr(control_plane_cidr),
        {"podSelector": {"matchLabels": dict(MLFLOW_BOOTSTRAP_LABELS)}},
    ]
    bootstrap = _policy(
        "bootstrap-egress",
        platform.NS_MLFLOW,
        {
            "podSelector": {"matchLabels": dict(MLFLOW_BOOTSTRAP_LABELS)},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {}}], "ports": _ports(platform.MLFLOW.pod_port)}],
        },
    )
    return [*_server(platform.NS_MLFLOW, platform.MLFLOW.pod_port, callers, database), bootstrap]


def lakefs(database: pulumi.Input[str]) -> list[dict[str, Any]]:
    """The policies of the lakefs namespace: the server for the pods of a run and the transformers."""
    callers = [_namespace(platform.NS_KUBEFLOW, platform.KFP_RUN_POD_LABELS)]
    callers += [
        _namespace(namespace, platform.serving_pod_labels("transformer"))
        for namespace in platform.SERVING_NAMESPACES.values()
    ]
    return _server(platform.NS_LAKEFS, platform.LAKEFS.pod_port, callers, database) + _scrape_policies(
        platform.NS_LAKEFS
    )


def all_policies(control_plane_cidr: str, database: pulumi.Input[str]) -> list[dict[str, Any]]:
    """Every NetworkPolicy of the namespaces this program owns (metadata and spec)."""
    return [*kubeflow(control_plane_cidr), *mlflow(control_plane_cidr, database), *lakefs(database)]
