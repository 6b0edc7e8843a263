"""Pinned versions of everything the platform installs into the cluster.

Every chart and manifest set is pinned to an exact release so that ``pulumi up`` is repeatable and an
upgrade is a reviewed change to this file (the policy pack refuses an unpinned Helm release).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chart:
    """A Helm chart at an exact version; ``repo`` is a chart repository URL or an ``oci://`` registry."""

    name: str
    repo: str
    version: str

    @property
    def is_oci(self) -> bool:
        """Whether the chart comes from an OCI registry (then ``chart`` carries the whole reference)."""
        return self.repo.startswith("oci://")

    @property
    def reference(self) -> str:
        """The ``chart`` argument of a Helm release."""
        return f"{self.repo}/{self.name}" if self.is_oci else self.name


CERT_MANAGER = Chart("cert-manager", "https://charts.jetstack.io", "v1.18.2")
EXTERNAL_SECRETS = Chart("external-secrets", "https://charts.external-secrets.io", "0.19.2")
KNATIVE_OPERATOR = Chart("knative-operator", "https://knative.github.io/operator", "v1.18.1")
KSERVE_CRD = Chart("kserve-crd", "oci://ghcr.io/kserve/charts", "v0.15.2")
KSERVE = Chart("kserve", "oci://ghcr.io/kserve/charts", "v0.15.2")
LAKEFS = Chart("lakefs", "https://charts.lakefs.io", "1.11.1")
MLFLOW = Chart("mlflow", "https://community-charts.github.io/helm-charts", "1.7.3")

# Knative Serving version the operator installs (KnativeServing.spec.version), with Kourier.
KNATIVE_SERVING = "1.18"

# Kubeflow Pipelines has no Helm chart: its kustomize manifests, at a release tag.
KFP = "2.17.0"
KFP_MANIFESTS = "https://github.com/kubeflow/pipelines/tree/{ref}/manifests/kustomize/{path}"

# Cloud SQL engine.
POSTGRES = "POSTGRES_16"


def kfp_manifests(path: str) -> str:
    """The URL of one KFP kustomization at the pinned release."""
    return KFP_MANIFESTS.format(ref=KFP, path=path)
