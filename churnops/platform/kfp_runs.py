"""What the KFP API says about a run: which of its tasks failed, and why.

The final status KFP 2.17.0 gives a pipeline's exit task names only the exit handler's own DAG
(``exit-handler-1``) and carries no error (``backend/src/v2/driver/resolve.go`` at the tag fills in
the state, that task's name and the run's resource name; the error is a TODO). The run's task
details in the v2beta1 API (``GET /apis/v2beta1/runs/{run_id}``) do name each task, its state and its
error: the exit task asks for them, from inside the cluster, to name the failing task in its alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import kfp_server_api
import urllib3

from churnops.errors import ServiceUnavailable
from churnops.platform import declaration as platform
from churnops.platform.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailedTask:
    """A task of a run that ended FAILED: its name as the KFP UI shows it, and its error message."""

    name: str
    error: str = ""

    def __str__(self) -> str:
        return f"{self.name} ({self.error})" if self.error else self.name


def failed_tasks(host: str, run_id: str, timeout_seconds: float = 10.0) -> list[FailedTask]:
    """The tasks of run ``run_id`` that failed, leaves only (a DAG that failed because a task in it did is left out).

    :class:`ServiceUnavailable` when the KFP API at ``host`` cannot be asked.
    """
    client = kfp_server_api.ApiClient(kfp_server_api.Configuration(host=host))
    try:
        run = kfp_server_api.RunServiceApi(client).run_service_get_run(run_id, _request_timeout=timeout_seconds)
    except (kfp_server_api.ApiException, urllib3.exceptions.HTTPError) as exc:
        raise ServiceUnavailable(f"KFP API at {host}: cannot read run {run_id}: {type(exc).__name__}") from exc
    finally:
        client.close()
    tasks = (run.run_details.task_details if run.run_details else None) or []
    return [
        FailedTask(task.display_name or task.task_id or "?", (task.error.message or "") if task.error else "")
        for task in tasks
        if task.state == "FAILED" and not task.child_tasks
    ]


def describe_failure(
    settings: Settings, run_id: str, task: str, error: str, host: str = platform.KFP_API.url
) -> tuple[str, str]:
    """The failing task and error an alert about run ``run_id`` names.

    On the cluster (the ``gke`` profile) they are asked of the KFP API at ``host`` (:func:`failed_tasks`); elsewhere, or
    when the API cannot be asked or names none, ``task`` and ``error`` (what the exit task's final status
    says) stay.
    """
    if settings.profile != "gke" or not run_id:
        return task, error
    try:
        failed = failed_tasks(host, run_id)
    except ServiceUnavailable as exc:
        logger.warning("cannot name the failing task: %s", exc)
        return task, error
    if not failed:
        return task, error
    return ", ".join(t.name for t in failed), "; ".join(str(t) for t in failed)
