"""One Google service account per workload, each bound through Workload Identity to its Kubernetes
service account(s). No keys are ever created: pods get short-lived tokens from the GKE metadata server
and Cloud Build runs as the deployer account.

Resource-level grants (a bucket, a secret, the image repository) are made next to the resource, by
:mod:`churnops_infra.storage` and :mod:`churnops_infra.secrets`; this module grants only what has no
narrower scope than the project.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from churnops.platform import declaration as platform

WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"


@dataclass(frozen=True)
class Workload:
    """A Google service account and the Kubernetes service accounts that act as it."""

    account_id: str
    description: str
    kubernetes: tuple[tuple[str, str], ...]  # (namespace, service account)
    project_roles: tuple[str, ...] = ()


def _workloads() -> dict[str, Workload]:
    """One Google service account per workload and environment, from the platform declaration."""
    workloads = {}
    for key, declared in platform.IDENTITIES.items():
        if key == "nodes":  # the cluster's own account (churnops_infra.cluster)
            continue
        kubernetes: tuple[tuple[str, str], ...] = ()
        if declared.namespace and declared.ksa:
            kubernetes = ((declared.namespace, declared.ksa),)
        if key == "deployer":
            kubernetes = platform.DEPLOYER_KSAS
        workloads[key] = Workload(declared.gsa, declared.description, kubernetes, PROJECT_ROLES.get(key, ()))
    return workloads


# Grants that have no narrower scope than the project. The deployer fetches cluster credentials (what
# it may do inside is Kubernetes RBAC, see platform), writes build logs and reads metrics (the canary
# analysis queries Managed Service for Prometheus; metrics have no finer resource than the project).
PROJECT_ROLES: dict[str, tuple[str, ...]] = {
    "deployer": ("roles/container.clusterViewer", "roles/logging.logWriter", "roles/monitoring.viewer"),
}
WORKLOADS: dict[str, Workload] = _workloads()


@dataclass
class IdentityArgs:
    """Inputs of :class:`Identity`."""

    project: str
    workload_pool: pulumi.Input[str]


class Identity(pulumi.ComponentResource):
    """Service accounts per workload and environment, each bound to its Kubernetes service account(s)."""

    def __init__(self, name: str, args: IdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("churnops:infra:Identity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.accounts: dict[str, gcp.serviceaccount.Account] = {}
        for key, workload in WORKLOADS.items():
            account = gcp.serviceaccount.Account(
                f"{name}-{key}",
                account_id=workload.account_id,
                display_name=f"churnops {key}",
                description=workload.description,
                opts=child,
            )
            self.accounts[key] = account
            for role in workload.project_roles:
                gcp.projects.IAMMember(
                    f"{name}-{key}-{role.rsplit('/', 1)[-1]}",
                    project=args.project,
                    role=role,
                    member=account.member,
                    opts=child,
                )
            for namespace, ksa in workload.kubernetes:
                gcp.serviceaccount.IAMMember(
                    f"{name}-{key}-wi-{namespace}-{ksa}",
                    service_account_id=account.name,
                    role=WORKLOAD_IDENTITY_USER,
                    member=pulumi.Output.from_input(args.workload_pool).apply(
                        lambda pool, ns=namespace, sa=ksa: f"serviceAccount:{pool}[{ns}/{sa}]"
                    ),
                    opts=child,
                )
        self.register_outputs({key: account.email for key, account in self.accounts.items()})

    def email(self, key: str) -> pulumi.Output[str]:
        """The e-mail of the ``key`` workload's service account."""
        return self.accounts[key].email

    def member(self, key: str) -> pulumi.Output[str]:
        """The IAM member (``serviceAccount:<email>``) of the ``key`` workload."""
        return self.accounts[key].member
