"""Every pipeline by name, with its default schedule."""

from __future__ import annotations

from dataclasses import dataclass

from kfp.dsl.graph_component import GraphComponent

from pipelines import drift, ingest, scoring, training


@dataclass(frozen=True)
class PipelineEntry:
    """One pipeline: its name, its definition, its default cron schedule (six fields), its kfp.local variant."""

    name: str
    pipeline: GraphComponent
    cron: str
    local: GraphComponent | None = None

    @property
    def for_local(self) -> GraphComponent:
        """What ``kfp.local`` runs: the local variant when there is one, else the pipeline itself."""
        return self.local or self.pipeline


PIPELINES: dict[str, PipelineEntry] = {
    entry.name: entry
    for entry in (
        PipelineEntry(ingest.NAME, ingest.ingest_pipeline, ingest.CRON, ingest.local_ingest_pipeline),
        PipelineEntry(training.NAME, training.training_pipeline, training.CRON),
        PipelineEntry(scoring.NAME, scoring.scoring_pipeline, scoring.CRON),
        PipelineEntry(drift.NAME, drift.drift_pipeline, drift.CRON),
    )
}


def get(name: str) -> PipelineEntry:
    """The pipeline called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return PIPELINES[name]
    except KeyError as error:
        raise ValueError(f"unknown pipeline {name!r}: choose one of {', '.join(PIPELINES)}") from error
