"""Upstream schemas for rendered and applied Kubernetes objects.

Core kinds: the ``kubernetes-validate`` package's strict JSON schemas (unknown fields rejected) of
the Kubernetes version GKE runs. InferenceService: the v1beta1 ``openAPIV3Schema`` of the vendored
KServe CRD (``tests/specs/kserve-inferenceservice-crd.yaml``), made strict the way an API server
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
CRD_PATH = Path(__file__).resolve().parents[1] / "specs" / "kserve-inferenceservice-crd.yaml"
CORE_GROUPS = ("v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1", "apps/v1", "batch/v1")


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        out = {key: _strict(value) for key, value in node.items()}
        if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_strict(item) for item in node]
    return node


@lru_cache(maxsize=1)
def isvc_validator() -> jsonschema.Draft7Validator:
    """A validator of whole InferenceService objects (v1beta1), unknown fields rejected."""
    # libyaml's loader: the CRD is 2 MB, which the pure-Python loader takes half a minute to read.
    crd = yaml.load(CRD_PATH.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    return jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Every schema violation of ``obj`` (empty when valid); unknown kinds raise KeyError."""
    if obj.get("kind") == "InferenceService" and obj.get("apiVersion") == "serving.kserve.io/v1beta1":
        return [
            f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
            for error in isvc_validator().iter_errors(obj)
        ]
    if obj.get("apiVersion") in CORE_GROUPS:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            return [f"{'/'.join(str(p) for p in error.path)}: {error.message}"]
        return []
    raise KeyError(f"no vendored schema for {obj.get('apiVersion')} {obj.get('kind')}")
