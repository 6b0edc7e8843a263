"""The contract of the KFP backend the platform installs: its own protos, at its release tag, compiled here.

The KFP API server compiles each run (and each recurring run) into an Argo Workflow; on the way it
reads every task's Kubernetes platform config into ``kfp_kubernetes.KubernetesExecutorConfig`` with
Go's ``protojson.Unmarshal``, which refuses unknown fields
(``backend/src/v2/compiler/argocompiler/container.go`` at the backend's tag), and the pipeline spec into
``ml_pipelines.PipelineSpec``. An SDK newer than the backend emits fields the backend's protos do not
have; upload accepts them (it stores the platform config as a generic struct), the first run fails.

The ``.proto`` files of each backend release the project knows are vendored unmodified under
``tests/specs/kfp/<version>/`` (source, commit and licence in ``tests/specs/README.md``) and compiled
here with ``grpc_tools.protoc`` into a private descriptor pool, apart from the SDK's own
(``kfp-pipeline-spec``, ``kfp-kubernetes``) messages of the same names. The imports they need from
outside (``google/protobuf/*``, ``google/rpc/status.proto``) come from the installed protobuf and
googleapis-common-protos descriptors.

The backend version is the platform's declaration of it (:func:`installed_version`).
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, json_format, message_factory, struct_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_tools import protoc

from churnops.platform import declaration as platform

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "tests" / "specs" / "kfp"
PROTOS = ("pipeline_spec.proto", "kubernetes_executor_config.proto")


def installed_version() -> str:
    """The KFP backend release the platform installs (``KFP_BACKEND`` of the platform declaration)."""
    return platform.KFP_BACKEND


def known_versions() -> list[str]:
    """The backend releases whose protos are vendored."""
    return sorted(p.name for p in SPECS.iterdir() if p.is_dir())


class BackendRefused(ValueError):
    """The backend's protos refuse part of a compiled pipeline (the message names the part and the field)."""


@dataclass(frozen=True)
class BackendProtos:
    """The message classes of one backend release, from its own protos."""

    version: str
    pipeline_spec: type[Message]
    platform_spec: type[Message]
    kubernetes_executor_config: type[Message]

    def parse(self, message: type[Message], data: Any, where: str) -> Message:
        """``data`` (JSON-like) as ``message``, refusing unknown fields the way the backend does."""
        try:
            return json_format.ParseDict(data, message(), ignore_unknown_fields=False)
        except json_format.ParseError as error:
            raise BackendRefused(f"KFP {self.version} refuses {where}: {error}") from error

    def check_documents(self, documents: list[Any], name: str = "pipeline") -> int:
        """Parse a compiled pipeline's documents (pipeline spec, optional platform spec) and every task's
        Kubernetes config strictly; return how many task configs were checked (:class:`BackendRefused`)."""
        if not documents or len(documents) > 2:
            raise BackendRefused(f"{name}: expected one or two YAML documents, found {len(documents)}")
        self.parse(self.pipeline_spec, documents[0], f"{name}'s pipeline spec")
        if len(documents) == 1:
            return 0
        self.parse(self.platform_spec, documents[1], f"{name}'s platform spec")
        kubernetes = documents[1].get("platforms", {}).get("kubernetes", {})
        executors = kubernetes.get("deploymentSpec", {}).get("executors", {})
        for executor, config in executors.items():
            self.parse(self.kubernetes_executor_config, config, f"{name}'s Kubernetes config of {executor}")
        return len(executors)

    def check_file(self, path: Path) -> int:
        """:meth:`check_documents` of a compiled pipeline YAML."""
        documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
        return self.check_documents(documents, path.stem)


def _imports() -> descriptor_pb2.FileDescriptorSet:
    """The descriptors the vendored protos import, from the installed protobuf and googleapis-common-protos."""
    # pylint: disable=no-member  # protobuf-generated message classes
    files = descriptor_pb2.FileDescriptorSet()
    for module in (duration_pb2, struct_pb2, status_pb2):
        for dependency in module.DESCRIPTOR.dependencies:
            dependency.CopyToProto(files.file.add())
        module.DESCRIPTOR.CopyToProto(files.file.add())
    unique: dict[str, descriptor_pb2.FileDescriptorProto] = {f.name: f for f in files.file}
    ordered = descriptor_pb2.FileDescriptorSet()
    ordered.file.extend(unique.values())
    return ordered


@functools.cache
def protos(version: str) -> BackendProtos:
    """Compile the vendored protos of backend ``version`` (cached per process)."""
    # pylint: disable=no-member  # protobuf-generated message classes
    source = SPECS / version
    missing = [name for name in PROTOS if not (source / name).is_file()]
    if missing:
        raise LookupError(
            f"no vendored KFP {version} protos ({', '.join(missing)}) under {source}: copy them from "
            f"kubeflow/pipelines at tag {version} (tests/specs/README.md)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        imports, output = Path(tmp) / "imports.pb", Path(tmp) / "kfp.pb"
        imports.write_bytes(_imports().SerializeToString())
        status = protoc.main(
            [
                "protoc",
                f"--proto_path={source}",
                f"--descriptor_set_in={imports}",
                f"--descriptor_set_out={output}",
                "--include_imports",
                *PROTOS,
            ]
        )
        if status != 0:
            raise RuntimeError(f"protoc failed ({status}) on the KFP {version} protos")
        compiled = descriptor_pb2.FileDescriptorSet.FromString(output.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in compiled.file:
        pool.Add(file)

    def message(full_name: str) -> type[Message]:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))

    return BackendProtos(
        version=version,
        pipeline_spec=message("ml_pipelines.PipelineSpec"),
        platform_spec=message("ml_pipelines.PlatformSpec"),
        kubernetes_executor_config=message("kfp_kubernetes.KubernetesExecutorConfig"),
    )


__all__ = ["BackendProtos", "BackendRefused", "installed_version", "known_versions", "protos"]
