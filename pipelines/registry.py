"""Every pipeline by name, with its default schedule."""

from __future__ import annotations

from dataclasses import dataclass

from kfp.dsl.graph_component import GraphComponent

from pipelines import ingest, scoring, training


@dataclass(frozen=True)
class PipelineEntry:
    """One pipeline: its name, its definition and its default cron schedule (six fields)."""

    name: str
    pipeline: GraphComponent
    cron: str


PIPELINES: dict[str, PipelineEntry] = {
    entry.name: entry
    for entry in (
        PipelineEntry(ingest.NAME, ingest.ingest_pipeline, ingest.CRON),
        PipelineEntry(training.NAME, training.training_pipeline, training.CRON),
        PipelineEntry(scoring.NAME, scoring.scoring_pipeline, scoring.CRON),
    )
}


def get(name: str) -> PipelineEntry:
    """The pipeline called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return PIPELINES[name]
    except KeyError as error:
        raise ValueError(f"unknown pipeline {name!r}: choose one of {', '.join(PIPELINES)}") from error
