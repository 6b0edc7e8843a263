"""Upstream schemas for rendered and applied Kubernetes objects.

Core kinds: the ``kubernetes-validate`` package's strict JSON schemas (unknown fields rejected) of
the Kubernetes version GKE runs. Custom resources: the ``openAPIV3Schema`` of their vendored CRD
(InferenceService v1beta1: ``tests/specs/kserve-inferenceservice-crd.yaml``; Managed Prometheus's
PodMonitoring v1: ``tests/specs/gmp-podmonitoring-crd.yaml``), made strict the way an API server
with ``fieldValidation=Strict`` treats it: ``additionalProperties: false`` wherever properties are
listed and ``x-kubernetes-preserve-unknown-fields`` is not set.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.33"
SPECS = Path(__file__).resolve().parents[1] / "specs"
CRD_PATH = SPECS / "kserve-inferenceservice-crd.yaml"
# (apiVersion, kind) -> (vendored CRD, version name)
CUSTOM_RESOURCES = {
    ("serving.kserve.io/v1beta1", "InferenceService"): (CRD_PATH, "v1beta1"),
    ("monitoring.googleapis.com/v1", "PodMonitoring"): (SPECS / "gmp-podmonitoring-crd.yaml", "v1"),
}
CORE_GROUPS = (
    "v1",
    "rbac.authorization.k8s.io/v1",
    "networking.k8s.io/v1",
    "apps/v1",
    "batch/v1",
    "policy/v1",
    "admissionregistration.k8s.io/v1",
)


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        out = {key: _strict(value) for key, value in node.items()}
        if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_strict(item) for item in node]
    return node


@lru_cache(maxsize=None)
def crd_validator(path: Path, version_name: str) -> jsonschema.Draft7Validator:
    """A validator of whole objects of one version of a vendored CRD, unknown fields rejected."""
    # libyaml's loader: the KServe CRD is 2 MB, which the pure-Python loader takes half a minute to read.
    crd = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == version_name)
    return jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))


def isvc_validator() -> jsonschema.Draft7Validator:
    """A validator of whole InferenceService objects (v1beta1), unknown fields rejected."""
    return crd_validator(CRD_PATH, "v1beta1")


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Every schema violation of ``obj`` (empty when valid); unknown kinds raise KeyError."""
    custom = CUSTOM_RESOURCES.get((obj.get("apiVersion"), obj.get("kind")))
    if custom is not None:
        return [
            f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
            for error in crd_validator(*custom).iter_errors(obj)
        ]
    if obj.get("apiVersion") in CORE_GROUPS:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            return [f"{'/'.join(str(p) for p in error.path)}: {error.message}"]
        return []
    raise KeyError(f"no vendored schema for {obj.get('apiVersion')} {obj.get('kind')}")
