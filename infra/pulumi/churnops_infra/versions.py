"""Pinned versions of everything the platform installs into the cluster, from the platform's one
declaration (churnops/platform/declaration.py).

Every chart and manifest set is pinned to an exact release so that ``pulumi up`` is repeatable and an
upgrade is a reviewed change to the declaration (the policy pack refuses an unpinned Helm release).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from churnops.platform import declaration as platform

Chart = platform.Chart
CERT_MANAGER = platform.CERT_MANAGER
EXTERNAL_SECRETS = platform.EXTERNAL_SECRETS
KNATIVE_OPERATOR = platform.KNATIVE_OPERATOR
KSERVE_CRD = platform.KSERVE_CRD
KSERVE = platform.KSERVE
LAKEFS = platform.LAKEFS_CHART
MLFLOW = platform.MLFLOW_CHART
KNATIVE_SERVING = platform.KNATIVE_SERVING
KFP = platform.KFP_BACKEND
POSTGRES = platform.POSTGRES

# Kubeflow Pipelines has no Helm chart: its release manifests, rendered by infra/pulumi/upstream/render-kfp.
UPSTREAM = Path(__file__).resolve().parents[1] / "upstream"


def kfp_manifests(path: str) -> Path:
    """The rendered manifests of one KFP kustomization at the pinned release."""
    file = UPSTREAM / f"kfp-{KFP}" / f"{path}.yaml"
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing: render KFP {KFP} with infra/pulumi/upstream/render-kfp")
    return file


def kfp_objects(path: str, skip: frozenset[tuple[str, str]] = frozenset()) -> list[dict[str, Any]]:
    """The objects of one KFP kustomization at the pinned release, without the (kind, name) pairs in ``skip``."""
    with kfp_manifests(path).open(encoding="utf-8") as stream:
        objects = [obj for obj in yaml.safe_load_all(stream) if obj]
    return [obj for obj in objects if (obj["kind"], obj["metadata"]["name"]) not in skip]
