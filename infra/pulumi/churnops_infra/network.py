"""VPC, subnet with secondary ranges for pods and services, Cloud NAT, firewall, private service access."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
from churnops_infra.config import NetworkConfig

from churnops.platform import declaration as platform

PODS_RANGE = "pods"
SERVICES_RANGE = "services"
# Ports the control plane must reach on nodes for admission webhooks (GKE opens 443 and 10250 itself):
# Knative and KServe webhooks (and KFP's cache server) listen on 8443 and 9443.
WEBHOOK_PORTS = ["8443", "9443"]
# Pod ports the API server's service proxy connects to: the builds reach the KFP API and MLflow, the smoke
# test a new revision's queue-proxy, operators the KFP UI.
PROXY_PORTS = [
    str(port)
    for port in (
        platform.KFP_API.pod_port,
        platform.KFP_UI.pod_port,
        platform.MLFLOW.pod_port,
        platform.QUEUE_PROXY_PORT,
    )
]


@dataclass
class NetworkArgs:
    """Inputs of :class:`Network`."""

    region: str
    config: NetworkConfig


class Network(pulumi.ComponentResource):
    """A custom-mode VPC whose nodes have no public IPs and reach the internet only through Cloud NAT."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("churnops:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cfg = args.config

        self.vpc = gcp.compute.Network(
            f"{name}-vpc",
            name="churnops",
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            opts=child,
        )
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-nodes",
            name="churnops-nodes",
            region=args.region,
            network=self.vpc.id,
            ip_cidr_range=cfg.subnet_cidr,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                {"range_name": PODS_RANGE, "ip_cidr_range": cfg.pods_cidr},
                {"range_name": SERVICES_RANGE, "ip_cidr_range": cfg.services_cidr},
            ],
            log_config={
                "aggregation_interval": "INTERVAL_5_MIN",
                "flow_sampling": 0.5,
                "metadata": "INCLUDE_ALL_METADATA",
            },
            opts=child,
        )
        router = gcp.compute.Router(
            f"{name}-router", name="churnops", region=args.region, network=self.vpc.id, opts=child
        )
        gcp.compute.RouterNat(
            f"{name}-nat",
            name="churnops",
            router=router.name,
            region=args.region,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            log_config={"enable": True, "filter": "ERRORS_ONLY"},
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-allow-internal",
            name="churnops-allow-internal",
            network=self.vpc.id,
            direction="INGRESS",
            source_ranges=[cfg.subnet_cidr, cfg.pods_cidr, cfg.services_cidr],
            allows=[{"protocol": "tcp"}, {"protocol": "udp"}, {"protocol": "icmp"}],
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-allow-webhooks",
            name="churnops-allow-control-plane-webhooks",
            network=self.vpc.id,
            direction="INGRESS",
            source_ranges=[cfg.master_cidr],
            allows=[{"protocol": "tcp", "ports": WEBHOOK_PORTS + PROXY_PORTS}],
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-deny-ingress",
            name="churnops-deny-all-ingress",
            network=self.vpc.id,
            direction="INGRESS",
            priority=65534,
            source_ranges=["0.0.0.0/0"],
            denies=[{"protocol": "all"}],
            log_config={"metadata": "INCLUDE_ALL_METADATA"},
            opts=child,
        )
        # Google APIs through their private VIP: every *.googleapis.com name resolves, inside this VPC,
        # to private.googleapis.com's addresses (the only Google API route the egress policies allow),
        # reached through the default internet gateway route (Private Google Access).
        zone = gcp.dns.ManagedZone(
            f"{name}-googleapis",
            name="churnops-googleapis",
            dns_name=f"{platform.GOOGLE_APIS_DOMAIN}.",
            description="Google APIs through private.googleapis.com from the churnops VPC",
            visibility="private",
            private_visibility_config={"networks": [{"network_url": self.vpc.id}]},
            opts=child,
        )
        gcp.dns.RecordSet(
            f"{name}-googleapis-private",
            managed_zone=zone.name,
            name=f"private.{platform.GOOGLE_APIS_DOMAIN}.",
            type="A",
            ttl=300,
            rrdatas=list(platform.GOOGLE_APIS_VIP_ADDRESSES),
            opts=child,
        )
        gcp.dns.RecordSet(
            f"{name}-googleapis-wildcard",
            managed_zone=zone.name,
            name=f"*.{platform.GOOGLE_APIS_DOMAIN}.",
            type="CNAME",
            ttl=300,
            rrdatas=[f"private.{platform.GOOGLE_APIS_DOMAIN}."],
            opts=child,
        )
        # Private service access: Cloud SQL gets a private IP inside this VPC.
        self.private_services_range = gcp.compute.GlobalAddress(
            f"{name}-private-services",
            name="churnops-private-services",
            purpose="VPC_PEERING",
            address_type="INTERNAL",
            prefix_length=20,
            network=self.vpc.id,
            opts=child,
        )
        self.private_services = gcp.servicenetworking.Connection(
            f"{name}-private-services",
            network=self.vpc.id,
            service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[self.private_services_range.name],
            opts=child,
        )
        self.register_outputs({"vpc": self.vpc.id, "subnet": self.subnet.id})
