"""KFP pipelines: the DAGs (ingest, training, scoring, drift) and the code that compiles, runs, submits, schedules them.

:data:`pipelines.registry.PIPELINES` names every pipeline; :mod:`pipelines.common` holds the task
settings every DAG applies, :mod:`pipelines.compile` writes their YAML, :mod:`pipelines.local` runs
one with ``kfp.local``, :mod:`pipelines.remote` talks to a KFP API (submit, schedule, upload).
"""
