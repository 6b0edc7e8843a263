"""A stateful, in-memory stand-in for the KFP v2beta1 REST API, served over real HTTP on 127.0.0.1.

It implements what ``kfp.Client`` calls to submit, schedule and upload: healthz, experiments (list
with a name filter, create), runs (create), recurring runs (create), pipelines (list with a name
filter, upload, upload a version). The reference for shapes is ``kfp-server-api``, the client
library generated from the KFP API spec: every JSON request body must deserialize into the named
``kfp_server_api`` model with no field that model does not define (checked recursively), with
the model's own required-field and enum validation; every response is built from those models
and serialized by their ``ApiClient``. A request that does not fit is answered 400 and recorded in
:attr:`KfpDouble.validation_errors`, which tests assert stays empty. Everything the client sent
is recorded in :attr:`KfpDouble.requests`.
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

from tests.support.wsgi_double import WsgiDouble

API = "/apis/v2beta1"
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


class _Body:
    """What ``ApiClient.deserialize`` reads: an object with ``data``."""

    def __init__(self, data: str) -> None:
        self.data = data


class KfpDouble(WsgiDouble):
    """The KFP API double. Use as a context manager; ``url`` is the ``host`` for ``kfp.Client``."""

    name = "kfp-double"

    def __init__(self) -> None:
        super().__init__()
        self._api = kfp_server_api.ApiClient()
        self.requests: list[Recorded] = []
        self.validation_errors: list[str] = []
        self.experiments: dict[str, models.V2beta1Experiment] = {}
        self.runs: dict[str, models.V2beta1Run] = {}
        self.recurring_runs: dict[str, models.V2beta1RecurringRun] = {}
        self.pipelines: dict[str, models.V2beta1Pipeline] = {}
        self.pipeline_versions: dict[str, models.V2beta1PipelineVersion] = {}
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
            self._check_spec_source(run.pipeline_spec, run.pipeline_version_reference, "run")
            run.run_id, run.created_at, run.state = uuid.uuid4().hex, now, "PENDING"
            self.runs[run.run_id] = run
            return 200, run
        if (method, path) == ("POST", f"{API}/recurringruns"):
            job = self._model(request, "V2beta1RecurringRun")
            self._check_spec_source(job.pipeline_spec, job.pipeline_version_reference, "recurring run")
            if job.trigger is None or (job.trigger.cron_schedule is None and job.trigger.periodic_schedule is None):
                raise RequestInvalid("a recurring run needs a trigger (cron_schedule or periodic_schedule)")
            job.recurring_run_id, job.created_at, job.status = uuid.uuid4().hex, now, "ENABLED"
            self.recurring_runs[job.recurring_run_id] = job
            return 200, job
        if (method, path) == ("GET", f"{API}/pipelines"):
            name = self._name_filter(request)
            found = [p for p in self.pipelines.values() if name is None or p.display_name == name]
            return 200, models.V2beta1ListPipelinesResponse(pipelines=found or None, total_size=len(found))
        if (method, path) == ("POST", f"{API}/pipelines/upload"):
            self._upload(request)
            name = request.args.get("display_name") or request.args.get("name")
            if not name:
                raise RequestInvalid("upload needs a name or display_name")
            pipeline = models.V2beta1Pipeline(pipeline_id=uuid.uuid4().hex, display_name=name, name=name,
                                              description=request.args.get("description"), created_at=now)
            self.pipelines[pipeline.pipeline_id] = pipeline
            return 200, pipeline
        if (method, path) == ("POST", f"{API}/pipelines/upload_version"):
            documents = self._upload(request)
            pipeline_id = request.args.get("pipelineid")
            if pipeline_id not in self.pipelines:
                return 404, {"code": 5, "message": f"pipeline {pipeline_id} not found"}
            name = request.args.get("display_name") or request.args.get("name")
            if not name:
                raise RequestInvalid("a pipeline version needs a name")
            version = models.V2beta1PipelineVersion(
                pipeline_id=pipeline_id, pipeline_version_id=uuid.uuid4().hex, display_name=name, name=name,
                created_at=now, pipeline_spec=documents[0],
            )
            self.pipeline_versions[version.pipeline_version_id] = version
            return 200, version
        return 404, {"code": 5, "message": f"{method} {path} is not part of this double"}

    @staticmethod
    def _check_spec_source(spec: Any, reference: Any, what: str) -> None:
        if (spec is None) == (reference is None):
            raise RequestInvalid(f"a {what} needs exactly one of pipeline_spec and pipeline_version_reference")
        if spec is not None and "pipelineInfo" not in (spec.get("pipeline_spec") or spec):
            raise RequestInvalid(f"the {what}'s pipeline_spec is not a compiled pipeline")


__all__ = ["KfpDouble", "Recorded", "RequestInvalid"]
