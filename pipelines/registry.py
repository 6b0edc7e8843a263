"""Every pipeline by name, with its default schedule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kfp.dsl.graph_component import GraphComponent

from pipelines import drift, ingest, privacy, scoring, training


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
        return self.build()

    @property
    def for_local(self) -> GraphComponent:
        """What ``kfp.local`` runs: the local variant when there is one, else the pipeline itself."""
        return (self.build_local or self.build)()


PIPELINES: dict[str, PipelineEntry] = {
    entry.name: entry
    for entry in (
        PipelineEntry(ingest.NAME, ingest.build, ingest.CRON, ingest.build_local),
        PipelineEntry(training.NAME, training.build, training.CRON, trigger=training.TRIGGER),
        PipelineEntry(scoring.NAME, scoring.build, scoring.CRON),
        PipelineEntry(drift.NAME, drift.build, drift.CRON),
        PipelineEntry(privacy.NAME, privacy.build, privacy.CRON),
    )
}


def get(name: str) -> PipelineEntry:
    """The pipeline called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return PIPELINES[name]
    except KeyError as error:
        raise ValueError(f"unknown pipeline {name!r}: choose one of {', '.join(PIPELINES)}") from error
