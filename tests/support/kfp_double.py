"""A stateful, in-memory stand-in for the KFP v2beta1 REST API, served over real HTTP on 127.0.0.1.

It implements what ``kfp.Client`` calls to submit, schedule and upload: healthz, experiments (list
with a name filter, create), runs (create, get), recurring runs (create, list with a name filter,
enable, disable, delete), pipelines (list with a name filter, create, upload), pipeline versions
(upload, list with a name filter). The reference for shapes is ``kfp-server-api``, the client
library generated from the KFP API spec: every JSON request body must deserialize into the named
``kfp_server_api`` model with no field that model does not define (checked recursively), with
the model's own required-field and enum validation; every response is built from those models
and serialized by their ``ApiClient``. A request that does not fit is answered 400 and recorded in
:attr:`KfpDouble.validation_errors`, which tests assert stays empty. Everything the client sent
is recorded in :attr:`KfpDouble.requests`.

It refuses what the real server of its declared backend version refuses (by default the version the
platform installs): a pipeline name or a version name (within its pipeline) that exists, with 409
as the API server's unique indexes do; and a run or recurring run whose pipeline spec or task
Kubernetes configs do not parse strictly with that version's own protos (``tests/support/kfp_backend.py``),
with 500 and the backend's message, as its workflow compiler does. Upload accepts such a spec, like
the real server. Refusals are recorded in :attr:`KfpDouble.refused` (they are not validation errors:
the client's request was well formed).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import kfp_server_api
import yaml
from kfp_server_api import models
from werkzeug.wrappers import Request, Response

from tests.support import kfp_backend
from tests.support.wsgi_double import WsgiDouble

API = "/apis/v2beta1"
_VERSIONS = re.compile(rf"^{API}/pipelines/([^/]+)/versions$")
_RUN = re.compile(rf"^{API}/runs/([^/:]+)$")
_RECURRING = re.compile(rf"^{API}/recurringruns/([^/:]+)(?::(enable|disable))?$")
_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(([^,]*), (.+)\)$")


class RequestInvalid(Exception):
    """The request does not fit the kfp-server-api model it should."""


@dataclass
class Recorded:
    """One request: method, path, query, JSON body (or the uploaded file's parsed YAML documents)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any = None
    upload: list[Any] | None = None


def _check_fields(data: Any, type_name: str, where: str) -> None:
    """Reject keys the model ``type_name`` does not define, recursively (the generated models ignore them)."""
    if data is None:
        return
    if match := _LIST.match(type_name):
        if not isinstance(data, list):
            raise RequestInvalid(f"{where}: expected a list for {type_name}")
        for i, item in enumerate(data):
            _check_fields(item, match.group(1), f"{where}[{i}]")
        return
    if match := _DICT.match(type_name):
        if not isinstance(data, dict):
            raise RequestInvalid(f"{where}: expected an object for {type_name}")
        for key, value in data.items():
            _check_fields(value, match.group(2), f"{where}.{key}")
        return
    klass = getattr(models, type_name, None)
    if klass is None or not hasattr(klass, "attribute_map"):
        return  # primitives, 'object', 'datetime'
    if hasattr(klass, "allowable_values"):  # a string enum
        _check_enum(data, klass, type_name, where)
        return
    if not isinstance(data, dict):
        raise RequestInvalid(f"{where}: expected an object for {type_name}, got {type(data).__name__}")
    by_json = {json_name: attr for attr, json_name in klass.attribute_map.items()}
    unknown = sorted(set(data) - set(by_json))
    if unknown:
        raise RequestInvalid(f"{where}: {type_name} has no field(s) {unknown}")
    for key, value in data.items():
        _check_fields(value, klass.openapi_types[by_json[key]], f"{where}.{key}")


def _check_enum(data: Any, klass: type, type_name: str, where: str) -> None:
    allowed = getattr(klass, "allowable_values")
    if data not in allowed:
        raise RequestInvalid(f"{where}: {data!r} is not one of {type_name} {allowed}")


class Refused(Exception):
    """What the real server answers with an error status (not a malformed request)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Body:
    """What ``ApiClient.deserialize`` reads: an object with ``data``."""

    def __init__(self, data: str) -> None:
        self.data = data


class KfpDouble(WsgiDouble):
    """The KFP API double. Use as a context manager; ``url`` is the ``host`` for ``kfp.Client``."""

    name = "kfp-double"

    def __init__(self, backend_version: str | None = None) -> None:
        super().__init__()
        self.backend = kfp_backend.protos(backend_version or kfp_backend.installed_version())
        self._api = kfp_server_api.ApiClient()
        self.requests: list[Recorded] = []
        self.validation_errors: list[str] = []
        self.experiments: dict[str, models.V2beta1Experiment] = {}
        self.runs: dict[str, models.V2beta1Run] = {}
        self.recurring_runs: dict[str, models.V2beta1RecurringRun] = {}
        self.pipelines: dict[str, models.V2beta1Pipeline] = {}
        self.pipeline_versions: dict[str, models.V2beta1PipelineVersion] = {}
        self.version_documents: dict[str, list[Any]] = {}  # the uploaded YAML documents, by version id
        self.refused: list[str] = []
        self._lock = threading.Lock()

    def recorded(self, method: str, path: str) -> list[Recorded]:
        """The requests with this method and path."""
        return [r for r in self.requests if r.method == method and r.path == path]

    # -- plumbing -------------------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            with self._lock:
                status, payload = self._route(request)
        except RequestInvalid as error:
            self.validation_errors.append(f"{request.method} {request.path}: {error}")
            status, payload = 400, {"code": 3, "message": str(error)}
        except Refused as error:
            self.refused.append(f"{request.method} {request.path}: {error.status} {error.message}")
            status, payload = error.status, {"code": error.code, "message": error.message}
        except KeyError as error:
            status, payload = 404, {"code": 5, "message": f"not found: {error}"}
        body = json.dumps(self._api.sanitize_for_serialization(payload))
        return Response(body, status=status, content_type="application/json")(environ, start_response)

    def _model(self, request: Request, type_name: str) -> Any:
        """The JSON body as a ``kfp_server_api`` model, after the strict field check."""
        try:
            data = json.loads(request.get_data(as_text=True) or "null")
        except json.JSONDecodeError as error:
            raise RequestInvalid(f"body is not JSON: {error}") from error
        self.requests[-1].body = data
        if not isinstance(data, dict):
            raise RequestInvalid(f"body must be a {type_name} object")
        _check_fields(data, type_name, type_name)
        try:
            return self._api.deserialize(_Body(json.dumps(data)), type_name)
        except (ValueError, TypeError) as error:
            raise RequestInvalid(f"{type_name}: {error}") from error

    def _upload(self, request: Request) -> list[Any]:
        upload = request.files.get("uploadfile")
        if upload is None:
            raise RequestInvalid("multipart field 'uploadfile' is missing")
        documents = [doc for doc in yaml.safe_load_all(upload.read().decode("utf-8")) if doc is not None]
        if not documents or "pipelineInfo" not in documents[0]:
            raise RequestInvalid("the uploaded file is not a compiled pipeline")
        self.requests[-1].upload = documents
        return documents

    @staticmethod
    def _name_filter(request: Request) -> str | None:
        raw = request.args.get("filter")
        if not raw:
            return None
        predicates = json.loads(raw).get("predicates", [])
        for predicate in predicates:
            if predicate.get("key") == "display_name" and predicate.get("operation") in ("EQUALS", 1):
                return str(predicate.get("stringValue") or predicate.get("string_value"))
        raise RequestInvalid(f"unsupported filter {raw}")

    # -- routes ---------------------------------------------------------------------------------

    def _route(self, request: Request) -> tuple[int, Any]:  # pylint: disable=too-many-return-statements,too-many-branches
        path, method = request.path, request.method
        self.requests.append(Recorded(method, path, dict(request.args.items())))
        now = datetime.now(timezone.utc)
        if (method, path) == ("GET", f"{API}/healthz"):
            return 200, models.V2beta1GetHealthzResponse(multi_user=False)
        if (method, path) == ("GET", f"{API}/experiments"):
            name = self._name_filter(request)
            found = [e for e in self.experiments.values() if name is None or e.display_name == name]
            return 200, models.V2beta1ListExperimentsResponse(experiments=found or None, total_size=len(found))
        if (method, path) == ("POST", f"{API}/experiments"):
            experiment = self._model(request, "V2beta1Experiment")
            if not experiment.display_name:
                raise RequestInvalid("an experiment needs a display_name")
            experiment.experiment_id = uuid.uuid4().hex
            experiment.created_at = now
            experiment.storage_state = "AVAILABLE"
            self.experiments[experiment.experiment_id] = experiment
            return 200, experiment
        if (method, path) == ("POST", f"{API}/runs"):
            run = self._model(request, "V2beta1Run")
            self._compile(self._spec_documents(run.pipeline_spec, run.pipeline_version_reference, "run"))
            run.run_id, run.created_at, run.state = uuid.uuid4().hex, now, "PENDING"
            self.runs[run.run_id] = run
            return 200, run
        if method == "GET" and (match := _RUN.match(path)):
            return 200, self.runs[match.group(1)]  # 404 when there is no such run
        if path.startswith(f"{API}/recurringruns"):
            return self._recurring(request, now)
        if (method, path) == ("GET", f"{API}/pipelines"):
            name = self._name_filter(request)
            found = [p for p in self.pipelines.values() if name is None or p.display_name == name]
            return 200, models.V2beta1ListPipelinesResponse(pipelines=found or None, total_size=len(found))
        if (method, path) == ("POST", f"{API}/pipelines"):
            pipeline = self._model(request, "V2beta1Pipeline")
            return 200, self._new_pipeline(pipeline.display_name or pipeline.name, pipeline.description, now)
        if (method, path) == ("POST", f"{API}/pipelines/upload"):
            documents = self._upload(request)
            name = request.args.get("display_name") or request.args.get("name")
            if not name:
                raise RequestInvalid("upload needs a name or display_name")
            pipeline = self._new_pipeline(name, request.args.get("description"), now)
            # The server's upload creates the pipeline and a first version named after it.
            self._new_version(pipeline.pipeline_id, name, documents, now)
            return 200, pipeline
        if (method, path) == ("POST", f"{API}/pipelines/upload_version"):
            documents = self._upload(request)
            pipeline_id = request.args.get("pipelineid")
            if pipeline_id not in self.pipelines:
                return 404, {"code": 5, "message": f"pipeline {pipeline_id} not found"}
            name = request.args.get("display_name") or request.args.get("name")
            if not name:
                raise RequestInvalid("a pipeline version needs a name")
            return 200, self._new_version(pipeline_id, name, documents, now)
        if method == "GET" and (match := _VERSIONS.match(path)):
            if match.group(1) not in self.pipelines:
                return 404, {"code": 5, "message": f"pipeline {match.group(1)} not found"}
            name = self._name_filter(request)
            found = [
                v
                for v in self.pipeline_versions.values()
                if v.pipeline_id == match.group(1) and (name is None or v.display_name == name)
            ]
            return 200, models.V2beta1ListPipelineVersionsResponse(
                pipeline_versions=found or None, total_size=len(found)
            )
        return 404, {"code": 5, "message": f"{method} {path} is not part of this double"}

    def _recurring(self, request: Request, now: datetime) -> tuple[int, Any]:
        path, method = request.path, request.method
        if (method, path) == ("POST", f"{API}/recurringruns"):
            job = self._model(request, "V2beta1RecurringRun")
            self._compile(self._spec_documents(job.pipeline_spec, job.pipeline_version_reference, "recurring run"))
            if job.trigger is None or (job.trigger.cron_schedule is None and job.trigger.periodic_schedule is None):
                raise RequestInvalid("a recurring run needs a trigger (cron_schedule or periodic_schedule)")
            job.recurring_run_id, job.created_at = uuid.uuid4().hex, now
            job.status = "DISABLED" if job.mode == "DISABLE" else "ENABLED"
            self.recurring_runs[job.recurring_run_id] = job
            return 200, job
        if (method, path) == ("GET", f"{API}/recurringruns"):
            name, experiment = self._name_filter(request), request.args.get("experiment_id")
            found = [
                j
                for j in self.recurring_runs.values()
                if name in (None, j.display_name) and experiment in (None, j.experiment_id)
            ]
            return 200, models.V2beta1ListRecurringRunsResponse(recurring_runs=found or None, total_size=len(found))
        return self._one_recurring(request, now)

    def _one_recurring(self, request: Request, now: datetime) -> tuple[int, Any]:
        """Get, delete, enable or disable one recurring run."""
        match = _RECURRING.match(request.path)
        action = (request.method, match.group(2) if match else "unknown")
        if match is None or action not in {("GET", None), ("DELETE", None), ("POST", "enable"), ("POST", "disable")}:
            return 404, {"code": 5, "message": f"{request.method} {request.path} is not part of this double"}
        job = self.recurring_runs[match.group(1)]
        if action == ("DELETE", None):
            del self.recurring_runs[match.group(1)]
        elif action[0] == "POST":
            job.status, job.updated_at = ("ENABLED" if action[1] == "enable" else "DISABLED"), now
        return 200, job if action == ("GET", None) else {}

    def _new_pipeline(self, name: str | None, description: str | None, now: datetime) -> models.V2beta1Pipeline:
        if not name:
            raise RequestInvalid("a pipeline needs a display_name")
        if any(p.display_name == name for p in self.pipelines.values()):
            raise Refused(
                409,
                6,
                f"Already exist error: Failed to create a new pipeline. The name {name} already "
                "exists. Please specify a new name",
            )
        pipeline = models.V2beta1Pipeline(
            pipeline_id=uuid.uuid4().hex, display_name=name, name=name, description=description, created_at=now
        )
        self.pipelines[pipeline.pipeline_id] = pipeline
        return pipeline

    def _new_version(
        self, pipeline_id: str, name: str, documents: list[Any], now: datetime
    ) -> models.V2beta1PipelineVersion:
        if any(v.pipeline_id == pipeline_id and v.display_name == name for v in self.pipeline_versions.values()):
            raise Refused(
                409,
                6,
                f"Already exist error: Failed to create a new pipeline version. The name {name} "
                "already exist. Please specify a new name",
            )
        version = models.V2beta1PipelineVersion(
            pipeline_id=pipeline_id,
            pipeline_version_id=uuid.uuid4().hex,
            display_name=name,
            name=name,
            created_at=now,
            pipeline_spec=documents[0],
        )
        self.pipeline_versions[version.pipeline_version_id] = version
        self.version_documents[version.pipeline_version_id] = documents
        return version

    def _spec_documents(self, spec: Any, reference: Any, what: str) -> list[Any]:
        """The pipeline spec (and platform spec) a run or recurring run would run."""
        self._check_spec_source(spec, reference, what)
        if spec is not None:
            return [spec["pipeline_spec"], spec["platform_spec"]] if "pipeline_spec" in spec else [spec]
        if reference.pipeline_version_id not in self.version_documents:
            raise Refused(404, 5, f"pipeline version {reference.pipeline_version_id} not found")
        if (
            reference.pipeline_id
            and self.pipeline_versions[reference.pipeline_version_id].pipeline_id != reference.pipeline_id
        ):
            raise Refused(400, 3, "the pipeline version is not a version of that pipeline")
        return self.version_documents[reference.pipeline_version_id]

    def _compile(self, documents: list[Any]) -> None:
        """What the backend's workflow compiler does first: parse the specs strictly with its own protos."""
        try:
            self.backend.check_documents(documents)
        except kfp_backend.BackendRefused as error:
            raise Refused(500, 13, f"Internal error: failed to compile the pipeline spec: {error}") from error

    @staticmethod
    def _check_spec_source(spec: Any, reference: Any, what: str) -> None:
        if (spec is None) == (reference is None):
            raise RequestInvalid(f"a {what} needs exactly one of pipeline_spec and pipeline_version_reference")
        if spec is not None and "pipelineInfo" not in (spec.get("pipeline_spec") or spec):
            raise RequestInvalid(f"the {what}'s pipeline_spec is not a compiled pipeline")


__all__ = ["KfpDouble", "Recorded", "RequestInvalid"]
