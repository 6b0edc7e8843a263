"""The stack's configuration, read and checked in one place.

Every environment-specific value lives in ``Pulumi.<stack>.yaml`` under the ``churnops:`` namespace
(plus ``gcp:project`` and ``gcp:region``); the only secret, ``churnops:alertWebhookUrl``, is a Pulumi
secret. :func:`load` turns them into frozen dataclasses and refuses values that would weaken a
control (an authorized network open to the internet, a pool that cannot scale) with a message naming
the key.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Mapping

import pulumi

# The raw bucket keeps objects (raw identifiers included) at most this long: docs/security.md, Retention.
MAX_RAW_RETENTION_DAYS = 30
# Days a noncurrent artifact generation (what an overwrite or a delete, such as the erasure purge's, leaves
# behind in the versioned artifacts bucket) is kept: part of the erasure bound (docs/security.md).
MAX_ARTIFACTS_NONCURRENT_DAYS = 7
NAMESPACE = "churnops"
ENVIRONMENTS = ("staging", "prod")
RELEASE_CHANNELS = ("RAPID", "REGULAR", "STABLE")
POOL_NAMES = ("system", "pipelines", "serving")


class ConfigError(ValueError):
    """A stack configuration value is missing or not allowed."""


@dataclass(frozen=True)
class NetworkConfig:
    """Address plan of the VPC: nodes, pods and services ranges, and the control plane's /28."""

    subnet_cidr: str
    pods_cidr: str
    services_cidr: str
    master_cidr: str


@dataclass(frozen=True)
class AuthorizedNetwork:
    """A CIDR allowed to reach the cluster's control plane."""

    name: str
    cidr: str


@dataclass(frozen=True)
class ClusterConfig:
    """The GKE cluster: where it runs, its release channel and who reaches its control plane."""

    location: str
    release_channel: str
    private_endpoint: bool
    deletion_protection: bool
    authorized_networks: tuple[AuthorizedNetwork, ...]
    # Kourier's gateway as an external load balancer; by default it is a ClusterIP Service (internal).
    public_ingress: bool = False


@dataclass(frozen=True)
class NodePoolConfig:
    """One node pool: machine type and autoscaling bounds (per zone)."""

    name: str
    machine_type: str
    min_nodes: int
    max_nodes: int
    spot: bool


@dataclass(frozen=True)
class StorageConfig:
    """Bucket location, how long raw files and noncurrent artifact generations are kept, and whether a
    destroy may empty buckets."""

    location: str
    raw_retention_days: int
    force_destroy: bool
    artifacts_noncurrent_days: int


@dataclass(frozen=True)
class DatabaseConfig:
    """The Cloud SQL Postgres instance shared by MLflow and lakeFS."""

    tier: str
    high_availability: bool
    disk_size_gb: int
    deletion_protection: bool


@dataclass(frozen=True)
class CicdConfig:
    """The GitHub repository the Cloud Build triggers watch and the training schedule."""

    github_owner: str
    github_repo: str
    github_app_installation_id: int  # the Cloud Build GitHub App's installation on the repository's owner
    training_schedule: str
    time_zone: str


@dataclass(frozen=True)
class MonitoringConfig:
    """Alerting thresholds."""

    pipeline_failure_threshold: int


@dataclass(frozen=True)
class StackConfig:
    """Everything the program reads from the stack configuration."""

    project: str
    region: str
    environment: str
    network: NetworkConfig
    cluster: ClusterConfig
    node_pools: tuple[NodePoolConfig, ...]
    storage: StorageConfig
    database: DatabaseConfig
    cicd: CicdConfig
    monitoring: MonitoringConfig
    alert_webhook_url: pulumi.Output[str]
    # The commit whose components image (tagged with it by the CI build) runs MLflow and its bootstrap; None
    # before the first build has pushed one (then MLflow is not installed).
    mlflow_image_tag: str | None

    @property
    def prefix(self) -> str:
        """Prefix of globally named resources (buckets): the project id, unique by construction."""
        return self.project

    def pool(self, name: str) -> NodePoolConfig:
        """The node pool called ``name``."""
        for pool in self.node_pools:
            if pool.name == name:
                return pool
        raise ConfigError(f"churnops:nodePools has no pool {name!r}")


def _section(cfg: pulumi.Config, key: str) -> Mapping[str, Any]:
    value = cfg.require_object(key)
    if not isinstance(value, Mapping):
        raise ConfigError(f"churnops:{key} must be a mapping, got {type(value).__name__}")
    return value


def _get(section: Mapping[str, Any], key: str, name: str, kind: type) -> Any:
    if key not in section:
        raise ConfigError(f"churnops:{name}.{key} is required")
    value = section[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigError(f"churnops:{name}.{key} must be {kind.__name__}, got {value!r}")
    return value


def _network(section: Mapping[str, Any]) -> NetworkConfig:
    keys = ("subnetCidr", "podsCidr", "servicesCidr", "masterCidr")
    values = {key: _get(section, key, "network", str) for key in keys}
    nets = {key: ipaddress.ip_network(value) for key, value in values.items()}
    if nets["masterCidr"].prefixlen != 28:
        raise ConfigError("churnops:network.masterCidr must be a /28 (GKE's control-plane range)")
    for i, first in enumerate(keys):
        for second in keys[i + 1 :]:
            if nets[first].overlaps(nets[second]):
                raise ConfigError(f"churnops:network.{first} overlaps churnops:network.{second}")
    return NetworkConfig(
        subnet_cidr=values["subnetCidr"],
        pods_cidr=values["podsCidr"],
        services_cidr=values["servicesCidr"],
        master_cidr=values["masterCidr"],
    )


def _cluster(section: Mapping[str, Any]) -> ClusterConfig:
    channel = _get(section, "releaseChannel", "cluster", str)
    if channel not in RELEASE_CHANNELS:
        raise ConfigError(f"churnops:cluster.releaseChannel must be one of {RELEASE_CHANNELS}, got {channel!r}")
    private_endpoint = _get(section, "privateEndpoint", "cluster", bool)
    networks = []
    for entry in section.get("authorizedNetworks") or []:
        name = _get(entry, "name", "cluster.authorizedNetworks", str)
        cidr = _get(entry, "cidr", "cluster.authorizedNetworks", str)
        if ipaddress.ip_network(cidr).prefixlen == 0:
            raise ConfigError(f"churnops:cluster.authorizedNetworks {name!r} opens the control plane to everyone")
        networks.append(AuthorizedNetwork(name=name, cidr=cidr))
    if not private_endpoint and not networks:
        raise ConfigError("churnops:cluster.authorizedNetworks must list who may reach a public control-plane endpoint")
    return ClusterConfig(
        location=_get(section, "location", "cluster", str),
        release_channel=channel,
        private_endpoint=private_endpoint,
        deletion_protection=_get(section, "deletionProtection", "cluster", bool),
        public_ingress=_get(section, "publicIngress", "cluster", bool) if "publicIngress" in section else False,
        authorized_networks=tuple(networks),
    )


def _node_pools(section: Mapping[str, Any]) -> tuple[NodePoolConfig, ...]:
    pools = []
    for name in POOL_NAMES:
        if name not in section:
            raise ConfigError(f"churnops:nodePools.{name} is required")
        entry = section[name]
        where = f"nodePools.{name}"
        pool = NodePoolConfig(
            name=name,
            machine_type=_get(entry, "machineType", where, str),
            min_nodes=_get(entry, "minNodes", where, int),
            max_nodes=_get(entry, "maxNodes", where, int),
            spot=bool(entry.get("spot", False)),
        )
        if not 0 <= pool.min_nodes <= pool.max_nodes or pool.max_nodes < 1:
            raise ConfigError(f"churnops:{where} needs 0 <= minNodes <= maxNodes and maxNodes >= 1")
        pools.append(pool)
    if pools[0].min_nodes < 1:
        raise ConfigError("churnops:nodePools.system.minNodes must be at least 1 (it runs the platform)")
    return tuple(pools)


def _installation(cicd: Mapping[str, Any]) -> int:
    """The Cloud Build GitHub App's installation id: a positive integer, from installing the app."""
    value = cicd.get("githubAppInstallationId")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(
            "churnops:cicd.githubAppInstallationId must be the installation id of the Cloud Build GitHub App "
            "on the repository's owner (a positive integer; docs/infrastructure.md, 'First pulumi up', step 5)"
        )
    return value


def _image_tag(cfg: pulumi.Config) -> str | None:
    """The commit (40 hex digits) whose components image the CI build pushed, which MLflow runs; None when unset."""
    value = cfg.get("mlflowImageTag")
    if value is not None and not re.fullmatch(r"[0-9a-f]{40}", value):
        raise ConfigError(
            "churnops:mlflowImageTag must be the commit (40 hex digits) whose churnops-components image the CI "
            "build pushed: MLflow runs it (docs/infrastructure.md, 'First pulumi up', step 12)"
        )
    return value


def load() -> StackConfig:
    """Read and check the current stack's configuration."""
    gcp = pulumi.Config("gcp")
    cfg = pulumi.Config(NAMESPACE)
    environment = cfg.require("environment")
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"churnops:environment must be one of {ENVIRONMENTS}, got {environment!r}")
    storage = _section(cfg, "storage")
    database = _section(cfg, "database")
    cicd = _section(cfg, "cicd")
    monitoring = _section(cfg, "monitoring")
    retention = _get(storage, "rawRetentionDays", "storage", int)
    if not 1 <= retention <= MAX_RAW_RETENTION_DAYS:
        raise ConfigError(
            f"churnops:storage.rawRetentionDays must be 1 to {MAX_RAW_RETENTION_DAYS} "
            f"(raw objects hold raw identifiers; docs/security.md), got {retention}"
        )
    noncurrent = _get(storage, "artifactsNoncurrentDays", "storage", int)
    if not 1 <= noncurrent <= MAX_ARTIFACTS_NONCURRENT_DAYS:
        raise ConfigError(
            f"churnops:storage.artifactsNoncurrentDays must be 1 to {MAX_ARTIFACTS_NONCURRENT_DAYS} "
            f"(an erased subject's rows live on in noncurrent artifact generations; docs/security.md), got {noncurrent}"
        )
    return StackConfig(
        project=gcp.require("project"),
        region=gcp.require("region"),
        environment=environment,
        network=_network(_section(cfg, "network")),
        cluster=_cluster(_section(cfg, "cluster")),
        node_pools=_node_pools(_section(cfg, "nodePools")),
        storage=StorageConfig(
            location=_get(storage, "location", "storage", str),
            raw_retention_days=retention,
            force_destroy=_get(storage, "forceDestroy", "storage", bool),
            artifacts_noncurrent_days=noncurrent,
        ),
        database=DatabaseConfig(
            tier=_get(database, "tier", "database", str),
            high_availability=_get(database, "highAvailability", "database", bool),
            disk_size_gb=_get(database, "diskSizeGb", "database", int),
            deletion_protection=_get(database, "deletionProtection", "database", bool),
        ),
        cicd=CicdConfig(
            github_owner=_get(cicd, "githubOwner", "cicd", str),
            github_repo=_get(cicd, "githubRepo", "cicd", str),
            github_app_installation_id=_installation(cicd),
            training_schedule=_get(cicd, "trainingSchedule", "cicd", str),
            time_zone=_get(cicd, "timeZone", "cicd", str),
        ),
        monitoring=MonitoringConfig(
            pipeline_failure_threshold=_get(monitoring, "pipelineFailureThreshold", "monitoring", int),
        ),
        alert_webhook_url=cfg.require_secret("alertWebhookUrl"),
        mlflow_image_tag=_image_tag(cfg),
    )
