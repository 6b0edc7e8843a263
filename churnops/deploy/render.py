"""Render a kustomize overlay of ``manifests/`` with one release's values (image digest, model URI).

Rendering is done by kustomize itself: the standalone ``kustomize`` binary when it is on ``PATH``,
else ``kubectl kustomize`` (kubectl embeds kustomize). The overlay is never edited: the manifests
tree is copied to a temporary folder next to a generated kustomization that takes the overlay as its
resource and adds an ``images`` entry (the digest) and JSON patches (model URI, project, canary
share, model version annotation). Every patch of a list element first ``test``s that it addresses
the element it means to change, so a reordered manifest fails the render instead of patching the
wrong field.
"""

from __future__ import annotations

import json
import re
import shutil

# The kustomize binary runs with an argument list, never through a shell.
import subprocess  # nosec B404
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from churnops.errors import ConfigurationError, DeploymentError
from churnops.platform import declaration as platform
from churnops.platform.settings import Settings

Environment = Literal["staging", "production"]
ENVIRONMENTS: tuple[str, ...] = platform.ENVIRONMENTS
NAMESPACES: dict[str, str] = dict(platform.SERVING_NAMESPACES)
IMAGE_NAME = platform.IMAGE_SERVING  # the image name the base manifests use, replaced at render time
MODEL_VERSION_ANNOTATION = "churnops.io/model-version"
PLATFORM_LABEL = "churnops.io/apply-by"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
MODEL_URI = re.compile(r"^(gs|s3|https|pvc)://[^\s]+$")
RENDER_TIMEOUT_S = 60


@dataclass(frozen=True)
class Release:
    """What one deployment puts in an environment."""

    env: Environment
    image: str
    model_uri: str
    model_version: str | None = None
    canary_percent: int | None = None

    def __post_init__(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise ConfigurationError(f"unknown environment {self.env!r}; expected one of {list(ENVIRONMENTS)}")
        if not MODEL_URI.match(self.model_uri):
            raise ConfigurationError(f"model URI {self.model_uri!r} is not a gs://, s3://, https:// or pvc:// URI")
        if self.canary_percent is not None:
            if self.env != "production":
                raise ConfigurationError("a canary share only applies to production")
            if not 0 <= self.canary_percent <= 100:
                raise ConfigurationError(f"canary percent must be within 0-100, got {self.canary_percent}")

    @property
    def namespace(self) -> str:
        """The environment's namespace."""
        return NAMESPACES[self.env]


def image_reference(settings: Settings, image: str) -> str:
    """The full image reference pinned by digest.

    ``image`` is either a bare digest (``sha256:...``, the image then lives in the settings' Artifact
    Registry repository) or a full reference ending in ``@sha256:...``. Tags are refused: a tag can
    move, a digest cannot.
    """
    if DIGEST.match(image):
        registry = f"{settings.gcp_region}-docker.pkg.dev/{settings.gcp_project}/{settings.artifact_repository}"
        return f"{registry}/{settings.serving_image}@{image}"
    name, sep, digest = image.rpartition("@")
    if not sep or not name or not DIGEST.match(digest):
        raise ConfigurationError(
            f"the image must be pinned by digest (NAME@sha256:<64 hex> or sha256:...), got {image!r}"
        )
    return image


def predictor_callers(env: str) -> list[str]:
    """The accounts the predictor of ``env`` serves: that environment's transformer, and the deployer's smoke test."""
    return [platform.serving_identity("transformer", env).gsa, platform.identity("deployer").gsa]


def transformer_callers() -> list[str]:
    """The accounts the by-customer transformer serves: the deployer's smoke test."""
    return [platform.identity("deployer").gsa]


def kustomize_command() -> list[str]:
    """The command that builds a kustomization: ``kustomize build`` or ``kubectl kustomize``."""
    kustomize = shutil.which("kustomize")
    if kustomize:
        return [kustomize, "build"]
    kubectl = shutil.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize"]
    raise ConfigurationError("neither kustomize nor kubectl is on PATH: install one to render the manifests")


def _json_patch(target: dict[str, str], operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"target": target, "patch": yaml.safe_dump(operations, sort_keys=False)}


def render_kustomization(settings: Settings, release: Release) -> dict[str, Any]:
    """The generated kustomization that layers ``release`` over its environment's overlay."""
    name, _, digest = image_reference(settings, release.image).rpartition("@")
    project = settings.gcp_project
    isvc_ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/spec/predictor/containers/0/env/0/name", "value": "STORAGE_URI"},
        {"op": "replace", "path": "/spec/predictor/containers/0/env/0/value", "value": release.model_uri},
        {"op": "test", "path": "/spec/transformer/containers/0/env/0/name", "value": "CHURNOPS_GCP_PROJECT"},
        {"op": "replace", "path": "/spec/transformer/containers/0/env/0/value", "value": project},
        # the digest of the image the container runs, recorded by churnops as the lineage's image_digest
        {"op": "test", "path": "/spec/predictor/containers/0/env/1/name", "value": "CHURNOPS_IMAGE_DIGEST"},
        {"op": "replace", "path": "/spec/predictor/containers/0/env/1/value", "value": digest},
        {"op": "test", "path": "/spec/predictor/containers/0/env/2/name", "value": "CHURNOPS_GCP_PROJECT"},
        {"op": "replace", "path": "/spec/predictor/containers/0/env/2/value", "value": project},
        # who may call each component: the environment's declared identities (the platform declaration)
        {"op": "test", "path": "/spec/predictor/containers/0/env/5/name", "value": "CHURNOPS_PREDICTOR_CALLERS"},
        {
            "op": "replace",
            "path": "/spec/predictor/containers/0/env/5/value",
            "value": json.dumps(predictor_callers(release.env)),
        },
        {"op": "test", "path": "/spec/transformer/containers/0/env/2/name", "value": "CHURNOPS_TRANSFORMER_CALLERS"},
        {
            "op": "replace",
            "path": "/spec/transformer/containers/0/env/2/value",
            "value": json.dumps(transformer_callers()),
        },
    ]
    if release.canary_percent is not None:
        # the predictor and the transformer (same image) move together
        isvc_ops += [
            {"op": "add", "path": f"/spec/{component}/canaryTrafficPercent", "value": release.canary_percent}
            for component in ("predictor", "transformer")
        ]
    if release.model_version is not None:
        isvc_ops.append(
            {"op": "add", "path": "/metadata/annotations/churnops.io~1model-version", "value": release.model_version}
        )
        version_arg = f"--model_version={release.model_version}"
        isvc_ops.append({"op": "add", "path": "/spec/predictor/containers/0/args/-", "value": version_arg})
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"../overlays/{release.env}"],
        "images": [{"name": IMAGE_NAME, "newName": name, "digest": digest}],
        "patches": [_json_patch({"kind": "InferenceService", "name": settings.deploy_service}, isvc_ops)],
    }


def build(directory: Path) -> list[dict[str, Any]]:
    """Run kustomize on ``directory``; the rendered objects in order."""
    try:
        completed = subprocess.run(  # nosec B603
            [*kustomize_command(), str(directory)],
            capture_output=True,
            text=True,
            timeout=RENDER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DeploymentError(f"kustomize did not finish within {RENDER_TIMEOUT_S} s on {directory}") from exc
    if completed.returncode != 0:
        lines = [line for line in completed.stderr.splitlines() if line.strip()]
        raise DeploymentError(f"kustomize failed on {directory}: {lines[-1] if lines else 'no message'}")
    return [doc for doc in yaml.safe_load_all(completed.stdout) if doc]


def render(settings: Settings, release: Release, manifests_dir: Path | None = None) -> list[dict[str, Any]]:
    """Every object of ``release``'s overlay with the release's values, as kustomize renders them."""
    source = Path(manifests_dir or settings.manifests_dir)
    if not (source / "overlays" / release.env / "kustomization.yaml").is_file():
        raise ConfigurationError(f"no overlay {release.env!r} under {source.resolve()}")
    with tempfile.TemporaryDirectory(prefix="churnops-render-") as tmp:
        root = Path(tmp)
        shutil.copytree(source / "base", root / "base")
        shutil.copytree(source / "overlays", root / "overlays")
        (root / "release").mkdir()
        (root / "release" / "kustomization.yaml").write_text(
            yaml.safe_dump(render_kustomization(settings, release), sort_keys=False), encoding="utf-8"
        )
        return build(root / "release")


def is_platform_object(obj: dict[str, Any]) -> bool:
    """Namespace, network policies, metrics collection: applied once per environment by an admin. (Service
    accounts and RBAC are the Pulumi program's, from the platform declaration.)"""
    return (obj.get("metadata", {}).get("labels") or {}).get(PLATFORM_LABEL) == "platform"
