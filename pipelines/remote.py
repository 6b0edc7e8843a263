"""Submit, schedule and upload pipelines to a KFP API (the KFP v2 REST API, through ``kfp.Client``).

Every call compiles the pipeline first (into a temporary folder), so what reaches the server is
what :mod:`pipelines.compile` produces, optionally pinned to a components image digest. Runs use
the pipeline's Workload Identity service account (:func:`pipelines.common.service_account`). KFP
cron expressions have six fields (seconds first); a five-field expression is refused instead of
silently meaning something else.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kfp
import kfp_server_api
import urllib3

from churnops.errors import ConfigurationError, ServiceUnavailable
from churnops.platform import cluster_proxy
from churnops.platform.settings import Settings
from pipelines.common import service_account
from pipelines.compile import compile_pipeline
from pipelines.registry import get

EXPERIMENT = "churnops"


@dataclass(frozen=True)
class Submitted:
    """What the server answered: the id of what was created, and a name."""

    id: str
    name: str


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
        raise ServiceUnavailable(f"KFP API at {endpoint} answered {error.status} {error.reason}") from error
    except (urllib3.exceptions.HTTPError, OSError, TimeoutError) as error:
        raise ServiceUnavailable(f"KFP API at {endpoint} unreachable: {type(error).__name__}") from error


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
            return kfp.Client(host=service.url, existing_token=service.token, ssl_ca_cert=service.ca_cert,
                              verify_ssl=service.verify_ssl)
        return kfp.Client(host=endpoint)


def _experiment_id(api: kfp.Client, name: str) -> str:
    return str(api.create_experiment(name=name).experiment_id)


def submit(name: str, params: dict[str, Any], settings: Settings, host: str | None = None,
           components_image: str | None = None) -> Submitted:
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


def upload(name: str, version: str, settings: Settings, host: str | None = None,
           components_image: str | None = None) -> Submitted:
    """Upload pipeline ``name`` as version ``version`` (the pipeline is created on first upload)."""
    api = client(host, settings)
    pipeline_name = f"churnops-{name}"
    with tempfile.TemporaryDirectory() as tmp, kfp_errors(host or settings.kfp_host or ""):
        package = compile_pipeline(name, Path(tmp), components_image)
        pipeline_id = api.get_pipeline_id(pipeline_name)
        if pipeline_id is None:
            created = api.upload_pipeline(str(package), pipeline_name=pipeline_name,
                                          description=get(name).pipeline.description)
            pipeline_id = created.pipeline_id
        result = api.upload_pipeline_version(str(package), pipeline_version_name=version, pipeline_id=pipeline_id)
    return Submitted(id=str(result.pipeline_version_id), name=f"{pipeline_name}@{version}")


def schedule(name: str, cron: str | None, params: dict[str, Any], settings: Settings,
             host: str | None = None, components_image: str | None = None) -> Submitted:
    """Create a recurring run of pipeline ``name`` on ``cron`` (six fields; default: the pipeline's own)."""
    expression = check_cron(cron or get(name).cron)
    api = client(host, settings)
    with tempfile.TemporaryDirectory() as tmp, kfp_errors(host or settings.kfp_host or ""):
        package = compile_pipeline(name, Path(tmp), components_image)
        result = api.create_recurring_run(
            experiment_id=_experiment_id(api, EXPERIMENT),
            job_name=f"churnops-{name}",
            description=f"{name} on '{expression}'",
            cron_expression=expression,
            max_concurrency=1,
            no_catchup=False,
            params=params,
            pipeline_package_path=str(package),
            pipeline_root=settings.pipeline_root,
            enable_caching=False,
            service_account=service_account(settings, name),
        )
    return Submitted(id=str(result.recurring_run_id), name=f"churnops-{name}")
