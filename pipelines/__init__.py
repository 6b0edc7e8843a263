"""KFP pipelines: the DAGs (ingest, training, scoring) and the code that compiles, runs, submits and schedules them.

:data:`PIPELINES` names every pipeline; :mod:`pipelines.compile` writes their YAML,
:mod:`pipelines.local` runs one with ``kfp.local``, :mod:`pipelines.remote` talks to a KFP API
(submit, schedule, upload).
"""
