"""Submit, schedule and upload pipelines to a KFP API (the KFP v2 REST API, through ``kfp.Client``).

``submit`` and ``upload`` compile the pipeline first (into a temporary folder), so what reaches the
server is what :mod:`pipelines.compile` produces, optionally pinned to a components image digest.
``upload`` and ``schedule`` are idempotent: one pipeline version per version name (a commit), and
one recurring run per pipeline, naming an uploaded pipeline version. Runs use the pipeline's
Workload Identity service account (:func:`pipelines.common.service_account`). KFP cron expressions
have six fields (seconds first); a five-field expression is refused instead of silently meaning
something else.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import kfp
import kfp_server_api
import urllib3

from churnops.errors import ConfigurationError, ServiceUnavailable
from churnops.platform import cluster_proxy
from churnops.platform.settings import Settings
from pipelines import ingest as ingest_pipeline
from pipelines.common import service_account
from pipelines.compile import compile_pipeline
from pipelines.registry import get

EXPERIMENT = "churnops"


@dataclass(frozen=True)
class Submitted:
    """What the server answered: the id of what was created (or found, ``created`` false), and a name."""

    id: str
    name: str
    created: bool = True


class NotUploaded(ConfigurationError):
    """A schedule names a pipeline version that is not on the KFP server."""


class CronError(ConfigurationError, ValueError):
    """A cron expression KFP would not read as meant."""


def check_cron(expression: str) -> str:
    """Return ``expression`` if it has KFP's six fields (second minute hour day month weekday), else raise."""
    fields = expression.split()
    if len(fields) != 6:
        hint = f" (for '{expression}' every minute, KFP wants '0 {expression}')" if len(fields) == 5 else ""
        raise CronError(f"a KFP cron expression has six fields, seconds first; got {len(fields)}{hint}")
    return " ".join(fields)


@contextmanager
def kfp_errors(endpoint: str) -> Iterator[None]:
    """Map what ``kfp.Client`` raises when the KFP API refuses or is unreachable to domain errors."""
    try:
        yield
    except kfp_server_api.ApiException as error:
        raise ServiceUnavailable(
            f"KFP API at {endpoint} answered {error.status} {error.reason}{server_message(error)}"
        ) from error
    except (urllib3.exceptions.HTTPError, OSError, TimeoutError) as error:
        raise ServiceUnavailable(f"KFP API at {endpoint} unreachable: {type(error).__name__}") from error


def server_message(error: kfp_server_api.ApiException) -> str:
    """``: <the server's message>`` from a KFP API error body (``{"code": ..., "message": ...}``), else empty."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (json.JSONDecodeError, AttributeError, TypeError):
        return ""
    return f": {str(message)[:500]}" if message else ""


def display_name(name: str) -> str:
    """The KFP display name of pipeline ``name``: its pipeline, its versions' parent, its recurring run."""
    return f"churnops-{name}"


def _named(name: str) -> str:
    """A KFP list filter: display name equals ``name``."""
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})


def client(host: str | None, settings: Settings) -> kfp.Client:
    """A ``kfp.Client`` for ``host`` (else ``settings.kfp_host``): a URL, or ``k8s://kubeflow/ml-pipeline:8888``
    for the KFP API server reached through the Kubernetes API server (:mod:`churnops.platform.cluster_proxy`)."""
    endpoint = host or settings.kfp_host
    if not endpoint:
        raise ConfigurationError("no KFP host: pass --host or set CHURNOPS_KFP_HOST")
    with kfp_errors(endpoint):
        if cluster_proxy.is_proxied(endpoint):
            service = cluster_proxy.resolve(endpoint, settings.kubeconfig, settings.kube_context)
            cluster_proxy.probe(service, "/apis/v2beta1/healthz", f"KFP API at {endpoint}")
            return kfp.Client(
                host=service.url,
                existing_token=service.token,
                ssl_ca_cert=service.ca_cert,
                verify_ssl=service.verify_ssl,
            )
        return kfp.Client(host=endpoint)


def _experiment_id(api: kfp.Client, name: str) -> str:
    return str(api.create_experiment(name=name).experiment_id)


def submit(
    name: str, params: dict[str, Any], settings: Settings, host: str | None = None, components_image: str | None = None
) -> Submitted:
    """Start one run of pipeline ``name`` now."""
    api = client(host, settings)
    with tempfile.TemporaryDirectory() as tmp, kfp_errors(host or settings.kfp_host or ""):
        package = compile_pipeline(name, Path(tmp), components_image)
        result = api.create_run_from_pipeline_package(
            str(package),
            arguments=params,
            run_name=f"churnops-{name}",
            experiment_name=EXPERIMENT,
            pipeline_root=settings.pipeline_root,
            enable_caching=False,
            service_account=service_account(settings, name),
        )
    return Submitted(id=str(result.run_id), name=f"churnops-{name}")


def _pipeline_id(api: kfp.Client, name: str, create: bool) -> str | None:
    """The id of pipeline ``churnops-<name>``; created without any version when absent and ``create``.

    ``kfp.Client.upload_pipeline`` would create a first version named after the pipeline: one
    version per commit needs the pipeline service's plain create (``kfp.Client`` has no method for it).
    """
    found: str | None = api.get_pipeline_id(display_name(name))  # kfp.Client is untyped; its docstring says str
    if found or not create:
        return found
    body = kfp_server_api.V2beta1Pipeline(
        display_name=display_name(name), name=display_name(name), description=get(name).pipeline.description
    )
    pipelines_api = api._pipelines_api  # pylint: disable=protected-access  # the client's own service API
    return str(pipelines_api.pipeline_service_create_pipeline(pipeline=body).pipeline_id)


def _version_id(api: kfp.Client, pipeline_id: str, version: str) -> str | None:
    listed = api.list_pipeline_versions(pipeline_id, page_size=100, filter=_named(version))
    for each in listed.pipeline_versions or []:
        if each.display_name == version:
            return str(each.pipeline_version_id)
    return None


def _uploaded(api: kfp.Client, name: str, version: str) -> tuple[str, str]:
    """The ids of pipeline ``name`` and its version ``version``; :class:`NotUploaded` when either is missing."""
    pipeline_id = _pipeline_id(api, name, create=False)
    version_id = _version_id(api, pipeline_id, version) if pipeline_id else None
    if pipeline_id is None or version_id is None:
        raise NotUploaded(
            f"{display_name(name)} version {version!r} is not on the KFP server: "
            f"upload it first (churnops pipeline upload {name} --version {version})"
        )
    return pipeline_id, version_id


def upload(
    name: str, version: str, settings: Settings, host: str | None = None, components_image: str | None = None
) -> Submitted:
    """Upload pipeline ``name`` as version ``version`` (one per commit), creating the pipeline on first upload.

    Idempotent: when the version exists (a rebuild of the same commit, or a concurrent build that
    won the race) it is returned with ``created`` false and nothing is uploaded.
    """
    api = client(host, settings)
    label = f"{display_name(name)}@{version}"
    with tempfile.TemporaryDirectory() as tmp, kfp_errors(host or settings.kfp_host or ""):
        pipeline_id = _pipeline_id(api, name, create=True)
        assert pipeline_id is not None  # created when absent
        existing = _version_id(api, pipeline_id, version)
        if existing:
            return Submitted(id=existing, name=label, created=False)
        package = compile_pipeline(name, Path(tmp), components_image)
        try:
            result = api.upload_pipeline_version(
                str(package),
                pipeline_version_name=version,
                pipeline_id=pipeline_id,
                description=get(name).pipeline.description,
            )
        except kfp_server_api.ApiException as error:
            existing = _version_id(api, pipeline_id, version) if error.status == 409 else None
            if existing is None:
                raise
            return Submitted(id=existing, name=label, created=False)
    return Submitted(id=str(result.pipeline_version_id), name=label)


def _recurring_runs(api: kfp.Client, experiment_id: str, job_name: str) -> list[Any]:
    listed = api.list_recurring_runs(experiment_id=experiment_id, page_size=100, filter=_named(job_name))
    return [job for job in listed.recurring_runs or [] if job.display_name == job_name]


def _is(job: Any, version_id: str, cron: str, params: dict[str, Any], account: str, root: str | None) -> bool:
    """Whether recurring run ``job`` already is the one asked for."""
    reference = job.pipeline_version_reference
    trigger = job.trigger.cron_schedule if job.trigger else None
    config = job.runtime_config
    return (
        reference is not None
        and reference.pipeline_version_id == version_id
        and trigger is not None
        and trigger.cron == cron
        and dict((config.parameters if config else None) or {}) == params
        and (config.pipeline_root if config else None) == root
        and job.service_account == account
        and int(job.max_concurrency or 0) == 1
        and not job.no_catchup
    )


def schedule(
    name: str, version: str, cron: str | None, params: dict[str, Any], settings: Settings, host: str | None = None
) -> Submitted:
    """Make ``churnops-<name>`` the one recurring run of pipeline ``name``, on uploaded version ``version``.

    Created when absent; left alone when it already runs that version with that cron, parameters,
    root and service account (``created`` false); otherwise replaced: the new one is created
    disabled, the old ones deleted, then the new one enabled (never two enabled at once, and the
    old one stays if creating fails). A schedule an operator disabled stays disabled. ``cron`` has
    six fields (default: the pipeline's own); :class:`NotUploaded` when the version is not on the server.
    """
    entry = get(name)
    if not (cron or entry.cron):
        raise ConfigurationError(f"pipeline {name} has no recurring run: {entry.trigger}")
    expression = check_cron(cron or entry.cron or "")
    api = client(host, settings)
    job_name, account = display_name(name), service_account(settings, name)
    with kfp_errors(host or settings.kfp_host or ""):
        pipeline_id, version_id = _uploaded(api, name, version)
        experiment_id = _experiment_id(api, EXPERIMENT)
        existing = _recurring_runs(api, experiment_id, job_name)
        if len(existing) == 1 and _is(existing[0], version_id, expression, params, account, settings.pipeline_root):
            return Submitted(id=str(existing[0].recurring_run_id), name=job_name, created=False)
        enabled = all(job.status != "DISABLED" for job in existing)
        created = api.create_recurring_run(
            experiment_id=experiment_id,
            job_name=job_name,
            description=f"{name} on '{expression}', version {version}",
            cron_expression=expression,
            max_concurrency=1,
            no_catchup=False,
            params=params,
            pipeline_id=pipeline_id,
            version_id=version_id,
            enabled=False,
            pipeline_root=settings.pipeline_root,
            enable_caching=False,
            service_account=account,
        )
        for job in existing:
            api.delete_recurring_run(job.recurring_run_id)
        if enabled:
            api.enable_recurring_run(created.recurring_run_id)
    return Submitted(id=str(created.recurring_run_id), name=job_name)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def backfill(
    first: datetime,
    last: datetime,
    version: str,
    settings: Settings,
    host: str | None = None,
    params: dict[str, Any] | None = None,
) -> Submitted:
    """Ingest hours ``first``..``last`` (inclusive, whole UTC hours) with uploaded version ``version``.

    A recurring run ``churnops-ingest-backfill-<first>-<last>`` on the ingest cron, from the slot of
    ``first`` to the slot of ``last``, with ``max_concurrency=1`` and catch-up: KFP's scheduler runs
    one ingest per hour, in order, each with that hour's scheduled time, exactly as the hourly
    schedule would have (the ScheduledWorkflow controller runs the slots after ``start_time`` up to
    and including ``end_time``). Idempotent: the same range again finds the job.
    """
    if first.tzinfo is None or last.tzinfo is None:
        raise ValueError("backfill hours must be timezone-aware (UTC)")
    first, last = (value.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0) for value in (first, last))
    if last < first:
        raise ValueError(f"--to {last:%Y-%m-%dT%H} is before --from {first:%Y-%m-%dT%H}")
    job_name = f"{display_name(ingest_pipeline.NAME)}-backfill-{first:%Y%m%dt%H}-{last:%Y%m%dt%H}"
    api = client(host, settings)
    with kfp_errors(host or settings.kfp_host or ""):
        pipeline_id, version_id = _uploaded(api, ingest_pipeline.NAME, version)
        experiment_id = _experiment_id(api, EXPERIMENT)
        existing = _recurring_runs(api, experiment_id, job_name)
        if existing:
            return Submitted(id=str(existing[0].recurring_run_id), name=job_name, created=False)
        # The first slot strictly after start_time is first's; end_time is last's slot, included.
        start = first + ingest_pipeline.SLOT_AFTER - timedelta(minutes=1)
        end = last + ingest_pipeline.SLOT_AFTER
        job = api.create_recurring_run(
            experiment_id=experiment_id,
            job_name=job_name,
            description=f"ingest backfill {first:%Y-%m-%dT%H} to {last:%Y-%m-%dT%H}, version {version}",
            start_time=_rfc3339(start),
            end_time=_rfc3339(end),
            cron_expression=ingest_pipeline.CRON,
            max_concurrency=1,
            no_catchup=False,
            params=params or {},
            pipeline_id=pipeline_id,
            version_id=version_id,
            pipeline_root=settings.pipeline_root,
            enable_caching=False,
            service_account=service_account(settings, ingest_pipeline.NAME),
        )
    return Submitted(id=str(job.recurring_run_id), name=job_name)
