"""Run a pipeline with ``kfp.local`` on the embedded local stack.

The SubprocessRunner runs each lightweight component with the current interpreter
(``use_venv=False``): the task bodies import ``churnops`` from the installed package, and get the
configuration from this process's ``CHURNOPS_*`` environment, like the pods get it from the
settings ConfigMap on the cluster.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from kfp import local
from kfp.dsl.pipeline_task import PipelineTask

from churnops.errors import ChurnopsError
from pipelines.registry import get


class PipelineFailed(ChurnopsError):
    """A locally run pipeline ended with a failed task (its log is above; the exit handler alerted)."""


def run_local(name: str, params: dict[str, Any], pipeline_root: Path) -> dict[str, Any]:
    """Run pipeline ``name`` with ``params`` locally; return its outputs (:class:`PipelineFailed` on failure)."""
    entry = get(name)
    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=True)
    try:
        with warnings.catch_warnings():
            # kfp.local warns, per task and run, that resource requests and limits have no effect locally.
            warnings.filterwarnings(
                "ignore",
                message=r"Task '.*': settings \[.*\] have no effect in the current "
                r"local runner",
                category=UserWarning,
            )
            task: PipelineTask = entry.for_local(**params)
    except RuntimeError as error:
        raise PipelineFailed(f"pipeline {name} failed: {str(error).splitlines()[0] if str(error) else ''}") from error
    return dict(task.outputs) if task.outputs else {}
