"""The private, hardened GKE cluster, its node pools, their service account and the KMS key for secrets."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
from churnops_infra import names
from churnops_infra.config import ClusterConfig, NodePoolConfig
from churnops_infra.network import PODS_RANGE, SERVICES_RANGE

from churnops.platform import declaration as platform

# Images the cluster may run besides GKE's own (allowed by the global policy): ours with the build's
# attestation, and exactly the upstream images the pinned releases run (the platform declaration's).
# Everything else is refused by Binary Authorization.
TRUSTED_IMAGE_PATTERNS = tuple(image for images in platform.ADMITTED_IMAGES.values() for image in images)
# Automatic upgrades and node maintenance only in this weekly window (UTC, weekend nights).
MAINTENANCE_WINDOW = {
    "start_time": "2026-01-03T01:00:00Z",
    "end_time": "2026-01-03T05:00:00Z",
    "recurrence": "FREQ=WEEKLY;BYDAY=SA,SU",
}
# Backup for GKE of the pipeline metadata store: KFP's namespace with its volumes (the metadata
# database's and the artifact store's claims), daily, kept 30 days; Secrets are not backed up (they
# come from Secret Manager).
METADATA_BACKUP_SCHEDULE = "0 2 * * *"
METADATA_BACKUP_RETAIN_DAYS = 30
# The one role GKE documents for a node service account (logs, metrics, resource metadata).
NODE_ROLE = "roles/container.defaultNodeServiceAccount"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]  # access is governed by IAM, not scopes


@dataclass
class ClusterArgs:
    """Inputs of :class:`Cluster`."""

    project: str
    region: str
    config: ClusterConfig
    node_pools: tuple[NodePoolConfig, ...]
    network: pulumi.Input[str]
    subnet: pulumi.Input[str]
    master_cidr: str


class Cluster(pulumi.ComponentResource):
    """Private nodes, an authorized-networks control plane, Workload Identity, Dataplane V2, Binary
    Authorization, KMS-encrypted Secrets, shielded nodes on a dedicated service account."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("churnops:infra:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cfg = args.config

        self.node_account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            account_id=names.GSA_NODES,
            display_name="churnops GKE nodes",
            opts=child,
        )
        gcp.projects.IAMMember(
            f"{name}-nodes-role",
            project=args.project,
            role=NODE_ROLE,
            member=self.node_account.member,
            opts=child,
        )

        # Application-layer encryption of Kubernetes Secrets in etcd with our own key.
        keyring = gcp.kms.KeyRing(f"{name}-keyring", name="churnops-gke", location=args.region, opts=child)
        self.secrets_key = gcp.kms.CryptoKey(
            f"{name}-secrets-key",
            name="gke-secrets",
            key_ring=keyring.id,
            purpose="ENCRYPT_DECRYPT",
            rotation_period="7776000s",  # 90 days
            opts=pulumi.ResourceOptions(parent=self, protect=cfg.deletion_protection),
        )
        project = gcp.organizations.get_project_output(project_id=args.project)
        gke_agent = project.number.apply(
            lambda number: f"serviceAccount:service-{number}@container-engine-robot.iam.gserviceaccount.com"
        )
        key_grant = gcp.kms.CryptoKeyIAMMember(
            f"{name}-secrets-key-gke",
            crypto_key_id=self.secrets_key.id,
            role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=gke_agent,
            opts=child,
        )

        self._attestor(name, args)
        # Our images run only with the build's attestation; the platform's upstream images are
        # admitted by name; anything else is refused.
        self.binauthz_policy = gcp.binaryauthorization.Policy(
            f"{name}-binauthz",
            project=args.project,
            global_policy_evaluation_mode="ENABLE",
            admission_whitelist_patterns=[{"name_pattern": pattern} for pattern in TRUSTED_IMAGE_PATTERNS],
            default_admission_rule={
                "evaluation_mode": "REQUIRE_ATTESTATION",
                "require_attestations_bies": [self.attestor.name],
                "enforcement_mode": "ENFORCED_BLOCK_AND_AUDIT_LOG",
            },
            opts=child,
        )

        self.workload_pool = f"{args.project}.svc.id.goog"
        node_config = self._node_config(names.POOL_SYSTEM, spot=False, machine_type="e2-small")
        self.cluster = gcp.container.Cluster(
            name,
            name="churnops",
            location=cfg.location,
            network=args.network,
            subnetwork=args.subnet,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy={
                "cluster_secondary_range_name": PODS_RANGE,
                "services_secondary_range_name": SERVICES_RANGE,
            },
            # Node pools are managed separately; the default pool is removed once the cluster exists,
            # and while it exists it runs as the node service account too.
            remove_default_node_pool=True,
            initial_node_count=1,
            node_config=node_config,
            private_cluster_config={
                "enable_private_nodes": True,
                "enable_private_endpoint": cfg.private_endpoint,
                "master_ipv4_cidr_block": args.master_cidr,
                "master_global_access_config": {"enabled": False},
            },
            master_authorized_networks_config={
                "cidr_blocks": [
                    {"cidr_block": network.cidr, "display_name": network.name} for network in cfg.authorized_networks
                ],
                "gcp_public_cidrs_access_enabled": False,
            },
            master_auth={"client_certificate_config": {"issue_client_certificate": False}},
            # The DNS endpoint admits only callers with IAM permission on the cluster (Cloud Build's
            # private pool reaches the control plane through it).
            control_plane_endpoints_config={"dns_endpoint_config": {"allow_external_traffic": True}},
            datapath_provider="ADVANCED_DATAPATH",  # Dataplane V2: enforces NetworkPolicy
            workload_identity_config={"workload_pool": self.workload_pool},
            enable_shielded_nodes=True,
            enable_legacy_abac=False,
            binary_authorization={"evaluation_mode": "PROJECT_SINGLETON_POLICY_ENFORCE"},
            database_encryption={"state": "ENCRYPTED", "key_name": self.secrets_key.id},
            release_channel={"channel": cfg.release_channel},
            security_posture_config={"mode": "BASIC", "vulnerability_mode": "VULNERABILITY_BASIC"},
            logging_config={"enable_components": ["SYSTEM_COMPONENTS", "WORKLOADS"]},
            # Managed Service for Prometheus: collects what the serving namespaces' PodMonitoring
            # (manifests/base/podmonitoring.yaml) selects; the canary analysis queries it.
            monitoring_config={"enable_components": ["SYSTEM_COMPONENTS"], "managed_prometheus": {"enabled": True}},
            maintenance_policy={"recurring_window": MAINTENANCE_WINDOW},
            addons_config={"gke_backup_agent_config": {"enabled": True}},
            deletion_protection=cfg.deletion_protection,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[key_grant, self.binauthz_policy]),
        )
        self.node_pools = [self._node_pool(name, pool) for pool in args.node_pools]
        self.metadata_backup = gcp.gkebackup.BackupPlan(
            f"{name}-kfp-backup",
            name="churnops-pipeline-metadata",
            cluster=self.cluster.id,
            location=args.region,
            retention_policy={"backup_retain_days": METADATA_BACKUP_RETAIN_DAYS},
            backup_schedule={"cron_schedule": METADATA_BACKUP_SCHEDULE},
            backup_config={
                "include_volume_data": True,
                "include_secrets": False,
                "selected_namespaces": {"namespaces": [names.NS_KUBEFLOW]},
            },
            opts=child,
        )
        self.register_outputs(
            {
                "name": self.cluster.name,
                "endpoint": self.cluster.endpoint,
                "node_service_account": self.node_account.email,
                "workload_pool": self.workload_pool,
            }
        )

    def _attestor(self, name: str, args: ClusterArgs) -> None:
        """The attestor builds sign with: an asymmetric KMS key and the Container Analysis note it attaches to."""
        keyring = gcp.kms.KeyRing(
            f"{name}-attestor-keyring",
            name=names.ATTESTOR_KEYRING,
            location=args.region,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.attestor_key = gcp.kms.CryptoKey(
            f"{name}-attestor-key",
            name=names.ATTESTOR_KEY,
            key_ring=keyring.id,
            purpose="ASYMMETRIC_SIGN",
            version_template={"algorithm": "EC_SIGN_P256_SHA256", "protection_level": "HSM"},
            opts=pulumi.ResourceOptions(parent=self, protect=args.config.deletion_protection),
        )
        self.attestor_note = gcp.containeranalysis.Note(
            f"{name}-attestor-note",
            name=names.ATTESTOR,
            attestation_authority={"hint": {"human_readable_name": "churnops vulnerability gate passed"}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        version = gcp.kms.get_kms_crypto_key_version_output(crypto_key=self.attestor_key.id)
        self.attestor = gcp.binaryauthorization.Attestor(
            f"{name}-attestor",
            name=names.ATTESTOR,
            attestation_authority_note={
                "note_reference": self.attestor_note.name,
                "public_keys": [
                    {
                        "id": version.name.apply(lambda version_name: f"//cloudkms.googleapis.com/v1/{version_name}"),
                        "pkix_public_key": {
                            "public_key_pem": version.public_keys[0].pem,
                            "signature_algorithm": version.public_keys[0].algorithm,
                        },
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _node_config(self, pool: str, spot: bool, machine_type: str) -> dict:
        # The pipelines and serving pools take only pods that tolerate their taint (the declaration's).
        taints = (
            [{"key": platform.POOL_TAINT_KEY, "value": pool, "effect": "NO_SCHEDULE"}]
            if pool in platform.TAINTED_POOLS
            else []
        )
        return {
            "machine_type": machine_type,
            "service_account": self.node_account.email,
            "oauth_scopes": SCOPES,
            "spot": spot,
            "image_type": "COS_CONTAINERD",
            "disk_type": "pd-balanced",
            "disk_size_gb": 100,
            "labels": {platform.POOL_TAINT_KEY: pool},
            "taints": taints,
            "metadata": {"disable-legacy-endpoints": "true"},
            "shielded_instance_config": {"enable_secure_boot": True, "enable_integrity_monitoring": True},
            "workload_metadata_config": {"mode": "GKE_METADATA"},
        }

    def _node_pool(self, name: str, pool: NodePoolConfig) -> gcp.container.NodePool:
        return gcp.container.NodePool(
            f"{name}-{pool.name}",
            name=pool.name,
            cluster=self.cluster.id,
            location=self.cluster.location,
            initial_node_count=max(pool.min_nodes, 1) if pool.name == names.POOL_SYSTEM else pool.min_nodes,
            autoscaling={"min_node_count": pool.min_nodes, "max_node_count": pool.max_nodes},
            management={"auto_repair": True, "auto_upgrade": True},
            upgrade_settings={"max_surge": 1, "max_unavailable": 0},
            node_config=self._node_config(pool.name, spot=pool.spot, machine_type=pool.machine_type),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["initialNodeCount"]),
        )
