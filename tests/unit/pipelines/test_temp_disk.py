"""Every task that writes temporary files declares the disk it uses, and the code writes its temporary files there.

Each such task (the ingest tasks; features, train, score, the drift and performance checks, the purge; evaluate and
register) mounts an ``emptyDir`` of its declared size limit at the path ``TMPDIR`` names, checked in the compiled
pipelines as the installed KFP backend (2.17.0) reads them, with its own protos; no other task gets one. The task runs
as a non-root user, so the volume must be writable by that user without an ``fsGroup``, which the backend cannot
set: an ``emptyDir`` is (kubelet creates it world-writable), a PVC's filesystem is not. And every temporary file of
``churnops/data``, ``churnops/training`` and ``churnops/model`` goes where ``tempfile`` says (``TMPDIR``), so the
volume is where the bytes land, and has a name while it is open, so kubelet, which measures the volume by walking
its files, counts its bytes against the limit.
"""

from __future__ import annotations

import ast
import dataclasses
import gc
import os
import tempfile
from pathlib import Path
from typing import IO, Any, cast

import pandas as pd
import pytest
import yaml
from google.cloud import storage
from google.protobuf import json_format
from kubernetes.utils import parse_quantity

from churnops.data.ingest import IngestRun
from churnops.data.run_ids import RunIds
from churnops.data.spool import ParquetSpool, PartitionSpool
from churnops.data.tempfiles import temporary_file
from churnops.platform.storage import ObjectRef
from pipelines import common
from pipelines.compile import compile_pipeline
from pipelines.registry import PIPELINES
from tests.support import kfp_backend

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "churnops" / "data"
# The code the tasks with a volume run besides churnops/data: the training's, the purge's and the models'.
TASK_CODE = (DATA, ROOT / "churnops" / "training", ROOT / "churnops" / "model")
# The component functions whose tasks keep temporary files, and the resources that declare their volume. The gates,
# the commit (a commit and a merge on the lake: no object is read or written), the failure alert, resolve-model,
# online-features and the aggregates backfill (one partition in memory at a time) write none (but the component's
# source, a few KB, which KFP writes to TMPDIR for every task).
TEMP_DISK_TASKS = {
    **dict.fromkeys(("ingest_plan", "ingest_group", "ingest_finish"), common.INGEST),
    **dict.fromkeys(("features", "train", "score", "drift_check", "performance_check", "purge"), common.LARGE),
    **dict.fromkeys(("evaluate", "register"), common.MODEL_FILES),
}
# tempfile calls in that code that name their own directory, with why that is right. None goes to /tmp.
OWN_DIRECTORY = {
    # the embedded lake writes a blob beside its final path and renames it into place (one filesystem): the lake's
    # state directory, not a temporary file; on the cluster the lake is lakeFS
    ("data/versioning/embedded.py", "mkstemp"): 2,
}


def compiled_executors(name: str, out: Path) -> tuple[dict[str, str], dict[str, dict[str, Any]], dict[str, Any]]:
    """The pipeline ``name`` compiled: each executor's component function, each executor's container (pipeline
    spec) and each executor's Kubernetes config, parsed with the installed backend's protos (unknown fields
    refused) and read back."""
    path = compile_pipeline(name, out)
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    backend = kfp_backend.protos(kfp_backend.installed_version())
    backend.check_documents(documents, name)
    containers = {key: executor["container"] for key, executor in documents[0]["deploymentSpec"]["executors"].items()}
    functions = {
        key: container["args"][container["args"].index("--function_to_execute") + 1]
        for key, container in containers.items()
    }
    configs = {
        key: json_format.MessageToDict(
            backend.parse(backend.kubernetes_executor_config, config, key), preserving_proto_field_name=True
        )
        for key, config in documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items()
    }
    return functions, containers, configs


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_the_tasks_that_write_temporary_files_mount_a_volume_where_tmpdir_points_of_the_declared_size(
    name: str, tmp_path: Path
) -> None:
    functions, containers, configs = compiled_executors(name, tmp_path)
    with_volume = set()
    for executor, function in functions.items():
        config, env = configs[executor], {var["name"]: var["value"] for var in containers[executor].get("env", [])}
        assert "pvc_mount" not in config and "generic_ephemeral_volume" not in config, executor
        if function not in TEMP_DISK_TASKS:
            assert "empty_dir_mounts" not in config and common.TEMP_DIR_ENV not in env, executor
            continue
        with_volume.add(function)
        declared = TEMP_DISK_TASKS[function]
        assert config["empty_dir_mounts"] == [
            # no medium: the node's disk (a Memory medium would count against the task's memory limit)
            {"volume_name": common.TEMP_VOLUME, "mount_path": common.TEMP_DIR, "size_limit": declared.temp_disk}
        ], executor
        assert env[common.TEMP_DIR_ENV] == common.TEMP_DIR, executor
        resources = containers[executor]["resources"]
        assert parse_quantity(resources["resourceMemoryLimit"]) == parse_quantity(declared.memory_limit), executor
        assert parse_quantity(resources["resourceCpuLimit"]) == parse_quantity(declared.cpu_limit), executor
    training = {"features", "train", "evaluate", "register"}
    assert (
        with_volume
        == {
            "ingest": {"ingest_plan", "ingest_group", "ingest_finish"},
            "training": training,
            "drift": {"drift_check", "performance_check"} | training,  # a firing check runs the training's tasks
            "scoring": {"score"},
            "purge": {"purge"},
            "aggregates-backfill": set(),  # one partition in memory at a time, no temporary file
        }[name]
    )


def test_the_declared_sizes_are_kubernetes_quantities_in_binary_units() -> None:
    for resources in (common.INGEST, common.LARGE, common.MODEL_FILES):
        assert resources.temp_disk is not None
        assert parse_quantity(resources.temp_disk) >= 2**29
        assert resources.temp_disk.endswith(("Gi", "Mi"))
    assert common.SMALL.temp_disk is None and common.SNAPSHOT.temp_disk is None
    # the online snapshot is LARGE but for the volume
    assert common.SNAPSHOT == dataclasses.replace(common.LARGE, temp_disk=None)


def test_the_non_root_task_user_can_write_the_volume_without_an_fs_group(tmp_path: Path) -> None:
    """The tasks run as the image's user (10001), not root. A PVC's filesystem (a generic ephemeral volume) has a
    root-owned root directory, writable by that user only with the pod's ``fsGroup``; the 2.17.0 backend offers
    none: its task security context has no such field, and the pod security context it writes for every pod of a
    run (``argo.go``, vendored) sets none. kubelet creates an ``emptyDir`` world-writable: the volume the user can
    write. Should a later backend offer ``fsGroup``, this test says so, and the choice can be weighed again."""
    functions, _, configs = compiled_executors("ingest", tmp_path)
    for executor, function in functions.items():
        context = configs[executor]["security_context"]
        assert context == {"run_as_user": "10001", "run_as_group": "10001", "run_as_non_root": True}, executor
        if function in TEMP_DISK_TASKS:
            assert set(configs[executor]["empty_dir_mounts"][0]) == {"volume_name", "mount_path", "size_limit"}
    assert common.RUN_AS_USER == 10001
    dockerfile = (ROOT / "components" / "Dockerfile").read_text(encoding="utf-8")
    assert f"USER {common.RUN_AS_USER}:{common.RUN_AS_USER}" in dockerfile.splitlines()
    backend = kfp_backend.protos(kfp_backend.installed_version())
    fields = backend.kubernetes_executor_config.DESCRIPTOR.fields_by_name
    task_context = fields["security_context"].message_type.fields_by_name
    assert set(task_context) == {"run_as_user", "run_as_group", "run_as_non_root"}
    argo = (ROOT / "tests" / "specs" / "upstream" / f"kfp-{backend.version}" / "argo.go").read_text(encoding="utf-8")
    pod_context = argo[argo.index("wf.Spec.SecurityContext = &k8score.PodSecurityContext{") :]
    pod_context = pod_context[: pod_context.index("c := &workflowCompiler{")]
    assert "RunAsNonRoot" in pod_context and "FSGroup" not in pod_context and "FSGroup" not in argo


def test_the_backend_cannot_request_ephemeral_storage_for_a_task() -> None:
    """Why the scheduler does not count the volume: a task's resources in the 2.17.0 pipeline spec are cpu, memory
    and accelerators, no ``ephemeral-storage`` request (which would make it count an ``emptyDir``), and the
    Kubernetes config has no resources at all. Should a later backend have one, this test says so."""
    pool = kfp_backend.protos(kfp_backend.installed_version()).pipeline_spec.DESCRIPTOR.file.pool
    resources = pool.FindMessageTypeByName("ml_pipelines.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec")
    assert not [field for field in resources.fields_by_name if "storage" in field or "disk" in field]
    assert {"resource_cpu_request", "resource_memory_request", "accelerator"} <= set(resources.fields_by_name)


def _task_code() -> list[Path]:
    """Every module of churnops/data, churnops/training and churnops/model."""
    return sorted(path for folder in TASK_CODE for path in folder.rglob("*.py"))


def _tempfile_calls() -> list[tuple[str, str, ast.Call]]:
    """Every ``tempfile.<function>(...)`` call in that code: (file under churnops/, function, call)."""
    calls = []
    for path in _task_code():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "tempfile"
            ):
                calls.append((path.relative_to(DATA.parent).as_posix(), node.func.attr, node))
    return calls


def test_every_temporary_file_of_the_tasks_code_goes_where_tempfile_says() -> None:
    """No ``dir=`` but the embedded lake's own (a rename into the lake), no ``/tmp`` written out, no other way to a
    temporary path (``tempfile.tempdir`` set, ``gettempdir`` joined by hand, a name imported from ``tempfile``
    that the calls below would miss): ``TMPDIR`` decides."""
    calls = _tempfile_calls()
    # no TemporaryFile: it has no name, so a walk of the volume does not count it (churnops/data/tempfiles.py)
    assert {function for _, function, _ in calls} <= {"TemporaryDirectory", "mkstemp"}
    # temporary_file's, the run's ids, the embedded lake's two beside its blobs; the feature files, the purge's run
    # artifacts, a model fetched to score
    assert len(calls) >= 7
    own: dict[tuple[str, str], int] = {}
    for file, function, call in calls:
        assert not call.args, f"{file}: tempfile.{function} with positional arguments (name them: dir= shows)"
        if any(keyword.arg == "dir" for keyword in call.keywords):
            own[(file, function)] = own.get((file, function), 0) + 1
    assert own == OWN_DIRECTORY
    for path in _task_code():
        text = path.read_text(encoding="utf-8")
        for found in ("/tmp", "gettempdir", "tempfile.tempdir", "from tempfile import"):
            assert found not in text, f"{path}: {found}"


@pytest.fixture(name="tmpdir_env")
def tmpdir_env_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``TMPDIR`` set to a folder of its own, as the task's environment sets it (``tempfile`` reads it once)."""
    folder = tmp_path / "volume"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert tempfile.gettempdir() == str(folder)
    return folder


def _under(file: IO[bytes], folder: Path) -> bool:
    """Whether an open file is one a walk of ``folder`` finds (what kubelet counts against the volume's limit),
    holding what was written to it."""
    file.flush()
    target = Path(os.readlink(f"/proc/self/fd/{file.fileno()}"))
    listed = {path.name: path.stat().st_size for path in folder.iterdir()}
    return target.parent == folder and listed.get(target.name) == os.fstat(file.fileno()).st_size


class _Blob:
    """A stored object version: a few bytes."""

    def download_to_file(self, out: IO[bytes], raw_download: bool) -> None:
        """Write the stored bytes to ``out``, as google-cloud-storage does."""
        assert raw_download
        out.write(b"raw bytes")


class _Bucket:
    """A bucket of the storage client double."""

    def blob(self, name: str, generation: int) -> _Blob:
        """One version of an object."""
        assert name and generation
        return _Blob()


class _Client:
    """The part of ``storage.Client`` that :meth:`IngestRun.download` uses."""

    def bucket(self, name: str) -> _Bucket:
        """A bucket by name."""
        assert name
        return _Bucket()


def test_the_run_ids_spools_and_download_write_under_tmpdir(tmpdir_env: Path) -> None:
    with RunIds():
        (directory,) = tmpdir_env.iterdir()
        assert directory.name.startswith("churnops-run-ids-")
    assert not list(tmpdir_env.iterdir())
    with ParquetSpool() as spool:
        spool.write(pd.DataFrame({"a": [1]}))
        assert _under(spool.file, tmpdir_env)
    with PartitionSpool("events") as partition:
        assert _under(partition.spool.file, tmpdir_env)
    run = IngestRun.__new__(IngestRun)
    run.client = cast(storage.Client, _Client())
    with run.download(ObjectRef("raw", "activity/events/x.jsonl.gz", 1, 9)) as stored:
        assert _under(stored, tmpdir_env) and stored.read() == b"raw bytes"
    assert not list(tmpdir_env.iterdir())  # each removed once closed


def test_a_temporary_file_is_named_while_open_and_removed_when_closed_or_dropped(tmpdir_env: Path) -> None:
    """What kubelet counts: the file is in the folder, with its bytes, until it is closed, then gone; one dropped
    without being closed is removed when collected (with the warning an unclosed file gives); only its user can
    read it."""
    with temporary_file() as file:
        file.write(b"x" * 100_000)
        assert _under(file, tmpdir_env) and file.seek(0) == 0 and file.read() == b"x" * 100_000
        (path,) = tmpdir_env.iterdir()
        assert path.name.startswith("churnops-") and path.stat().st_mode & 0o777 == 0o600
    assert not list(tmpdir_env.iterdir())
    dropped = temporary_file()
    assert len(list(tmpdir_env.iterdir())) == 1
    with pytest.warns(ResourceWarning, match="unclosed file"):
        del dropped
        gc.collect()
    assert not list(tmpdir_env.iterdir())
