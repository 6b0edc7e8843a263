"""Run a pipeline with ``kfp.local`` on the embedded local stack.

The SubprocessRunner runs each lightweight component with the current interpreter
(``use_venv=False``): the task bodies import ``churnops`` from the installed package, and get the
configuration from this process's ``CHURNOPS_*`` environment, like the pods get it from the
settings ConfigMap on the cluster.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kfp import local
from kfp.dsl.pipeline_task import PipelineTask

from churnops.errors import ChurnopsError
from pipelines.registry import get


class PipelineFailed(ChurnopsError):
    """A locally run pipeline ended with a failed task (its log is above; the exit handler alerted)."""


@contextmanager
def root_logging_kept() -> Iterator[None]:
    """Give the root logger back its handlers and level on exit, whatever ran inside.

    kfp.local swaps the root logger's handlers for its own around each task and puts back the ones it found;
    the tasks of a ``ParallelFor`` run on threads at once, so a task can find another task's handler (a stream
    on the caller's redirected output, closed once the run ends) and leave it installed.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def run_local(name: str, params: dict[str, Any], pipeline_root: Path) -> dict[str, Any]:
    """Run pipeline ``name`` with ``params`` locally; return its outputs (:class:`PipelineFailed` on failure)."""
    entry = get(name)
    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=True)
    try:
        with root_logging_kept(), warnings.catch_warnings():
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
