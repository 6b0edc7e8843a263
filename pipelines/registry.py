"""Every pipeline by name, with its default schedule."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kfp.dsl.graph_component import GraphComponent

from pipelines import backfill, drift, ingest, privacy, scoring, training


@dataclass(frozen=True)
class PipelineEntry:
    """One pipeline: its name, how to build it, its default cron schedule (six fields; None when KFP does not
    schedule it, ``trigger`` saying what does), its kfp.local variant.

    Pipelines are built when they are used, not when this module is imported: the task settings
    (node pool, config map, retries) come from the settings of the moment they are compiled or run.
    """

    name: str
    build: Callable[[], GraphComponent]
    cron: str | None
    build_local: Callable[[], GraphComponent] | None = None
    trigger: str = "a KFP recurring run"

    @property
    def pipeline(self) -> GraphComponent:
        """The pipeline, built from the current settings."""
        return _on_a_fresh_stack(self.build)

    @property
    def for_local(self) -> GraphComponent:
        """What ``kfp.local`` runs: the local variant when there is one, else the pipeline itself."""
        return _on_a_fresh_stack(self.build_local or self.build)


def _on_a_fresh_stack(build: Callable[[], GraphComponent]) -> GraphComponent:
    """``build()``, run in a thread of its own.

    KFP's task setters (``set_cpu_limit``, ``set_retry``, ...) each call ``inspect.stack()``, which reads
    the source of every frame of the caller's stack; a frame of code without a file (``python -m``'s
    ``<frozen runpy>``, an exec'd ``<string>``) makes it search every loaded module again, on every call.
    A fresh thread's stack holds only the build's own frames: under a deep caller (a test runner's worker)
    building every pipeline goes from tens of seconds to well under one.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline-build") as pool:
        return pool.submit(build).result()


PIPELINES: dict[str, PipelineEntry] = {
    entry.name: entry
    for entry in (
        PipelineEntry(ingest.NAME, ingest.build, ingest.CRON, ingest.build_local),
        PipelineEntry(training.NAME, training.build, training.CRON, trigger=training.TRIGGER),
        PipelineEntry(scoring.NAME, scoring.build, scoring.CRON),
        PipelineEntry(drift.NAME, drift.build, drift.CRON),
        PipelineEntry(privacy.NAME, privacy.build, privacy.CRON),
        PipelineEntry(backfill.NAME, backfill.build, backfill.CRON, trigger=backfill.TRIGGER),
    )
}


def get(name: str) -> PipelineEntry:
    """The pipeline called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return PIPELINES[name]
    except KeyError as error:
        raise ValueError(f"unknown pipeline {name!r}: choose one of {', '.join(PIPELINES)}") from error
