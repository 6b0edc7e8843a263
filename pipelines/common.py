"""Task settings every pipeline applies: image, retries, caching, resources, the Kubernetes side (kfp-kubernetes).

Every task runs the settings' ``components_image`` (read when the pipeline is built, never at import).

On the cluster a task gets its configuration as environment: every ``CHURNOPS_*`` key of the
settings ConfigMap, and the secrets by reference (the Secret's keys become environment variables
in the pod; their values never enter the pipeline spec). Tasks run on the ``pipelines`` node pool
(node selector plus toleration of its taint), as a non-root user, with the settings' image pull
policy, and carry their display name as the label ``churnops.io/task``. The Workload Identity
service account is per pipeline and is given at submission (KFP runs every pod of a run under the
run's service account): see :func:`service_account`.

Temporary disk: a task whose :class:`Resources` name a ``temp_disk`` size gets an ``emptyDir`` volume of that size
limit mounted at :data:`TEMP_DIR`, which ``TMPDIR`` names (Python's ``tempfile`` and ``mktemp`` write there): every
task that writes temporary files. The ingest tasks keep what grows with the hour there; features, train, score, the
drift and performance checks and the purge the feature matrices, models and run artifacts they pass to or fetch
from MLflow; evaluate and register the models they fetch or log (docs/ingestion.md, "Temporary disk on the cluster").
The aggregates backfill and the online snapshot write none.

Lineage and actor: every task gets ``CHURNOPS_SERVICE_ACCOUNT`` from its pod's
``spec.serviceAccountName`` (downward API), so registry changes name the run's account, and
``CHURNOPS_MLFLOW_USERNAME`` from the same field (the run logs in to MLflow as its pipeline's user), and
``CHURNOPS_IMAGE_DIGEST`` when the components image is pinned by digest (the compiled pipeline's
image can be replaced after compiling: :func:`pipelines.compile.pin_components_image` keeps the two
in step).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kfp import dsl, kubernetes
from kfp.dsl import PipelineTask

from churnops.platform import declaration as platform
from churnops.platform.settings import Settings
from components.alert import alert_on_failure, gate

# ConfigMap keys (each the name of the environment variable it sets), and Secret key -> environment
# variable (the tokenization key itself comes from Secret Manager): the platform declaration's, which
# the Pulumi program creates.
CONFIG_KEYS: tuple[str, ...] = platform.PIPELINE_CONFIG_KEYS
SECRET_KEYS: dict[str, str] = dict(platform.PIPELINE_SECRET_ENV)
NODE_POOL_LABEL = platform.POOL_LABEL
POOL_TAINT_KEY = platform.POOL_TAINT_KEY
RUN_AS_USER = 10001  # the components image's user
SERVICE_ACCOUNT_ENV = "CHURNOPS_SERVICE_ACCOUNT"
MLFLOW_USERNAME_ENV = "CHURNOPS_MLFLOW_USERNAME"
IMAGE_DIGEST_ENV = "CHURNOPS_IMAGE_DIGEST"
# A task's temporary-file volume: an emptyDir (kubelet creates it world-writable, so RUN_AS_USER can write it; the
# 2.17.0 backend sets no fsGroup, which a PVC's root-owned filesystem would need) over the image's /tmp, so whatever
# writes temporary files there without asking TMPDIR lands on it too (as the serving pods' emptyDir "tmp" at /tmp,
# manifests/base/inferenceservice.yaml).
TEMP_VOLUME = "tmp"
TEMP_DIR = "/tmp"  # nosec B108  # where the pod mounts the task's own volume, not a path this process opens
TEMP_DIR_ENV = "TMPDIR"
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")


def image_digest(image: str) -> str | None:
    """The ``sha256:...`` digest of an image reference pinned by digest (``name@sha256:...``), else None."""
    match = _DIGEST.search(image.strip())
    return match.group(1) if match else None


def declare_pipeline(name: str, description: str) -> Callable[[Callable[..., None]], Any]:
    """``dsl.pipeline(name=..., description=...)``: how every pipeline is declared.

    kfp ships no type information, so to a type checker ``dsl.pipeline`` and the ``GraphComponent`` it
    makes are untyped; declared through this function, no pipeline module needs an exception.
    """
    declare: Callable[[Callable[..., None]], Any] = dsl.pipeline(name=name, description=description)
    return declare


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one task, how long its pod may run (Kubernetes ``activeDeadlineSeconds``:
    a hung call to the lake or the registry fails the task instead of stalling the schedule), and the size limit
    of its temporary-file volume (``temp_disk``; None: no volume, temporary files go to the container's own
    filesystem)."""

    cpu_request: str = "250m"
    cpu_limit: str = "1"
    memory_request: str = "512Mi"
    memory_limit: str = "1Gi"
    timeout_seconds: int = 20 * 60
    temp_disk: str | None = None


SMALL = Resources()
# Features, train, score, the drift and performance checks, the purge. Disk: what they write to temporary files
# grows with the feature matrices (features writes each split to a file before logging it to MLflow; the purge
# downloads a run's artifacts and writes each rewritten one beside them: about twice the largest run's artifacts)
# and with the models (the model tasks save or fetch one through a temporary folder): at most 37.7 MB measured, for
# 20,000 customers over 48 hours (the purge; 9.7 times the 3.9 MB of the demo's 2,000 customers: linear in the rows).
# The matrices cannot outgrow the features task's memory: a row takes 652 bytes in memory, 78 on disk (parquet,
# zstd), so the 4Gi limit holds at most about 0.5 GiB of matrices on disk, and the purge about twice that; 2Gi is
# twice that bound (docs/ingestion.md, "Temporary disk on the cluster").
LARGE = Resources(
    cpu_request="1",
    cpu_limit="2",
    memory_request="2Gi",
    memory_limit="4Gi",
    timeout_seconds=90 * 60,
    temp_disk="2Gi",
)
# The online snapshot (online-features): LARGE's CPU, memory and time; it writes no temporary file (measured: none
# but the component's own source, which KFP writes to TMPDIR for every task, 1.6 KB), so it gets no volume.
SNAPSHOT = replace(LARGE, temp_disk=None)
# The aggregates backfill (aggregates-backfill): LARGE's CPU and memory, no volume, a longer time. It holds one events
# partition's file in memory at a time and reads it a row group at a time (aggregated, then counted for the check),
# and writes no temporary file (measured: none; on lakeFS an object is read into memory and written from it).
# Memory: 0.79 GiB peak measured for a partition of 10M events (211 MiB of parquet, row groups of 1,048,576 rows);
# the 4Gi limit is 5 times that, with room for lakeFS's copy of the download. Time: the whole lake in one run (one
# commit), 5.1 s measured for those 10M events and 1.1 s for a partition of 1M (docs/ingestion.md, "Backfilling the
# pre-aggregates"): 6 hours hold about 19,000 hourly partitions of 1M events.
BACKFILL = replace(LARGE, temp_disk=None, timeout_seconds=6 * 60 * 60)
# Evaluate and register: SMALL's CPU, memory and time, and a volume for what they pass through temporary folders on
# the way to or from MLflow: plots and a model (at most 5.5 MB measured, register for 20,000 customers over 48 hours;
# 1.0 MB for 2,000: slower than the rows). 512Mi is about 90 times that, and half the 1Gi memory that holds the
# model once loaded.
MODEL_FILES = replace(SMALL, temp_disk="512Mi")
# The ingest tasks (plan, groups, finish). CPU: an object is read, checked and written by three busy threads (the
# reading thread, the check, the parquet writer), beside one that opens the next object and one that finishes the one
# before. Memory: about 2.4 times the peak measured for one object of 10M events (0.82 GiB, docs/ingestion.md,
# "Cost"). Disk: the temporary files of an hour, 2.2 times the 1,821 MiB measured for that
# object (docs/ingestion.md, "Temporary disk on the cluster").
INGEST = Resources(cpu_request="1", cpu_limit="2", memory_request="1536Mi", memory_limit="2Gi", temp_disk="4Gi")


def configure(
    task: PipelineTask,
    settings: Settings,
    resources: Resources = SMALL,
    network: bool = True,
    display_name: str | None = None,
) -> PipelineTask:
    """Apply the common settings to ``task``.

    Every task has a timeout (``resources.timeout_seconds``); a task with ``resources.temp_disk`` gets its
    temporary-file volume (``TMPDIR``). Caching is off for every task: each one
    reads or changes external state (the lake, the raw bucket, the registry) or the clock, so an
    earlier result with the same inputs is no answer.
    ``network`` tasks (all that talk to GCS, the lake or MLflow) retry three times with
    exponential backoff (by default 30 s, 60 s, 120 s; ``pipeline_retry_backoff_seconds``).
    """
    if display_name:
        task.set_display_name(display_name)
        # The pod carries its task's name: the kubeflow namespace's NetworkPolicies single out a task by it
        # (only the failure alert may send to the internet, to its webhook).
        kubernetes.add_pod_label(task, platform.TASK_LABEL, display_name)
    task.set_container_image(settings.components_image)  # components are declared with the default image
    task.set_caching_options(False)
    task.set_cpu_request(resources.cpu_request).set_cpu_limit(resources.cpu_limit)
    task.set_memory_request(resources.memory_request).set_memory_limit(resources.memory_limit)
    if network:
        backoff = f"{settings.pipeline_retry_backoff_seconds}s"
        task.set_retry(num_retries=3, backoff_duration=backoff, backoff_factor=2.0, backoff_max_duration="300s")
    kubernetes.use_config_map_as_env(task, settings.pipeline_settings_config_map, {key: key for key in CONFIG_KEYS})
    kubernetes.use_secret_as_env(task, settings.pipeline_secret, dict(SECRET_KEYS))
    kubernetes.add_node_selector(task, label_key=NODE_POOL_LABEL, label_value=settings.pipeline_node_pool)
    kubernetes.add_toleration(
        task, key=POOL_TAINT_KEY, operator="Equal", value=settings.pipeline_node_pool, effect="NoSchedule"
    )
    kubernetes.set_image_pull_policy(task, settings.image_pull_policy)
    kubernetes.set_timeout(task, resources.timeout_seconds)
    if resources.temp_disk:
        kubernetes.empty_dir_mount(task, volume_name=TEMP_VOLUME, mount_path=TEMP_DIR, size_limit=resources.temp_disk)
        task.set_env_variable(TEMP_DIR_ENV, TEMP_DIR)
    kubernetes.set_security_context(task, run_as_user=RUN_AS_USER, run_as_group=RUN_AS_USER, run_as_non_root=True)
    kubernetes.use_field_path_as_env(task, env_name=SERVICE_ACCOUNT_ENV, field_path="spec.serviceAccountName")
    # The task logs in to MLflow as its pipeline's user, named after the account (churnops.platform.mlflow_users).
    kubernetes.use_field_path_as_env(task, env_name=MLFLOW_USERNAME_ENV, field_path="spec.serviceAccountName")
    digest = image_digest(settings.components_image)
    if digest:
        task.set_env_variable(IMAGE_DIGEST_ENV, digest)
    return task


def service_account(settings: Settings, pipeline: str) -> str:
    """The Kubernetes service account runs of ``pipeline`` use (bound to a GCP account by Workload Identity)."""
    try:
        return settings.pipeline_service_accounts[pipeline]
    except KeyError as error:
        raise ValueError(
            f"no service account is configured for pipeline {pipeline!r} (CHURNOPS_PIPELINE_SERVICE_ACCOUNTS)"
        ) from error


def failure_alert(pipeline: str, settings: Settings) -> PipelineTask:
    """The exit task of every pipeline: alerts when the run did not succeed, naming the pipeline, the run (its
    id and name, from KFP's placeholders) and the failing task."""
    # The exit handler passes the status argument.
    task = alert_on_failure(  # pylint: disable=no-value-for-parameter
        pipeline=pipeline, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER
    )
    return configure(task, settings, display_name="alert-on-failure")


def refusal_gate(step_task: PipelineTask, step: str, settings: Settings, passes: object = None) -> PipelineTask:
    """The gate after ``step_task`` (whose ``refused`` output is its refusal, empty when it did not refuse): fails
    the run with ``<step> refused: <reason>``, never retried; else passes ``passes`` (an output of the step) on
    as its single output, which later conditions test. Whatever runs after the step waits for this gate."""
    inputs = {"step": step, "refused": step_task.outputs["refused"]}
    if passes is not None:
        inputs["passes"] = passes
    return configure(gate(**inputs), settings, network=False, display_name=f"{step}-gate")
