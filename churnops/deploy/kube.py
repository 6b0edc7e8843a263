"""The Kubernetes API as the deployer uses it: server-side apply, merge patches, readiness.

Everything goes through the official ``kubernetes`` client's dynamic client (discovery, then the
resource's REST path), so any kind the cluster serves can be applied. Writes carry a field manager;
applies are server-side (``application/apply-patch+yaml``). API errors become one-line
:class:`~churnops.errors.DeploymentError` messages with the server's own reason.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError
from urllib3.exceptions import HTTPError

from churnops.errors import DeploymentError, ServiceUnavailable
from churnops.platform.settings import Settings

logger = logging.getLogger(__name__)

ISVC_API_VERSION = "serving.kserve.io/v1beta1"
ISVC_KIND = "InferenceService"
MERGE_PATCH = "application/merge-patch+json"


class ReadinessTimeout(DeploymentError):
    """The InferenceService did not become Ready in time."""


def api_client(settings: Settings) -> k8s.ApiClient:
    """A client for the cluster: a kubeconfig (file and context from settings) when one is set, else the
    pod's in-cluster identity, else the default kubeconfig."""
    try:
        if settings.kubeconfig is None and settings.kube_context is None:
            try:
                k8s_config.load_incluster_config()
                return k8s.ApiClient()
            except k8s_config.ConfigException:
                pass
        config_file = str(settings.kubeconfig) if settings.kubeconfig else None
        return k8s_config.new_client_from_config(config_file=config_file, context=settings.kube_context)
    except k8s_config.ConfigException as exc:
        raise DeploymentError(f"no Kubernetes credentials: {exc}") from exc


def _status_message(exc: DynamicApiError) -> str:
    """``HTTP <code> <reason>: <the Status object's message>`` on one line."""
    message = ""
    try:
        body = json.loads(exc.body) if exc.body else {}
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
    except (TypeError, ValueError):
        message = ""
    text = f"HTTP {exc.status} {exc.reason}: {message or 'no message'}"
    return " ".join(text.split())[:400]


def _plain(instance: Any) -> dict[str, Any]:
    """The object a dynamic client call returned (an untyped ``ResourceInstance``) as a plain dict."""
    body: dict[str, Any] = instance.to_dict()
    return body


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The status condition of type ``kind`` (e.g. ``Ready``), or None."""
    conditions: list[dict[str, Any]] = (obj.get("status") or {}).get("conditions") or []
    for item in conditions:
        if item.get("type") == kind:
            return item
    return None


class Cluster:
    """The objects the deployer writes and reads, through one API client."""

    def __init__(self, client: k8s.ApiClient, field_manager: str, discovery_cache: str | None = None) -> None:
        self.field_manager = field_manager
        try:
            self._dynamic = DynamicClient(client, cache_file=discovery_cache)
        except (HTTPError, DynamicApiError) as exc:
            host = client.configuration.host
            raise ServiceUnavailable(f"the Kubernetes API at {host} is unreachable: {exc}") from exc

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self._dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as exc:
            raise DeploymentError(f"the cluster serves no {kind} in {api_version} (is its CRD installed?)") from exc

    def apply(self, obj: dict[str, Any], force: bool = True) -> dict[str, Any]:
        """Server-side apply ``obj`` as this field manager; the object as the server stored it."""
        kind, meta = obj["kind"], obj.get("metadata", {})
        resource = self._resource(obj["apiVersion"], kind)
        try:
            stored = self._dynamic.server_side_apply(
                resource,
                body=obj,
                name=meta.get("name"),
                namespace=meta.get("namespace") if resource.namespaced else None,
                field_manager=self.field_manager,
                force_conflicts=force,
            )
        except DynamicApiError as exc:
            raise DeploymentError(f"apply {kind}/{meta.get('name')} refused: {_status_message(exc)}") from exc
        logger.info("applied %s/%s", kind, meta.get("name"), extra={"namespace": meta.get("namespace")})
        return _plain(stored)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        resource = self._resource(api_version, kind)
        try:
            return _plain(self._dynamic.get(resource, name=name, namespace=namespace))
        except DynamicApiError as exc:
            if exc.status == 404:
                return None
            raise DeploymentError(f"get {kind}/{name} failed: {_status_message(exc)}") from exc

    def inference_service(self, name: str, namespace: str) -> dict[str, Any]:
        """The InferenceService ``name``; a DeploymentError when it does not exist."""
        found = self.get(ISVC_API_VERSION, ISVC_KIND, name, namespace)
        if found is None:
            raise DeploymentError(f"no InferenceService {name} in namespace {namespace}: deploy it first")
        return found

    def merge_patch(
        self, api_version: str, kind: str, name: str, namespace: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """Apply a JSON merge patch (RFC 7386) as this field manager."""
        resource = self._resource(api_version, kind)
        try:
            patched = self._dynamic.patch(
                resource,
                body=patch,
                name=name,
                namespace=namespace,
                content_type=MERGE_PATCH,
                field_manager=self.field_manager,
            )
        except DynamicApiError as exc:
            raise DeploymentError(f"patch {kind}/{name} refused: {_status_message(exc)}") from exc
        return _plain(patched)

    def wait_ready(
        self,
        name: str,
        namespace: str,
        generation: int,
        timeout_s: float,
        poll_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any]:
        """Poll until the InferenceService has observed ``generation`` and is Ready; the ready object.

        Raises :class:`ReadinessTimeout` (with the last Ready condition's reason) after ``timeout_s``.
        """
        deadline = clock() + timeout_s
        while True:
            obj = self.inference_service(name, namespace)
            status = obj.get("status") or {}
            ready = condition(obj, "Ready")
            observed = int(status.get("observedGeneration") or 0)
            if ready and ready.get("status") == "True" and observed >= generation:
                return obj
            if clock() >= deadline:
                detail = "no Ready condition yet"
                if ready:
                    detail = f"Ready={ready.get('status')} {ready.get('reason') or ''}: {ready.get('message') or ''}"
                raise ReadinessTimeout(
                    f"InferenceService {namespace}/{name} not Ready after {timeout_s:g} s "
                    f"(generation {generation}, observed {observed}; {detail.strip()})"
                )
            sleep(poll_s)
