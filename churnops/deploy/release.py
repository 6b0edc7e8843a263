"""``churnops deploy``: render an environment's overlay, apply it, wait for Ready, smoke-test.

The deployer applies the InferenceService; platform objects (Namespace, NetworkPolicies, metrics
collection) are applied only with ``bootstrap``, by someone allowed to (see docs/deployment.md). The
service accounts and RBAC the InferenceService relies on are created by the Pulumi program from the
platform declaration (churnops/platform/declaration.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from mlflow.exceptions import MlflowException

from churnops.deploy import render as rendering
from churnops.deploy.kube import ISVC_KIND, Cluster
from churnops.deploy.smoke import SmokeResult, smoke_test
from churnops.errors import ConfigurationError, DeploymentError, RegistryError
from churnops.platform.auth import TokenSource
from churnops.platform.settings import Settings
from churnops.model import registry
from churnops.training.features import feature_spec

logger = logging.getLogger(__name__)

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>[0-9]+))$")
# Cluster-scoped and identity objects go first so that what follows can refer to them.
APPLY_ORDER = ("Namespace", "ServiceAccount", "Role", "RoleBinding", "NetworkPolicy")


@dataclass(frozen=True)
class DeployReport:
    """What a deployment did."""

    env: str
    namespace: str
    applied: list[str]
    generation: int
    revision: str | None
    smoke: SmokeResult

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        objects = "1 object" if len(self.applied) == 1 else f"{len(self.applied)} objects"
        return (
            f"deployed {self.env}: {objects} applied, revision {self.revision or '-'} ready, "
            f"smoke test passed at {self.smoke.url} (model version {self.smoke.model_version or '-'}, "
            f"{len(self.smoke.probabilities)} predictions in {self.smoke.latency_ms:.0f} ms)"
        )


def resolve_model(settings: Settings, model_uri: str, model_version: str | None) -> tuple[str, str | None]:
    """A registry URI (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``) becomes the version's storage URI
    (where KServe's storage initializer downloads it from) and its version; other URIs pass through."""
    if not model_uri.startswith("models:/"):
        return model_uri, model_version
    match = REGISTRY_URI.match(model_uri)
    if match is None:
        raise ConfigurationError(f"{model_uri!r} is not models:/NAME@ALIAS or models:/NAME/VERSION")
    name = match["name"]
    try:
        client = registry.client_for(settings)
        version = match["version"] or registry.alias_holder(client, name, match["alias"])
        if version is None:
            raise RegistryError(f"no version of {name!r} holds the alias {match['alias']!r}")
        storage_uri = str(client.get_model_version_download_uri(name, version))
    except MlflowException as exc:
        raise RegistryError(f"the registry could not resolve {model_uri}: {exc.message[:200]}") from exc
    if model_version is not None and str(model_version) != str(version):
        raise ConfigurationError(f"{model_uri} is version {version}, not the --model-version {model_version} given")
    return storage_uri, str(version)


def _order(obj: dict[str, Any]) -> int:
    kind = obj.get("kind", "")
    return APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER)


def predictor_url(isvc: dict[str, Any], tag: str | None = None) -> str:
    """The URL of the InferenceService, or of its revision tagged ``tag`` (``latest``, ``prev``)."""
    status = isvc.get("status") or {}
    if tag is not None:
        traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic") or []
        for target in traffic:
            if target.get("tag") == tag and target.get("url"):
                return str(target["url"])
    if not status.get("url"):
        raise DeploymentError(f"InferenceService {isvc['metadata']['name']} reports no URL")
    return str(status["url"])


def apply_release(
    settings: Settings, cluster: Cluster, release: rendering.Release, bootstrap: bool = False
) -> tuple[list[str], int]:
    """Render and apply ``release``; the applied objects (kind/name) and the InferenceService's generation."""
    objects = rendering.render(settings, release)
    chosen = [obj for obj in objects if bootstrap or not rendering.is_platform_object(obj)]
    applied, generation = [], 0
    for obj in sorted(chosen, key=_order):
        stored = cluster.apply(obj)
        applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
        if obj["kind"] == ISVC_KIND:
            generation = int(stored.get("metadata", {}).get("generation") or 0)
    if not generation:
        raise DeploymentError(f"the {release.env} overlay rendered no InferenceService")
    return applied, generation


def deploy(
    settings: Settings,
    cluster: Cluster,
    release: rendering.Release,
    bootstrap: bool = False,
    smoke_url: str | None = None,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] | None = None,
) -> DeployReport:
    """Apply ``release``, wait until its InferenceService is Ready, smoke-test the new revision."""
    applied, generation = apply_release(settings, cluster, release, bootstrap)
    waits: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    isvc = cluster.wait_ready(
        settings.deploy_service,
        release.namespace,
        generation,
        settings.deploy_ready_timeout_s,
        settings.deploy_poll_interval_s,
        **waits,
    )
    predictor = ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}
    # The smoke test talks to the newest revision, also while it is a canary.
    url = smoke_url or predictor_url(isvc, tag="latest")
    result = smoke_test(
        url,
        settings.deploy_model_name,
        feature_spec(settings.feature_windows_hours),
        expected_version=release.model_version,
        timeout_s=settings.smoke_timeout_s,
        session=session,
        auth=TokenSource(settings, settings.predictor_audience, settings.client_account).header(),
    )
    return DeployReport(
        env=release.env,
        namespace=release.namespace,
        applied=applied,
        generation=generation,
        revision=predictor.get("latestReadyRevision"),
        smoke=result,
    )
