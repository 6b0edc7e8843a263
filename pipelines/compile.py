"""Compile pipelines to KFP IR YAML (``build/pipelines/<name>.yaml``) and load them back strictly.

The YAML holds two documents: the ``PipelineSpec`` and, since the tasks carry Kubernetes
settings, the ``PlatformSpec``. :func:`parse_strict` parses both into the kfp-pipeline-spec
protobuf messages without ignoring unknown fields: what a KFP backend of the same version accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from kfp import compiler
from kfp.pipeline_spec import pipeline_spec_pb2

from pipelines.common import IMAGE_DIGEST_ENV, image_digest
from pipelines.registry import PIPELINES, get

DEFAULT_OUTPUT = Path("build/pipelines")


def compile_pipeline(name: str, output_dir: Path = DEFAULT_OUTPUT, components_image: str | None = None) -> Path:
    """Compile pipeline ``name`` into ``output_dir/<name>.yaml``; return the path.

    ``components_image`` (e.g. the digest CI just pushed) replaces the components image of every
    executor; by default the image is ``CHURNOPS_COMPONENTS_IMAGE`` as the components read it.
    """
    entry = get(name)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{name}.yaml"
    compiler.Compiler().compile(entry.pipeline, str(path))
    if components_image:
        pin_components_image(path, components_image)
    return path


def compile_all(output_dir: Path = DEFAULT_OUTPUT, components_image: str | None = None) -> list[Path]:
    """Compile every pipeline into ``output_dir``; return the paths."""
    return [compile_pipeline(name, output_dir, components_image) for name in PIPELINES]


def pin_components_image(path: Path, image: str) -> None:
    """Point every executor of the compiled pipeline at ``path`` to ``image`` (in the IR, not by text).

    ``CHURNOPS_IMAGE_DIGEST`` follows: the image's digest when it is pinned by one, else unset.
    """
    if not image.strip() or any(c.isspace() for c in image):
        raise ValueError(f"{image!r} is not an image reference")
    digest = image_digest(image)
    documents: list[Any] = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    executors = documents[0].get("deploymentSpec", {}).get("executors", {})
    for executor in executors.values():
        if "container" in executor:
            container = executor["container"]
            container["image"] = image
            env = [var for var in container.get("env", []) if var.get("name") != IMAGE_DIGEST_ENV]
            if digest:
                env.append({"name": IMAGE_DIGEST_ENV, "value": digest})
            if env:
                container["env"] = env
            else:
                container.pop("env", None)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=True), encoding="utf-8")


def parse_strict(path: Path) -> tuple[pipeline_spec_pb2.PipelineSpec, pipeline_spec_pb2.PlatformSpec | None]:
    """Parse a compiled YAML into ``PipelineSpec`` (and ``PlatformSpec`` when present), rejecting unknown fields."""
    documents: list[Any] = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    if not documents or len(documents) > 2:
        raise ValueError(f"{path}: expected one or two YAML documents, found {len(documents)}")
    # pylint: disable=no-member  # protobuf-generated message classes
    spec = json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    platform = None
    if len(documents) == 2:
        platform = json_format.ParseDict(documents[1], pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False)
    return spec, platform
