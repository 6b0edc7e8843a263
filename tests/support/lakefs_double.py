"""A stateful, in-memory stand-in for the lakeFS REST API, served over real HTTP on 127.0.0.1.

It implements the subset :class:`churnops.data.versioning.lakefs.LakeFSRepository` uses, with
lakeFS's semantics: branches over immutable commits, a per-branch staging area that branch reads
see, "no changes" (400) for empty commits and merges, object-level three-way merges with 409 on
conflicts, and 400 for merges into a branch with uncommitted changes.

As in lakeFS, commits hold each object's physical address and the contents live in the storage
namespace: under ``<namespace>/data/`` in a real bucket when the namespace is ``gs://`` and the
double was given a storage client (fake-gcs-server), in memory otherwise. An object whose content
was deleted from the storage namespace (what lakeFS's garbage collection or an erasure purge
does) answers 410 "object expired", as lakeFS does.

Every request and every response is validated against the upstream OpenAPI document, vendored as
``tests/specs/lakefs-api.yaml`` (see its README), with openapi-core. A request that does not fit
is answered 500 and a response that does not fit is replaced by a 500; both are recorded in
:attr:`LakeFSDouble.validation_errors`, which tests assert stays empty.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gcs_errors
from google.cloud import storage
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.validation.response.exceptions import MissingData
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tests.support.wsgi_double import WsgiDouble

API = "/api/v1"
SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "lakefs-api.yaml"


def spec_path() -> Path:
    """The vendored lakeFS OpenAPI document (``tests/specs/lakefs-api.yaml``, see its README)."""
    return SPEC_PATH


class ApiError(Exception):
    """An error answer: HTTP status and lakeFS ``Error`` message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Commit:
    id: str
    parents: list[str]
    message: str
    metadata: dict[str, str]
    creation_date: int
    tree: dict[str, str]  # path -> physical address
    generation: int

    def as_json(self) -> dict[str, Any]:
        """The lakeFS ``Commit`` object."""
        return {
            "id": self.id,
            "parents": self.parents,
            "committer": "churnops-test",
            "message": self.message,
            "creation_date": self.creation_date,
            "meta_range_id": hashlib.sha256(repr(sorted(self.tree.items())).encode()).hexdigest(),
            "metadata": self.metadata,
            "generation": self.generation,
            "version": 1,
        }


@dataclass
class _Repository:
    name: str
    storage_namespace: str
    default_branch: str
    creation_date: int
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    gc_rules: dict[str, Any] | None = None  # the GarbageCollectionRules last set, if any
    # branch -> path -> physical address, or None for a staged deletion (tombstone)
    staging: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The lakeFS ``Repository`` object."""
        return {
            "id": self.name,
            "creation_date": self.creation_date,
            "default_branch": self.default_branch,
            "storage_namespace": self.storage_namespace,
            "read_only": False,
        }


def _pagination(has_more: bool, next_offset: str, results: int, amount: int) -> dict[str, Any]:
    return {"has_more": has_more, "next_offset": next_offset, "results": results, "max_per_page": amount}


def _page(keys: list[str], after: str, amount: int) -> tuple[list[str], dict[str, Any]]:
    """One page of sorted ``keys`` after ``after`` (lakeFS's cursor pagination)."""
    remaining = [key for key in keys if key > after] if after else keys
    page = remaining[:amount]
    has_more = len(remaining) > amount
    return page, _pagination(has_more, page[-1] if has_more else "", len(page), amount)


class _Blocks:
    """The storage namespaces' contents by physical address (content-addressed, as the double needs no more):
    a GCS bucket (through ``client``) for ``gs://`` addresses, memory otherwise."""

    def __init__(self, client: storage.Client | None) -> None:
        self._client = client
        self._memory: dict[str, bytes] = {}
        self._stats: dict[str, tuple[int, str]] = {}  # address -> (size, md5), what listings report

    def put(self, namespace: str, content: bytes) -> str:
        """Store ``content`` in ``namespace``; its physical address."""
        address = f"{namespace.rstrip('/')}/data/{hashlib.sha256(content).hexdigest()}"
        if self._client is not None and address.startswith("gs://"):
            bucket, name = address.removeprefix("gs://").split("/", 1)
            self._client.bucket(bucket).blob(name).upload_from_string(content)
        else:
            self._memory[address] = content
        self._stats[address] = (len(content), hashlib.md5(content, usedforsecurity=False).hexdigest())
        return address

    def get(self, address: str) -> bytes | None:
        """The content at ``address``; None when it was deleted from the storage namespace."""
        if self._client is not None and address.startswith("gs://"):
            bucket, name = address.removeprefix("gs://").split("/", 1)
            try:
                return bytes(self._client.bucket(bucket).blob(name).download_as_bytes())
            except gcs_errors.NotFound:
                return None
        return self._memory.get(address)

    def stats(self, path: str, address: str) -> dict[str, Any]:
        """The lakeFS ``ObjectStats`` of ``path`` stored at ``address``."""
        size, checksum = self._stats[address]
        return {
            "path": path,
            "path_type": "object",
            "physical_address": address,
            "checksum": checksum,
            "size_bytes": size,
            "mtime": int(time.time()),
            "content_type": "application/octet-stream",
        }


class LakeFSDouble(WsgiDouble):
    """The lakeFS API double; use as a context manager or call :meth:`start` / :meth:`stop`."""

    name = "lakefs-double"

    def __init__(
        self,
        access_key_id: str = "AKIATESTDOUBLE",
        secret_access_key: str = "double-secret",
        storage_client: storage.Client | None = None,
    ) -> None:
        super().__init__()
        self._blocks = _Blocks(storage_client)
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.validation_errors: list[str] = []
        self.calls: list[tuple[str, str, int]] = []  # (method, path, status) of every answered request
        self._openapi = OpenAPI.from_file_path(str(spec_path()))
        self._repositories: dict[str, _Repository] = {}
        self._lock = threading.Lock()
        self._validation_lock = threading.Lock()
        # Fault injection: statuses for the next requests (answered without acting), and
        # operation -> status answered after acting once.
        self._faults: tuple[list[int], dict[str, int]] = ([], {})
        self._routes = Map(
            [
                Rule(f"{API}/repositories", methods=["POST"], endpoint="create_repository"),
                Rule(f"{API}/repositories/<repository>", methods=["GET"], endpoint="get_repository"),
                Rule(f"{API}/repositories/<repository>/branches", methods=["POST"], endpoint="create_branch"),
                Rule(f"{API}/repositories/<repository>/branches", methods=["GET"], endpoint="list_branches"),
                Rule(f"{API}/repositories/<repository>/settings/gc_rules", methods=["GET"], endpoint="get_gc_rules"),
                Rule(f"{API}/repositories/<repository>/settings/gc_rules", methods=["PUT"], endpoint="set_gc_rules"),
                Rule(f"{API}/repositories/<repository>/branches/<branch>", methods=["GET"], endpoint="get_branch"),
                Rule(
                    f"{API}/repositories/<repository>/branches/<branch>", methods=["DELETE"], endpoint="delete_branch"
                ),
                Rule(f"{API}/repositories/<repository>/branches/<branch>/objects", methods=["POST"], endpoint="upload"),
                Rule(
                    f"{API}/repositories/<repository>/branches/<branch>/objects/delete",
                    methods=["POST"],
                    endpoint="delete_objects",
                ),
                Rule(f"{API}/repositories/<repository>/branches/<branch>/commits", methods=["POST"], endpoint="commit"),
                Rule(f"{API}/repositories/<repository>/commits/<commit_id>", methods=["GET"], endpoint="get_commit"),
                Rule(
                    f"{API}/repositories/<repository>/refs/<source>/merge/<destination>",
                    methods=["POST"],
                    endpoint="merge",
                ),
                Rule(f"{API}/repositories/<repository>/refs/<ref>/objects", methods=["GET"], endpoint="get_object"),
                Rule(f"{API}/repositories/<repository>/refs/<ref>/objects/stat", methods=["GET"], endpoint="stat"),
                Rule(f"{API}/repositories/<repository>/refs/<left>/diff/<right>", methods=["GET"], endpoint="diff"),
                Rule(f"{API}/repositories/<repository>/refs/<ref>/objects/ls", methods=["GET"], endpoint="list"),
                Rule(f"{API}/repositories/<repository>/refs/<ref>/commits", methods=["GET"], endpoint="log"),
            ]
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL of the API (``http://127.0.0.1:<port>/api/v1``)."""
        return f"{super().url}{API}"

    # ------------------------------------------------------------- fault injection

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (one each), without acting on them."""
        with self._lock:
            self._faults[0].extend(statuses)

    def lose_next_answer(self, endpoint: str, status: int = 503) -> None:
        """Act on the next ``endpoint`` request (e.g. ``"commit"``) but answer ``status``."""
        with self._lock:
            self._faults[1][endpoint] = status

    def gc_rules(self, repository: str) -> dict[str, Any] | None:
        """The garbage-collection rules last set on ``repository`` (what the GC job would apply)."""
        with self._lock:
            return self._repo(repository).gc_rules

    # ------------------------------------------------------------------- plumbing

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        # The upstream spec uses `allowEmptyValue`, which openapi-core reports as deprecated on every
        # validation; that is a remark about the spec, not about the traffic, so it is silenced here.
        with self._validation_lock, warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Use of allowEmptyValue property is deprecated", DeprecationWarning)
            response = self._validated_answer(Request(environ))
        return response(environ, start_response)

    def _validated_answer(self, request: Request) -> Response:
        openapi_request = WerkzeugOpenAPIRequest(request)
        try:
            self._openapi.validate_request(openapi_request)
        except Exception as exc:  # pylint: disable=broad-exception-caught  # any misfit is recorded
            self.validation_errors.append(f"request {request.method} {request.path}: {exc!r} {_cause(exc)}")
            response = _error(500, f"request does not match the lakeFS API: {exc}")
        else:
            response = self._answer(request)
            errors = [
                error
                for error in self._openapi.iter_response_errors(openapi_request, WerkzeugOpenAPIResponse(response))
                if not _is_empty_binary(error, response)
            ]
            if errors:
                self.validation_errors.extend(
                    f"response {request.method} {request.path} {response.status_code}: {error!r} {_cause(error)}"
                    for error in errors
                )
                response = _error(500, f"response does not match the lakeFS API: {errors}")
        self.calls.append((request.method, request.path, response.status_code))
        return response

    def _answer(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "error authenticating request")
        try:
            endpoint, args = self._routes.bind_to_environ(request.environ).match()
        except NotFound:
            return _error(404, "no such endpoint in the lakeFS double")
        except HTTPException as exc:
            return _error(exc.code or 400, str(exc))
        with self._lock:
            if self._faults[0]:
                return _error(self._faults[0].pop(0), "injected failure")
            try:
                response = getattr(self, f"_op_{endpoint}")(request, **args)
            except ApiError as exc:
                return _error(exc.status, exc.message)
            lost = self._faults[1].pop(endpoint, None)
        return _error(lost, "injected failure after acting") if lost else response

    def _authorized(self, request: Request) -> bool:
        expected = base64.b64encode(f"{self.access_key_id}:{self.secret_access_key}".encode()).decode()
        return request.headers.get("Authorization", "") == f"Basic {expected}"

    def _repo(self, name: str) -> _Repository:
        if name not in self._repositories:
            raise ApiError(404, f"repository {name}: not found")
        return self._repositories[name]

    def _branch_head(self, repo: _Repository, branch: str) -> _Commit:
        if branch not in repo.branches:
            raise ApiError(404, f"branch {branch}: not found")
        return repo.commits[repo.branches[branch]]

    def _commit_of(self, repo: _Repository, ref: str) -> _Commit:
        if ref in repo.branches:
            return repo.commits[repo.branches[ref]]
        if ref in repo.commits:
            return repo.commits[ref]
        matches = [commit for cid, commit in repo.commits.items() if len(ref) >= 6 and cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise ApiError(404, f"ref {ref}: not found")

    def _view(self, repo: _Repository, ref: str) -> dict[str, str]:
        """What a read of ``ref`` sees: a branch's head with its staged changes, or a commit."""
        tree = dict(self._commit_of(repo, ref).tree)
        if ref in repo.branches:
            for path, content in repo.staging.get(ref, {}).items():
                if content is None:
                    tree.pop(path, None)
                else:
                    tree[path] = content
        return tree

    def _new_commit(
        self, repo: _Repository, parents: list[str], message: str, metadata: dict[str, str], tree: dict[str, str]
    ) -> _Commit:
        generation = 1 + max((repo.commits[parent].generation for parent in parents), default=0)
        seed = f"{repo.name}:{len(repo.commits)}:{parents}:{message}".encode()
        commit = _Commit(
            id=hashlib.sha256(seed).hexdigest(),
            parents=parents,
            message=message,
            metadata=metadata,
            creation_date=int(time.time()),
            tree=tree,
            generation=generation,
        )
        repo.commits[commit.id] = commit
        return commit

    def _ancestors(self, repo: _Repository, commit_id: str) -> list[str]:
        """``commit_id`` and every ancestor, breadth first."""
        seen: list[str] = []
        queue = [commit_id]
        while queue:
            current = queue.pop(0)
            if current not in seen:
                seen.append(current)
                queue.extend(repo.commits[current].parents)
        return seen

    # ----------------------------------------------------------------- operations

    def _op_create_repository(self, request: Request) -> Response:
        body = request.get_json()
        name = body["name"]
        if name in self._repositories:
            raise ApiError(409, f"repository {name}: not unique")
        repo = _Repository(
            name=name,
            storage_namespace=body["storage_namespace"],
            default_branch=body.get("default_branch", "main"),
            creation_date=int(time.time()),
        )
        if not request.args.get("bare") == "true":
            first = self._new_commit(repo, [], "Repository created", {}, {})
            repo.branches[repo.default_branch] = first.id
        self._repositories[name] = repo
        return _json(201, repo.as_json())

    def _op_get_repository(self, _request: Request, repository: str) -> Response:
        return _json(200, self._repo(repository).as_json())

    def _op_create_branch(self, request: Request, repository: str) -> Response:
        repo = self._repo(repository)
        body = request.get_json()
        if body["name"] in repo.branches:
            raise ApiError(409, f"branch {body['name']}: branch already exists")
        source = self._commit_of(repo, body["source"])
        repo.branches[body["name"]] = source.id
        return Response(source.id, status=201, content_type="text/html")

    def _op_get_branch(self, _request: Request, repository: str, branch: str) -> Response:
        head = self._branch_head(self._repo(repository), branch)
        return _json(200, {"id": branch, "commit_id": head.id})

    def _op_list_branches(self, request: Request, repository: str) -> Response:
        repo = self._repo(repository)
        prefix = request.args.get("prefix", "")
        amount = int(request.args.get("amount", "100"))
        names = sorted(name for name in repo.branches if name.startswith(prefix))
        page, pagination = _page(names, request.args.get("after", ""), amount)
        return _json(
            200,
            {"pagination": pagination, "results": [{"id": name, "commit_id": repo.branches[name]} for name in page]},
        )

    def _op_get_gc_rules(self, _request: Request, repository: str) -> Response:
        rules = self._repo(repository).gc_rules
        if rules is None:
            raise ApiError(404, "no GC rules set")
        return _json(200, rules)

    def _op_set_gc_rules(self, request: Request, repository: str) -> Response:
        self._repo(repository).gc_rules = request.get_json()
        return Response(status=204)

    def _op_delete_branch(self, _request: Request, repository: str, branch: str) -> Response:
        repo = self._repo(repository)
        self._branch_head(repo, branch)
        if branch == repo.default_branch:
            raise ApiError(403, "cannot delete the default branch")
        del repo.branches[branch]
        repo.staging.pop(branch, None)
        return Response(status=204)

    def _op_upload(self, request: Request, repository: str, branch: str) -> Response:
        repo = self._repo(repository)
        self._branch_head(repo, branch)
        path = request.args["path"]
        if request.mimetype == "multipart/form-data":
            if "content" not in request.files:
                raise ApiError(400, "missing 'content' file part")
            content = request.files["content"].read()
        else:
            content = request.get_data()
        address = self._blocks.put(repo.storage_namespace, content)
        repo.staging.setdefault(branch, {})[path] = address
        return _json(201, self._blocks.stats(path, address))

    def _op_delete_objects(self, request: Request, repository: str, branch: str) -> Response:
        repo = self._repo(repository)
        self._branch_head(repo, branch)
        paths = request.get_json()["paths"]
        if len(paths) > 1000:
            raise ApiError(400, "too many paths (max 1000)")
        staging = repo.staging.setdefault(branch, {})
        for path in paths:
            staging[path] = None
        return _json(200, {"errors": []})

    def _op_commit(self, request: Request, repository: str, branch: str) -> Response:
        repo = self._repo(repository)
        head = self._branch_head(repo, branch)
        body = request.get_json()
        tree = self._view(repo, branch)
        repo.staging.pop(branch, None)
        if tree == head.tree and not body.get("allow_empty"):
            raise ApiError(400, "commit: no changes")
        commit = self._new_commit(repo, [head.id], body["message"], dict(body.get("metadata") or {}), tree)
        repo.branches[branch] = commit.id
        return _json(201, commit.as_json())

    def _op_get_commit(self, _request: Request, repository: str, commit_id: str) -> Response:
        return _json(200, self._commit_of(self._repo(repository), commit_id).as_json())

    def _op_merge(self, request: Request, repository: str, source: str, destination: str) -> Response:
        repo = self._repo(repository)
        target = self._branch_head(repo, destination)
        if self._view(repo, destination) != target.tree:
            raise ApiError(400, f"{destination}: uncommitted changes (dirty branch)")
        incoming = self._commit_of(repo, source)
        body = request.get_json(silent=True) or {}
        target_ancestors = set(self._ancestors(repo, target.id))
        base_id = next(cid for cid in self._ancestors(repo, incoming.id) if cid in target_ancestors)
        base = repo.commits[base_id].tree
        merged = dict(target.tree)
        conflicts = []
        for path in sorted(set(base) | set(incoming.tree)):
            ours, theirs, ancestor = target.tree.get(path), incoming.tree.get(path), base.get(path)
            if theirs in (ancestor, ours):
                continue  # unchanged by the source, or the same change on both sides
            if ours != ancestor:
                conflicts.append(path)
            elif theirs is None:
                merged.pop(path, None)
            else:
                merged[path] = theirs
        if conflicts:
            return _json(409, {"reference": "", "message": f"conflict found: {conflicts}"})
        if merged == target.tree:
            raise ApiError(400, "no changes")
        message = body.get("message") or f"Merge '{source}' into '{destination}'"
        commit = self._new_commit(repo, [target.id, incoming.id], message, dict(body.get("metadata") or {}), merged)
        repo.branches[destination] = commit.id
        return _json(200, {"reference": commit.id})

    def _op_get_object(self, request: Request, repository: str, ref: str) -> Response:
        tree = self._view(self._repo(repository), ref)
        path = request.args["path"]
        if path not in tree:
            raise ApiError(404, f"object {path}: not found")
        content = self._blocks.get(tree[path])
        if content is None:
            raise ApiError(410, f"object {path}: object expired (deleted from the storage namespace)")
        response = Response(content, status=200, content_type="application/octet-stream")
        response.headers["ETag"] = f'"{hashlib.md5(content, usedforsecurity=False).hexdigest()}"'
        response.headers["Last-Modified"] = "Mon, 01 Jan 2024 00:00:00 GMT"
        return response

    def _op_stat(self, request: Request, repository: str, ref: str) -> Response:
        tree = self._view(self._repo(repository), ref)
        path = request.args["path"]
        if path not in tree:
            raise ApiError(404, f"object {path}: not found")
        return _json(200, self._blocks.stats(path, tree[path]))

    def _op_diff(self, request: Request, repository: str, left: str, right: str) -> Response:
        """What changed from ``left`` to ``right`` (two-dot: the trees compared as they are), by path."""
        if request.args.get("type") != "two_dot" or request.args.get("delimiter"):
            raise ApiError(400, "the lakeFS double diffs two_dot, without a delimiter, only")
        repo = self._repo(repository)
        before, after = self._view(repo, left), self._view(repo, right)
        prefix = request.args.get("prefix", "")
        kinds = {
            path: "added" if path not in before else "removed" if path not in after else "changed"
            for path in set(before) | set(after)
            if path.startswith(prefix) and before.get(path) != after.get(path)
        }
        page, pagination = _page(sorted(kinds), request.args.get("after", ""), int(request.args.get("amount", "100")))
        results = [
            {
                "type": kinds[path],
                "path": path,
                "path_type": "object",
                "size_bytes": self._blocks.stats(path, after.get(path) or before[path])["size_bytes"],
            }
            for path in page
        ]
        return _json(200, {"pagination": pagination, "results": results})

    def _op_list(self, request: Request, repository: str, ref: str) -> Response:
        tree = self._view(self._repo(repository), ref)
        prefix = request.args.get("prefix", "")
        amount = int(request.args.get("amount", "100"))
        if request.args.get("delimiter"):
            raise ApiError(400, "the lakeFS double lists without a delimiter only")
        keys = sorted(path for path in tree if path.startswith(prefix))
        page, pagination = _page(keys, request.args.get("after", ""), amount)
        return _json(
            200, {"pagination": pagination, "results": [self._blocks.stats(path, tree[path]) for path in page]}
        )

    def _op_log(self, request: Request, repository: str, ref: str) -> Response:
        repo = self._repo(repository)
        start = self._commit_of(repo, ref)
        ordered = sorted(
            (repo.commits[cid] for cid in self._ancestors(repo, start.id)),
            key=lambda commit: (commit.id != start.id, -commit.generation, -commit.creation_date, commit.id),
        )
        after = request.args.get("after", "")
        if after:
            position = next((i for i, commit in enumerate(ordered) if commit.id == after), len(ordered))
            ordered = ordered[position + 1 :]
        amount = int(request.args.get("amount", "100"))
        page = ordered[:amount]
        has_more = len(ordered) > amount
        pagination = _pagination(has_more, page[-1].id if has_more else "", len(page), amount)
        return _json(200, {"pagination": pagination, "results": [commit.as_json() for commit in page]})


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json(status, {"message": message})


def _is_empty_binary(error: Exception, response: Response) -> bool:
    """openapi-core reports a zero-byte body as missing data; for a binary object it is a valid empty file."""
    return (
        isinstance(error, MissingData) and response.mimetype == "application/octet-stream" and not response.get_data()
    )


def _cause(exc: BaseException) -> str:
    """The nested schema errors openapi-core attaches, flattened for the record."""
    details = []
    current: BaseException | None = exc.__cause__
    while current is not None:
        details.append(repr(current))
        for error in getattr(current, "schema_errors", []) or []:
            details.append(str(getattr(error, "message", error)))
        current = current.__cause__
    return " <- ".join(details)
