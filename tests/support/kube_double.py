"""A local double of the Kubernetes API server for the kinds churnops deploys.

It answers the real ``kubernetes`` client the way an API server does, for what the deployer uses:

* discovery (``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>/<version>``);
* ``GET`` of an object (``404 NotFound`` Status when absent);
* ``PATCH`` with ``application/apply-patch+yaml`` (server-side apply): creates or merges; needs a
  ``fieldManager`` (else ``422``); tracks which manager owns which field; a field owned by another
  manager with a different value is a ``409 Conflict`` unless ``force=true``; fields the manager
  applied before and no longer applies are removed; lists are atomic (as in a CRD without list-map
  markers);
* ``PATCH`` with ``application/merge-patch+json`` (RFC 7386; ``null`` deletes); the manager takes
  the fields it changes, without conflicts (an update, not an apply);
* ``POST`` (create; ``409 AlreadyExists`` when present).

Every stored object is validated first against the upstream schema (``tests/support/k8s_schemas.py``)
and refused with ``422 Invalid`` otherwise. ``metadata.generation`` moves when ``spec`` changes,
``resourceVersion`` on every change. InferenceServices get a status the way KServe in serverless
mode reports it, changing over time: after a spec change ``Ready`` is ``Unknown`` until the object has
been read ``ready_after_polls`` more times, then a new revision of each component (predictor,
transformer) whose template changed is Ready and each component's traffic is split as its
``canaryTrafficPercent`` says (``prev``/``latest`` tags). ``fail_readiness`` keeps it not Ready;
``fail_patches`` refuses the next merge patches with a 500.

The API server's service proxy (``/api/v1/namespaces/<ns>/services/<revision>-private:http/proxy/...``)
reaches a revision's pods as Knative's private Service does: a predictor revision's requests go to
``predictor_url``, a transformer revision's to ``transformer_url``, with the kubeconfig's bearer token
(401 without it) and 503 for a revision that does not exist. Every request is recorded (method, path,
query, content type, parsed body).
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import yaml
from werkzeug.wrappers import Request, Response

from tests.support.apiserver_proxy import PROXY_PATH, ApiServerProxy
from tests.support.k8s_schemas import schema_errors
from tests.support.wsgi_double import WsgiDouble

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


@dataclass(frozen=True)
class Kind:
    """One served resource type."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """``group/version``, or ``v1`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version


KINDS: tuple[Kind, ...] = (
    Kind("", "v1", "Namespace", "namespaces", namespaced=False),
    Kind("", "v1", "ServiceAccount", "serviceaccounts"),
    Kind("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    Kind("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    Kind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies"),
    Kind("serving.kserve.io", "v1beta1", "InferenceService", "inferenceservices"),
    Kind("monitoring.googleapis.com", "v1", "PodMonitoring", "podmonitorings"),  # GKE's Managed Prometheus
    Kind("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets"),
)
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


@dataclass
class Recorded:
    """One request the double received: verb, path, query parameters, content type, parsed body."""

    verb: str
    path: str
    params: dict[str, str]
    content_type: str
    body: Any


class ApiStatus(Exception):
    """An error answered as a Kubernetes ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def response(self) -> Response:
        """The error as the API server sends it."""
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        return Response(json.dumps(body), status=self.code, content_type="application/json")


def leaf_paths(obj: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Field paths of an object down to scalars, lists (atomic) and empty maps."""
    if isinstance(obj, dict) and obj:
        out: dict[tuple[str, ...], Any] = {}
        for key, value in obj.items():
            out.update(leaf_paths(value, (*prefix, key)))
        return out
    return {prefix: obj}


def _get_path(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def _delete_path(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    parents = [obj]
    for key in path[:-1]:
        nxt = parents[-1].get(key)
        if not isinstance(nxt, dict):
            return
        parents.append(nxt)
    parents[-1].pop(path[-1], None)
    for depth in range(len(path) - 2, -1, -1):  # drop maps the removal left empty
        if parents[depth + 1] == {}:
            parents[depth].pop(path[depth], None)


def deep_merge(base: dict[str, Any], applied: dict[str, Any]) -> dict[str, Any]:
    """Maps merge key by key; scalars and lists replace."""
    out = copy.deepcopy(base)
    for key, value in applied.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


_MISSING = object()
_SERVER_FIELDS = {"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"}


def _fields_v1(paths: set[tuple[str, ...]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return tree


@dataclass
class _Stored:
    obj: dict[str, Any]
    owners: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)
    operations: dict[str, str] = field(default_factory=dict)


@dataclass
class _Component:
    """Knative's view of one component: revisions and rollout history."""

    template: Any = None
    revisions: int = 0
    latest: str | None = None
    rolled_out: str | None = None
    previous: str | None = None


@dataclass
class _Serving:
    """KServe's view of one InferenceService: its components and the pending rollout."""

    components: dict[str, _Component] = field(default_factory=dict)
    polls_left: int = 0
    pending_generation: int = 0


class KubeApiDouble(WsgiDouble):
    """The double; start it, point a kubernetes client at :attr:`url`, inspect :attr:`requests`."""

    name = "kube-api-double"

    def __init__(
        self,
        ready_after_polls: int = 2,
        predictor_url: str = "http://predictor.invalid",
        transformer_url: str = "http://transformer.invalid",
        token: str = "test-token",
    ) -> None:
        super().__init__()
        self.ready_after_polls = ready_after_polls
        self.predictor_url = predictor_url
        self.transformer_url = transformer_url
        self.token = token
        self.fail_readiness: tuple[str, str] | None = None
        self.fail_patches = 0
        self.proxied: list[tuple[str, str, str]] = []  # (revision, method, path) reached through the proxy
        self.requests: list[Recorded] = []
        self.objects: dict[tuple[str, str, str | None, str], _Stored] = {}
        self._serving: dict[tuple[str | None, str], _Serving] = {}
        self._version = 0
        self._lock = threading.Lock()

    # -- inspection ----------------------------------------------------------------------------------
    def stored(self, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        """The stored object (a copy), or None."""
        for (_, k, ns, n), item in self.objects.items():
            if k == kind and n == name and ns == namespace:
                return copy.deepcopy(item.obj)
        return None

    def writes(self) -> list[Recorded]:
        """Every request that was not a read."""
        return [r for r in self.requests if r.verb != "GET"]

    # -- HTTP ------------------------------------------------------------------------------------------
    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        request = Request(environ)
        raw = request.get_data()
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            body = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError:
            body = raw.decode("utf-8", "replace")
        proxy = PROXY_PATH.fullmatch(request.path)
        if proxy is not None:  # recorded in proxied, not as a request to the API
            return self._proxy(request, proxy)(environ, start_response)
        self.requests.append(Recorded(request.method, request.path, dict(request.args), content_type, body))
        try:
            with self._lock:
                response = self._route(request, content_type, body)
        except ApiStatus as status:
            response = status.response()
        return response(environ, start_response)

    def _proxy(self, request: Request, match: Any) -> Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return ApiStatus(401, "Unauthorized", "Unauthorized").response()
        service, _, port = match["service"].partition(":")
        revision = service.removesuffix("-private")
        with self._lock:
            components = {
                name: c
                for s in self._serving.values()
                for name, c in s.components.items()
                if service.endswith("-private")
                and port == "http"
                and revision in {f"{c.latest}", f"{c.rolled_out}", f"{c.previous}"}
            }
        if not components:
            return ApiStatus(503, "ServiceUnavailable", f'no endpoints available for service "{service}"').response()
        base = self.transformer_url if "transformer" in components else self.predictor_url
        self.proxied.append((revision, request.method, match["rest"] or "/"))
        return ApiServerProxy.forward(base, match["rest"] or "/", request)

    def _discovery(self, parts: list[str]) -> dict[str, Any] | None:
        if parts == ["version"]:
            return {"major": "1", "minor": "33", "gitVersion": "v1.33.4"}
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if parts == ["apis"]:
            return self._group_list()
        if parts == ["api", "v1"] or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
            return self._resource_list(group, version)
        return None

    def _route(self, request: Request, content_type: str, body: Any) -> Response:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET":
            document = self._discovery(parts)
            if document is not None:
                return _json(document)
        kind, namespace, name = self._locate(parts)
        if request.method == "GET" and name is not None:
            return _json(self._read(kind, namespace, name))
        if request.method == "PATCH" and name is not None:
            if content_type == APPLY:
                return _json(self._apply(kind, namespace, name, body, request.args))
            if content_type == MERGE:
                return _json(self._merge(kind, namespace, name, body, request.args))
            raise ApiStatus(
                415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}"
            )
        if request.method == "POST" and name is None:
            return _json(self._create(kind, namespace, body, request.args), status=201)
        raise ApiStatus(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _group_list(self) -> dict[str, Any]:
        groups = []
        for group in sorted({k.group for k in KINDS if k.group}):
            versions = sorted({k.version for k in KINDS if k.group == group})
            gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        kinds = [k for k in KINDS if k.group == group and k.version == version]
        if not kinds:
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
        resources = [
            {
                "name": k.plural,
                "singularName": k.kind.lower(),
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": VERBS,
            }
            for k in kinds
        ]
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": kinds[0].api_version,
            "resources": resources,
        }

    def _locate(self, parts: list[str]) -> tuple[Kind, str | None, str | None]:
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        plural, name = rest[0], (rest[1] if len(rest) > 1 else None)
        if group == "" and plural == "namespaces" and namespace is None:
            pass
        for kind in KINDS:
            if kind.group == group and kind.version == version and kind.plural == plural:
                if kind.namespaced != (namespace is not None):
                    raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
                return kind, namespace, name
        raise ApiStatus(404, "NotFound", f"the server could not find the requested resource ({plural})")

    # -- storage -------------------------------------------------------------------------------------
    def _key(self, kind: Kind, namespace: str | None, name: str) -> tuple[str, str, str | None, str]:
        return (kind.api_version, kind.kind, namespace, name)

    def _not_found(self, kind: Kind, name: str) -> ApiStatus:
        return ApiStatus(404, "NotFound", f'{kind.plural}.{kind.group or "core"} "{name}" not found')

    def _read(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        stored = self.objects.get(self._key(kind, namespace, name))
        if stored is None:
            raise self._not_found(kind, name)
        if kind.kind == "InferenceService":
            self._progress(stored, namespace, name)
        return stored.obj

    def _check_identity(self, kind: Kind, namespace: str | None, name: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiStatus(400, "BadRequest", "the request body is not an object")
        if body.get("apiVersion") != kind.api_version or body.get("kind") != kind.kind:
            raise ApiStatus(
                400,
                "BadRequest",
                f"the body is {body.get('apiVersion')}/{body.get('kind')}, the URL is {kind.api_version}/{kind.kind}",
            )
        meta = body.get("metadata") or {}
        if name is not None and meta.get("name") != name:
            raise ApiStatus(400, "BadRequest", "the name of the object does not match the name on the URL")
        if kind.namespaced and meta.get("namespace") not in (None, namespace):
            raise ApiStatus(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        return body

    def _validate(self, kind: Kind, obj: dict[str, Any]) -> None:
        clean = copy.deepcopy(obj)
        clean.pop("status", None)
        for key in _SERVER_FIELDS:
            clean.get("metadata", {}).pop(key, None)
        errors = schema_errors(clean)
        if errors:
            name = obj.get("metadata", {}).get("name")
            raise ApiStatus(422, "Invalid", f'{kind.kind} "{name}" is invalid: {"; ".join(errors[:5])}')

    def _new_object(self, kind: Kind, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            meta["namespace"] = namespace
        self._version += 1
        meta.update(
            {
                "uid": str(uuid.uuid4()),
                "resourceVersion": str(self._version),
                "generation": 1,
                "creationTimestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        return obj

    def _commit(self, kind: Kind, stored: _Stored, new: dict[str, Any], namespace: str | None) -> None:
        old = stored.obj
        meta = new.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "generation", "resourceVersion"):
            if key in old.get("metadata", {}):
                meta[key] = old["metadata"][key]
        if "status" in old:
            new["status"] = old["status"]
        changed = _comparable(new) != _comparable(old)
        if new.get("spec") != old.get("spec"):
            meta["generation"] = int(meta.get("generation", 1)) + 1
        if changed:
            self._version += 1
            meta["resourceVersion"] = str(self._version)
        stored.obj = new
        self._managed_fields(stored)
        if kind.kind == "InferenceService" and (new.get("spec") != old.get("spec") or "status" not in old):
            self._spec_changed(stored, namespace, meta["name"])

    def _managed_fields(self, stored: _Stored) -> None:
        stored.obj["metadata"]["managedFields"] = [
            {
                "manager": manager,
                "operation": stored.operations[manager],
                "apiVersion": stored.obj["apiVersion"],
                "fieldsType": "FieldsV1",
                "fieldsV1": _fields_v1(paths),
            }
            for manager, paths in sorted(stored.owners.items())
            if paths
        ]

    def _create(self, kind: Kind, namespace: str | None, body: Any, args: Any) -> dict[str, Any]:
        body = self._check_identity(kind, namespace, None, body)
        name = body.get("metadata", {}).get("name")
        key = self._key(kind, namespace, name)
        if key in self.objects:
            raise ApiStatus(409, "AlreadyExists", f'{kind.plural}.{kind.group or "core"} "{name}" already exists')
        self._validate(kind, body)
        manager = args.get("fieldManager") or "unknown"
        stored = _Stored(obj={}, owners={manager: set(_owned_paths(body))}, operations={manager: "Update"})
        stored.obj = self._new_object(kind, namespace, body)
        self.objects[key] = stored
        self._managed_fields(stored)
        if kind.kind == "InferenceService":
            self._spec_changed(stored, namespace, name)
        return stored.obj

    def _apply(self, kind: Kind, namespace: str | None, name: str, body: Any, args: Any) -> dict[str, Any]:
        manager = args.get("fieldManager")
        if not manager:
            raise ApiStatus(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
            )
        body = self._check_identity(kind, namespace, name, body)
        force = args.get("force") in ("true", "True", "1")
        applied = _owned_paths(body)
        key = self._key(kind, namespace, name)
        stored = self.objects.get(key)
        if stored is None:
            self._validate(kind, body)
            stored = _Stored(
                obj=self._new_object(kind, namespace, body),
                owners={manager: set(applied)},
                operations={manager: "Apply"},
            )
            self.objects[key] = stored
            self._managed_fields(stored)
            if kind.kind == "InferenceService":
                self._spec_changed(stored, namespace, name)
            return stored.obj
        conflicts = []
        for path, value in applied.items():
            for other, paths in stored.owners.items():
                if other != manager and path in paths and _get_path(stored.obj, path) != value:
                    conflicts.append((other, path))
        if conflicts and not force:
            listed = "; ".join(f'conflict with "{m}": .{".".join(p)}' for m, p in conflicts)
            raise ApiStatus(409, "Conflict", f"Apply failed with {len(conflicts)} conflict(s): {listed}")
        new = copy.deepcopy(stored.obj)
        released = stored.owners.get(manager, set()) - set(applied)
        others = set().union(*(p for m, p in stored.owners.items() if m != manager)) if stored.owners else set()
        for path in released - others:
            _delete_path(new, path)
        new = deep_merge(new, body)
        self._validate(kind, new)
        for other in stored.owners:
            if other != manager:
                stored.owners[other] -= set(applied)
        stored.owners[manager] = set(applied)
        stored.operations[manager] = "Apply"
        self._commit(kind, stored, new, namespace)
        return stored.obj

    def _merge(self, kind: Kind, namespace: str | None, name: str, body: Any, args: Any) -> dict[str, Any]:
        if self.fail_patches > 0:
            self.fail_patches -= 1
            raise ApiStatus(500, "InternalError", "etcdserver: request timed out")
        stored = self.objects.get(self._key(kind, namespace, name))
        if stored is None:
            raise self._not_found(kind, name)
        if not isinstance(body, dict):
            raise ApiStatus(400, "BadRequest", "a merge patch must be a JSON object")
        new = merge_patch(stored.obj, body)
        self._validate(kind, new)
        manager = args.get("fieldManager") or "unknown"
        touched = set(leaf_paths(dict(body)))
        changed = {p for p in touched if _get_path(new, p) is not _MISSING}
        for other in stored.owners:
            stored.owners[other] = {
                p for p in stored.owners[other] if _get_path(new, p) is not _MISSING and p not in touched
            }
        stored.owners.setdefault(manager, set()).update(changed)
        stored.operations.setdefault(manager, "Update")
        self._commit(kind, stored, new, namespace)
        return stored.obj

    # -- KServe's controller, simulated ----------------------------------------------------------------
    def _spec_changed(self, stored: _Stored, namespace: str | None, name: str) -> None:
        serving = self._serving.setdefault((namespace, name), _Serving())
        serving.polls_left = self.ready_after_polls
        serving.pending_generation = int(stored.obj["metadata"]["generation"])
        status = stored.obj.setdefault("status", {})
        pending = {
            "type": "Ready",
            "status": "Unknown",
            "reason": "RevisionMissing",
            "message": "Configuration is waiting for a Revision to become ready.",
        }
        status["conditions"] = [dict(pending, type="PredictorReady"), pending]
        if serving.polls_left == 0:
            self._progress(stored, namespace, name)

    def _progress(self, stored: _Stored, namespace: str | None, name: str) -> None:
        serving = self._serving.setdefault((namespace, name), _Serving())
        if serving.pending_generation == 0:
            return
        if serving.polls_left > 0:
            serving.polls_left -= 1
            return
        status = stored.obj.setdefault("status", {})
        status["observedGeneration"] = serving.pending_generation
        if self.fail_readiness is not None:
            reason, message = self.fail_readiness
            failed = {"type": "Ready", "status": "False", "reason": reason, "message": message}
            status["conditions"] = [dict(failed, type="PredictorReady"), failed]
            return
        serving.pending_generation = 0
        ready = {"type": "Ready", "status": "True", "lastTransitionTime": datetime.now(timezone.utc).isoformat()}
        status["conditions"] = [dict(ready, type="PredictorReady"), ready]
        status["url"] = self.predictor_url
        status["address"] = {"url": f"http://{name}.{namespace}.svc.cluster.local"}
        status["components"] = {
            component: self._roll(
                serving.components.setdefault(component, _Component()),
                name,
                component,
                copy.deepcopy(stored.obj["spec"][component]),
            )
            for component in ("predictor", "transformer")
            if component in stored.obj["spec"]
        }

    def _roll(self, serving: _Component, name: str, component: str, spec: dict[str, Any]) -> dict[str, Any]:
        percent = spec.pop("canaryTrafficPercent", None)
        if spec != serving.template:
            serving.template = spec
            serving.revisions += 1
            serving.latest = f"{name}-{component}-{serving.revisions:05d}"
        base = self.predictor_url if component == "predictor" else self.transformer_url
        if percent is None or percent == 100 or serving.rolled_out in (None, serving.latest):
            if serving.rolled_out != serving.latest:
                serving.previous, serving.rolled_out = serving.rolled_out, serving.latest
            traffic = [
                {"tag": "latest", "revisionName": serving.latest, "percent": 100, "latestRevision": True, "url": base}
            ]
        else:
            traffic = [
                {
                    "tag": "prev",
                    "revisionName": serving.rolled_out,
                    "percent": 100 - percent,
                    "latestRevision": False,
                    "url": base,
                },
                {
                    "tag": "latest",
                    "revisionName": serving.latest,
                    "percent": percent,
                    "latestRevision": True,
                    "url": base,
                },
            ]
        found: dict[str, Any] = {
            "latestCreatedRevision": serving.latest,
            "latestReadyRevision": serving.latest,
            "latestRolledoutRevision": serving.rolled_out,
            "traffic": traffic,
            "url": base,
        }
        if serving.previous:
            found["previousRolledoutRevision"] = serving.previous
        return found


def _owned_paths(body: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    content = copy.deepcopy(body)
    content.pop("apiVersion", None)
    content.pop("kind", None)
    content.pop("status", None)
    meta = content.get("metadata") or {}
    for key in ("name", "namespace", *_SERVER_FIELDS):
        meta.pop(key, None)
    if not meta:
        content.pop("metadata", None)
    return leaf_paths(content) if content else {}


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    clean = copy.deepcopy(obj)
    for key in ("resourceVersion", "managedFields", "generation"):
        clean.get("metadata", {}).pop(key, None)
    clean.pop("status", None)
    return clean


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
