"""The lakeFS backend: a lakeFS server through the official ``lakefs-sdk`` REST client.

Mapping of lakeFS answers onto the interface:

- commit with nothing staged: lakeFS answers 400 "no changes" -> ``None``;
- merge with nothing to merge: 400 "no changes" -> the destination head;
- merge conflict: 409 -> :class:`MergeConflict`; merge into a dirty branch: 400 -> :class:`UncommittedChangesError`;
- 404 -> :class:`NotFoundError`; 401/403 -> :class:`AccessDenied`;
- connection errors and 429/500/502/503/504 are retried with exponential backoff, then raise
  :class:`LakeUnavailable`; any other refusal -> :class:`VersioningError` (see :meth:`domain_error`);
- ``merge(expected_head=...)``: the lakeFS merge API takes no expected destination commit, so the
  head is compared just before the merge call; a branch moved by another merge in between is
  caught only by lakeFS's own per-object conflict check (ingest makes every run write one shared
  path, ``_ingest/head.json``, so two runs from the same commit always conflict there).

A retried commit whose first attempt was applied but whose answer was lost gets "no changes" on
the retry; the backend then recognises its own commit at the branch head (same message and
metadata) and returns its id instead of ``None``.

Object contents are streamed: the generated client holds a request or response body whole in
memory (it reads an upload's file whole to build its multipart form, and ``getObject``'s body
into ``bytes`` even with ``_preload_content=False``), so uploads and reads are sent by hand
over the client's own connection pool, configuration and authentication (see :meth:`_send`).
"""

from __future__ import annotations

import io
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import IO, Any, TypeVar
from urllib.parse import quote

import urllib3
from lakefs_sdk.api.branches_api import BranchesApi
from lakefs_sdk.api.commits_api import CommitsApi
from lakefs_sdk.api.objects_api import ObjectsApi
from lakefs_sdk.api.refs_api import RefsApi
from lakefs_sdk.api.repositories_api import RepositoriesApi
from lakefs_sdk.api_client import ApiClient
from lakefs_sdk.configuration import Configuration
from lakefs_sdk.exceptions import (
    ApiException,
    BadRequestException,
    ForbiddenException,
    NotFoundException,
    ServiceException,
    UnauthorizedException,
)
from lakefs_sdk.models.branch_creation import BranchCreation
from lakefs_sdk.models.commit import Commit
from lakefs_sdk.models.commit_creation import CommitCreation
from lakefs_sdk.models.garbage_collection_rules import GarbageCollectionRules
from lakefs_sdk.models.merge import Merge
from lakefs_sdk.models.path_list import PathList
from lakefs_sdk.models.repository_creation import RepositoryCreation
from lakefs_sdk.rest import RESTResponse

from churnops.data.tempfiles import temporary_file
from churnops.data.versioning.base import (
    DEFAULT_BRANCH,
    AccessDenied,
    CommitInfo,
    Content,
    DataRepository,
    InvalidArgument,
    LakeUnavailable,
    MergeConflict,
    NotFoundError,
    ObjectExpired,
    UncommittedChangesError,
    check_branch_name,
    check_content,
    check_limit,
    check_metadata,
    check_path,
)
from churnops.errors import ChurnopsError, ConfigurationError, VersioningError
from churnops.platform.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
_PAGE = 1000  # lakeFS's maximum page size (and delete batch size)
BLOCK_SIZE = 1 << 20  # an object read from lakeFS is written out this many bytes at a time
# The authentication schemes the generated client applies to getObject and uploadObject (basic auth here; the
# others apply only when the configuration holds a cookie, token or API key)
_AUTH_SETTINGS = ["basic_auth", "cookie_auth", "jwt_token"]
# The exception the generated client's REST layer raises for each error status (lakefs_sdk.rest.RESTClientObject)
_ERRORS: dict[int, type[ApiException]] = {
    400: BadRequestException,
    401: UnauthorizedException,
    403: ForbiddenException,
    404: NotFoundException,
}


def _is_no_changes(exc: ApiException) -> bool:
    return exc.status == 400 and "no changes" in str(exc.body or "").lower()


# The SDK's request models are pydantic.v1 models built with parse_obj: their optional fields take their
# defaults positionally (``Field(None, ...)``), which type checkers read as required keyword arguments.


def _to_info(commit: Commit) -> CommitInfo:
    return CommitInfo(
        id=commit.id,
        message=commit.message,
        metadata=dict(commit.metadata or {}),
        parents=list(commit.parents),
        created_at=datetime.fromtimestamp(commit.creation_date, tz=timezone.utc),
    )


class LakeFSRepository(DataRepository):  # pylint: disable=too-many-public-methods  # the interface and lakeFS's own
    """A :class:`DataRepository` stored in lakeFS repository ``repository`` at ``endpoint``.

    ``endpoint`` is the server URL with or without the ``/api/v1`` suffix. ``storage_namespace``
    (e.g. ``gs://bucket/lakefs/churn-lake``) is needed only for :meth:`ensure` to create a
    missing repository.
    """

    def __init__(
        self,
        endpoint: str,
        repository: str,
        access_key_id: str,
        secret_access_key: str,
        storage_namespace: str | None = None,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 120.0,
    ) -> None:
        host = endpoint.rstrip("/")
        if not host.endswith("/api/v1"):
            host += "/api/v1"
        configuration = Configuration(host=host, username=access_key_id, password=secret_access_key)
        # retries happen in _call, where they can be reasoned about; the SDK leaves the attribute's type as None
        # although urllib3 takes a count
        configuration.retries = 0  # type: ignore[assignment]
        client = ApiClient(configuration)
        self._host = host
        self._client = client
        self.repository = repository
        self.storage_namespace = storage_namespace
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds
        self._repositories = RepositoriesApi(client)
        self._branches = BranchesApi(client)
        self._objects = ObjectsApi(client)
        self._commits = CommitsApi(client)
        self._refs = RefsApi(client)

    @classmethod
    def from_settings(cls, settings: Settings) -> "LakeFSRepository":
        """The repository the lakeFS settings name; a clear error if any of them is missing."""
        required = {
            "LAKEFS_ENDPOINT": settings.lakefs_endpoint,
            "LAKEFS_REPOSITORY": settings.lakefs_repository,
            "LAKEFS_ACCESS_KEY_ID": settings.lakefs_access_key_id,
            "LAKEFS_SECRET_ACCESS_KEY": settings.lakefs_secret_access_key,
        }
        missing = [name for name, value in required.items() if not value]
        key, secret = settings.lakefs_access_key_id, settings.lakefs_secret_access_key
        if missing or key is None or secret is None:
            raise ConfigurationError(
                "the lakeFS versioning backend needs " + ", ".join(missing) + " (or their CHURNOPS_-prefixed forms)"
            )
        return cls(
            endpoint=str(settings.lakefs_endpoint),
            repository=settings.lakefs_repository,
            access_key_id=key.get_secret_value(),
            secret_access_key=secret.get_secret_value(),
            storage_namespace=settings.lakefs_storage_namespace,
        )

    # ----------------------------------------------------------------- plumbing

    def domain_error(self, exc: Exception) -> ChurnopsError | None:
        """An answer of lakeFS that no method handled, or a failure to reach it."""
        if isinstance(exc, ApiException):
            return VersioningError(f"lakeFS refused the request: {exc.status} {exc.reason} ({exc.body})")
        if isinstance(exc, urllib3.exceptions.HTTPError):
            return LakeUnavailable(f"cannot reach lakeFS at {self._host}: {exc}")
        return None

    def _call(self, what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call an SDK method, retrying transient failures; map 404, auth errors and exhausted retries.

        Other refusals stay ``ApiException`` for the caller to interpret (and :meth:`domain_error`
        maps what it does not).
        """
        attempt = 0
        while True:
            last = attempt == self.retries
            try:
                return func(*args, _request_timeout=self.timeout_seconds, **kwargs)
            except ApiException as exc:
                if exc.status == 404:
                    raise NotFoundError(f"{what}: not found ({exc.body})") from exc
                if exc.status in (401, 403):
                    raise AccessDenied(f"{what}: lakeFS refused the credentials ({exc.status})") from exc
                if exc.status not in TRANSIENT_STATUSES:
                    raise
                if last:
                    raise LakeUnavailable(
                        f"{what}: lakeFS answered {exc.status} {self.retries + 1} time(s) at {self._host}"
                    ) from exc
                logger.warning("%s: lakeFS answered %s, retrying", what, exc.status)
            except urllib3.exceptions.HTTPError as exc:
                if last:
                    raise LakeUnavailable(f"{what}: cannot reach lakeFS at {self._host}: {exc}") from exc
                logger.warning("%s: cannot reach lakeFS (%s), retrying", what, type(exc).__name__)
            time.sleep(self.backoff_seconds * 2**attempt)
            attempt += 1

    def _send(
        self,
        method: str,
        resource_path: str,
        path_params: Mapping[str, str],
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes | IO[bytes] | None = None,
        _request_timeout: float | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """Send one lakeFS API request as the generated client builds it, but with ``body`` (bytes or a binary
        file, read a block at a time) and the response (returned unread: the caller reads and releases it)
        never held whole.

        The URL, the default headers (User-Agent, cookie), the authentication, the connection pool (TLS,
        proxy, retries), the timeout and the exception raised for an error status are those of
        ``lakefs_sdk``'s ``ApiClient.call_api`` and ``rest.RESTClientObject.request``.
        """
        client = self._client
        config = client.configuration
        # the generated client's helpers are unannotated: each is typed here as what it does
        add_auth: Callable[..., None] = client.update_params_for_auth  # adds to the headers or the query
        to_query: Callable[[list[tuple[str, str]], dict[str, str]], str] = client.parameters_to_url_query
        all_headers = {**client.default_headers, **headers}
        if client.cookie:
            all_headers["Cookie"] = client.cookie
        for name, value in path_params.items():
            resource_path = resource_path.replace(f"{{{name}}}", quote(value, safe=config.safe_chars_for_path_param))
        query = list(query)
        add_auth(all_headers, query, _AUTH_SETTINGS, resource_path, method, None)
        url = f"{config.host}{resource_path}?{to_query(query, {})}"
        timeout = urllib3.Timeout(total=_request_timeout) if _request_timeout else None
        try:
            response: urllib3.BaseHTTPResponse = client.rest_client.pool_manager.request(
                method, url, body=body, headers=all_headers, preload_content=False, timeout=timeout
            )
        except urllib3.exceptions.SSLError as exc:
            raise ApiException(status=0, reason=f"{type(exc).__name__}\n{exc}") from exc
        if 200 <= response.status <= 299:
            return response
        error_class = ServiceException if 500 <= response.status <= 599 else _ERRORS.get(response.status, ApiException)
        error = error_class(http_resp=RESTResponse(response))  # reads the (small) error body
        response.release_conn()
        if error.body:
            error.body = error.body.decode("utf-8")
        raise error

    def _download(self, ref: str, path: str, out: IO[bytes], _request_timeout: float | None = None) -> None:
        """Write the content of ``path`` at ``ref`` to ``out`` (truncated first), :data:`BLOCK_SIZE` bytes at a
        time (lakeFS API ``getObject``: ``GET /repositories/{repository}/refs/{ref}/objects?path=``, answered
        ``application/octet-stream``)."""
        out.seek(0)
        out.truncate()
        response = self._send(
            "GET",
            "/repositories/{repository}/refs/{ref}/objects",
            {"repository": self.repository, "ref": ref},
            [("path", path)],
            {"Accept": "application/octet-stream, application/json"},
            _request_timeout=_request_timeout,
        )
        try:
            for block in response.stream(BLOCK_SIZE):
                out.write(block)
        except BaseException:
            response.close()  # a connection left partway through a body is not reused
            raise
        finally:
            response.release_conn()

    def _upload(
        self, branch: str, path: str, content: bytes | IO[bytes], size: int, _request_timeout: float | None = None
    ) -> None:
        """Stage ``content`` (bytes, or ``size`` bytes of a file from its current position) as ``path`` on
        ``branch`` (lakeFS API ``uploadObject``: ``POST /repositories/{repository}/branches/{branch}/objects?path=``
        with the ``application/octet-stream`` body the spec allows beside the generated client's multipart form;
        lakeFS stores either the same way)."""
        response = self._send(
            "POST",
            "/repositories/{repository}/branches/{branch}/objects",
            {"repository": self.repository, "branch": branch},
            [("path", path)],
            {
                "Accept": "application/json",
                "Content-Type": "application/octet-stream",
                "Content-Length": str(size),
            },
            body=content,
            _request_timeout=_request_timeout,
        )
        response.drain_conn()  # the ObjectStats answered, unused (as the generated client's answer was)
        response.release_conn()

    def _last_commit(self, ref: str) -> Commit:
        commits = self._call(f"log {ref!r}", self._refs.log_commits, self.repository, ref, amount=1)
        if not commits.results:
            raise NotFoundError(f"ref {ref!r} has no commits")
        latest: Commit = commits.results[0]  # the SDK's API methods are untyped (validate_arguments)
        return latest

    # ------------------------------------------------------------------ interface

    def ensure(self) -> None:
        """Create the repository (with ``main``) if absent; needs ``storage_namespace`` to create."""
        try:
            self._call("get repository", self._repositories.get_repository, self.repository)
        except NotFoundError:
            if not self.storage_namespace:
                raise NotFoundError(
                    f"lakeFS repository {self.repository!r} does not exist and no storage namespace was given "
                    "to create it"
                ) from None
            creation = RepositoryCreation.parse_obj(
                {"name": self.repository, "storage_namespace": self.storage_namespace, "default_branch": DEFAULT_BRANCH}
            )
            try:
                self._call("create repository", self._repositories.create_repository, creation)
                logger.info("created lakeFS repository %s", self.repository)
            except ApiException as exc:
                if exc.status != 409:  # 409: created meanwhile by someone else
                    raise
        self.head(DEFAULT_BRANCH)

    def head(self, branch: str = DEFAULT_BRANCH) -> str:
        check_branch_name(branch)
        return self._call(f"branch {branch!r}", self._branches.get_branch, self.repository, branch).commit_id

    def resolve(self, ref: str) -> str:
        return self._last_commit(ref).id

    def create_branch(self, name: str, source: str = DEFAULT_BRANCH) -> str:
        check_branch_name(name)
        creation = BranchCreation.parse_obj({"name": name, "source": source})
        try:
            self._call(f"create branch {name!r}", self._branches.create_branch, self.repository, creation)
        except ApiException as exc:
            if exc.status != 409:  # 409: the branch exists and is left as it is
                raise
        return self.head(name)

    def delete_branch(self, name: str) -> None:
        if check_branch_name(name) == DEFAULT_BRANCH:
            raise InvalidArgument(f"the {DEFAULT_BRANCH!r} branch cannot be deleted")
        self._call(f"delete branch {name!r}", self._branches.delete_branch, self.repository, name)

    def branch_exists(self, name: str) -> bool:
        try:
            self.head(name)
        except NotFoundError:
            return False
        return True

    def _paged(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Every result of a paginated lakeFS listing, page after page (``after`` = the last page's cursor)."""
        after = ""
        while True:
            page = self._call(what, func, *args, after=after or None, amount=_PAGE, **kwargs)
            yield from page.results
            if not page.pagination.has_more:
                return
            after = page.pagination.next_offset

    def _objects_at(self, ref: str, prefix: str) -> Iterator[Any]:
        """The ``ObjectStats`` of every object at ``ref`` under ``prefix``."""
        listing = self._paged(
            f"list {prefix!r} at {ref!r}", self._objects.list_objects, self.repository, ref, prefix=prefix or None
        )
        return (item for item in listing if item.path_type == "object")

    def branches(self) -> list[str]:
        return sorted(ref.id for ref in self._paged("list branches", self._branches.list_branches, self.repository))

    def set_retention(self, days: int) -> None:
        """Set the repository's garbage-collection rules: every branch keeps history ``days`` days.

        lakeFS' GC job then hard-deletes objects that only commits older than that reference (an
        erasure's own objects are deleted by the purge at once); see docs/security.md, "Completing an
        erasure".
        """
        rules = GarbageCollectionRules(default_retention_days=days, branches=[])
        self._call("set GC rules", self._repositories.set_gc_rules, self.repository, rules)

    def retention_days(self) -> int | None:
        """The repository's default GC retention in days, or None when no rules are set."""
        try:
            rules = self._call("get GC rules", self._repositories.get_gc_rules, self.repository)
        except NotFoundError:
            return None
        return int(rules.default_retention_days)

    def put_objects(self, branch: str, files: Mapping[str, Content]) -> None:
        check_branch_name(branch)
        for path, content in files.items():
            check_content(check_path(path), content)
        for path, content in files.items():
            what = f"upload {path!r} to {branch!r}"
            if isinstance(content, (bytes, bytearray, memoryview)):
                data = bytes(content)
                self._call(what, self._upload, branch, path, data, len(data))
            elif content.seekable():
                self._upload_file(what, branch, path, content)
            else:  # a pipe or socket: copied to a temporary file first, so that a retry can send it again
                with temporary_file(prefix="churnops-lakefs-") as copy:
                    shutil.copyfileobj(content, copy, BLOCK_SIZE)
                    copy.seek(0)
                    self._upload_file(what, branch, path, copy)

    def _upload_file(self, what: str, branch: str, path: str, content: IO[bytes]) -> None:
        """Upload a seekable file from its current position to its end; each attempt starts from that position."""
        start = content.tell()
        size = content.seek(0, io.SEEK_END) - start

        def attempt(**kwargs: Any) -> None:
            content.seek(start)
            self._upload(branch, path, content, size, **kwargs)

        self._call(what, attempt)

    def delete_objects(self, branch: str, paths: Iterable[str]) -> None:
        check_branch_name(branch)
        batch = [check_path(path) for path in paths]
        for start in range(0, len(batch), _PAGE):
            path_list = PathList(paths=batch[start : start + _PAGE])
            result = self._call(
                f"delete objects on {branch!r}", self._objects.delete_objects, self.repository, branch, path_list
            )
            if result.errors:
                raise VersioningError(f"lakeFS could not delete {len(result.errors)} objects: {result.errors[:3]}")

    def commit(self, branch: str, message: str, metadata: Mapping[str, str]) -> str | None:
        clean = check_metadata(metadata)
        before = self.head(branch)
        creation = CommitCreation.parse_obj({"message": message, "metadata": clean})
        try:
            commit = self._call(f"commit {branch!r}", self._commits.commit, self.repository, branch, creation)
        except ApiException as exc:
            if not _is_no_changes(exc):
                raise
            after = self._last_commit(branch)
            if after.id != before and after.message == message and dict(after.metadata or {}) == clean:
                return after.id  # an earlier attempt committed; only its answer was lost
            return None
        logger.info("committed %s on branch %s", commit.id, branch)
        return commit.id

    def merge(
        self,
        source: str,
        into: str = DEFAULT_BRANCH,
        message: str = "",
        metadata: Mapping[str, str] | None = None,
        expected_head: str | None = None,
    ) -> str:
        check_branch_name(into)
        if expected_head is not None and (head := self.head(into)) != self.resolve(expected_head):
            raise MergeConflict(f"branch {into!r} moved to {head} since {expected_head}; not merging {source!r}")
        request = Merge.parse_obj(
            {"message": message or f"Merge '{source}' into '{into}'", "metadata": check_metadata(metadata)}
        )
        try:
            result = self._call(
                f"merge {source!r} into {into!r}", self._refs.merge_into_branch, self.repository, source, into, request
            )
        except ApiException as exc:
            if exc.status == 409:
                raise MergeConflict(f"merging {source!r} into {into!r} conflicts: {exc.body}") from exc
            if _is_no_changes(exc):
                return self.head(into)
            if exc.status == 400 and "dirty" in str(exc.body or "").lower():
                raise UncommittedChangesError(
                    f"branch {into!r} has uncommitted changes; commit them before merging"
                ) from exc
            raise
        logger.info("merged %s into %s as %s", source, into, result.reference)
        return result.reference

    def get_object(self, ref: str, path: str) -> bytes:
        out = io.BytesIO()
        self._get_into(ref, path, out)
        return out.getvalue()

    def _get_into(self, ref: str, path: str, out: IO[bytes]) -> None:
        """Write the content of ``path`` at ``ref`` to ``out``, a block at a time (retried from its start)."""
        check_path(path)
        try:
            self._call(f"get {path!r} at {ref!r}", self._download, ref, path, out)
        except ApiException as exc:
            if exc.status == 410:
                raise ObjectExpired(
                    f"{path!r} at {ref!r}: 410 object expired (deleted from the storage namespace by an erasure's "
                    "purge or by lakeFS's garbage collection)"
                ) from exc
            raise

    def open_object(self, ref: str, path: str) -> IO[bytes]:
        out = temporary_file()  # the caller closes it
        try:
            self._get_into(ref, path, out)
            out.seek(0)
        except BaseException:
            out.close()
            raise
        return out

    def list_paths(self, ref: str, prefix: str = "") -> list[str]:
        return sorted(item.path for item in self._objects_at(ref, prefix))

    def physical_addresses(self, ref: str, prefix: str = "") -> dict[str, str]:
        """Every object at ``ref`` under ``prefix``: its path -> its physical address in the storage namespace.

        lakeFS-specific: what an erasure purge needs to delete history's copies from the storage
        namespace (:func:`churnops.data.purge.sweep_lakefs_history`).
        """
        return {item.path: item.physical_address for item in self._objects_at(ref, prefix)}

    def reachable_commits(self) -> dict[str, list[str]]:
        """Every commit some branch reaches (its head and every ancestor), each once, newest first: id -> parents."""
        seen: dict[str, list[str]] = {}
        for branch in self.branches():
            log = self._paged(f"log {branch!r}", self._refs.log_commits, self.repository, branch)
            seen.update((commit.id, list(commit.parents)) for commit in log)
        return seen

    def changed_paths(self, before: str, after: str) -> list[str]:
        """The objects ``after`` added or changed relative to ``before`` (a two-dot diff of the two commits)."""
        diff = self._paged(
            f"diff {before!r}..{after!r}", self._refs.diff_refs, self.repository, before, after, type="two_dot"
        )
        return [item.path for item in diff if item.path_type == "object" and item.type in ("added", "changed")]

    def physical_address(self, ref: str, path: str) -> str:
        """Where the object ``path`` at ``ref`` is stored in the storage namespace."""
        check_path(path)
        stats = self._call(f"stat {path!r} at {ref!r}", self._objects.stat_object, self.repository, ref, path)
        return str(stats.physical_address)

    def commit_info(self, ref: str) -> CommitInfo:
        return _to_info(self._last_commit(ref))

    def log(self, ref: str = DEFAULT_BRANCH, limit: int = 50) -> list[CommitInfo]:
        check_limit(limit)
        result: list[CommitInfo] = []
        after = ""
        while len(result) < limit:
            page = self._call(
                f"log {ref!r}",
                self._refs.log_commits,
                self.repository,
                ref,
                after=after or None,
                amount=min(limit - len(result), _PAGE),
            )
            result.extend(_to_info(commit) for commit in page.results)
            if not page.pagination.has_more:
                break
            after = page.pagination.next_offset
        return result[:limit]
