"""KFP pipelines: the DAGs (ingest, training, scoring, drift, purge, aggregates-backfill) and the code that
compiles, runs, submits and schedules them.

:data:`pipelines.registry.PIPELINES` names every pipeline; :mod:`pipelines.common` holds the task
settings every DAG applies and :func:`pipelines.common.declare_pipeline`, which declares each DAG;
:mod:`pipelines.compile` writes their YAML, :mod:`pipelines.local` runs one with ``kfp.local``,
:mod:`pipelines.remote` talks to a KFP API (submit, schedule, upload).
"""
