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
from churnops.deploy.smoke import SmokeResult, smoke_test, transformer_smoke_test
from churnops.errors import ConfigurationError, DeploymentError, RegistryError
from churnops.model import registry
from churnops.platform import cluster_proxy
from churnops.platform.auth import PROXIED_AUTHORIZATION, TokenSource
from churnops.platform.settings import Settings
from churnops.training.features import feature_spec

logger = logging.getLogger(__name__)

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>[0-9]+))$")
# Knative's private Service of a revision (<revision>-private) sends its "http" port straight to the
# revision's pods (the queue-proxy); the API server's service proxy reaches it from outside the cluster.
PRIVATE_SERVICE_PORT = "http"
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


def revision_address(namespace: str, revision: str) -> str:
    """The ``k8s://`` address of a revision's pods: its Knative private Service, through the API server."""
    return f"k8s://{namespace}/{revision}-private:{PRIVATE_SERVICE_PORT}"


def proxied(settings: Settings, address: str) -> tuple[str, requests.Session]:
    """The API-server URL of ``address`` and a session with the kubeconfig's credentials for it."""
    service = cluster_proxy.resolve(address, settings.kubeconfig, settings.kube_context)
    session = requests.Session()
    if service.token:
        session.headers["Authorization"] = f"Bearer {service.token}"
    session.verify = (service.ca_cert or True) if service.verify_ssl else False
    return service.url, session


def newest_revisions(isvc: dict[str, Any]) -> dict[str, str]:
    """Component (``predictor``, ``transformer``) -> its newest ready revision."""
    components = (isvc.get("status") or {}).get("components") or {}
    found = {}
    for component in ("predictor", "transformer"):
        if component not in (isvc.get("spec") or {}):
            continue
        revision = (components.get(component) or {}).get("latestReadyRevision")
        if not revision:
            raise DeploymentError(f"InferenceService {isvc['metadata']['name']} reports no ready {component} revision")
        found[component] = str(revision)
    return found


def smoke_test_revisions(
    settings: Settings, namespace: str, isvc: dict[str, Any], model_version: str | None
) -> SmokeResult:
    """Smoke-test the newest predictor and transformer revisions (also while they are a canary) through the
    API server's service proxy, the path a build in a private pool has; the predictor's result."""
    revisions = newest_revisions(isvc)
    url, session = proxied(settings, revision_address(namespace, revisions["predictor"]))
    # the API server consumes Authorization (its own credential): the services' token goes in its own header
    auth = TokenSource(settings, settings.predictor_audience, settings.client_account).header(PROXIED_AUTHORIZATION)
    result = smoke_test(
        url,
        settings.deploy_model_name,
        feature_spec(settings.feature_windows_hours),
        expected_version=model_version,
        timeout_s=settings.smoke_timeout_s,
        session=session,
        auth=auth,
    )
    if "transformer" in revisions:
        url, session = proxied(settings, revision_address(namespace, revisions["transformer"]))
        auth = TokenSource(settings, settings.transformer_audience, settings.client_account).header(
            PROXIED_AUTHORIZATION
        )
        transformer_smoke_test(url, settings.deploy_model_name, settings.smoke_timeout_s, session, auth)
    return result


def deploy(
    settings: Settings,
    cluster: Cluster,
    release: rendering.Release,
    bootstrap: bool = False,
    smoke_url: str | None = None,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] | None = None,
) -> DeployReport:
    """Apply ``release``, wait until its InferenceService is Ready, smoke-test the new revisions."""
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
    if smoke_url:
        auth = TokenSource(settings, settings.predictor_audience, settings.client_account).header()
        result = smoke_test(
            smoke_url,
            settings.deploy_model_name,
            feature_spec(settings.feature_windows_hours),
            expected_version=release.model_version,
            timeout_s=settings.smoke_timeout_s,
            session=session,
            auth=auth,
        )
    else:
        result = smoke_test_revisions(settings, release.namespace, isvc, release.model_version)
    return DeployReport(
        env=release.env,
        namespace=release.namespace,
        applied=applied,
        generation=generation,
        revision=predictor.get("latestReadyRevision"),
        smoke=result,
    )
