"""The commit component: commit a staged ingest branch and merge it into the lake's main branch."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from typing import Any, NamedTuple

from components import component


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def commit(branch: str, metadata: dict[str, Any]) -> NamedTuple(  # type: ignore[valid-type]
    "CommitOutputs", [("head", str), ("refused", str)]
):
    """Commit the run branch the ingest step staged, with its metadata (sources and generations, row
    accounting, schema and code versions), and merge it into `main`: the atomic publish. Outputs
    main's commit that published the run. The pipeline runs it only when the ingest step staged something;
    given no branch it publishes nothing and outputs an empty commit. An unreachable lake is retried inside
    the task; a merge conflict (nothing was published: the next run ingests those objects) is the `refused`
    output, which the gate after it fails the run with, never retried.

    Args:
        branch: The run branch the ingest step staged; empty when nothing was new.
        metadata: The commit metadata the ingest step built (sources, accounting, versions).
    """
    import logging
    from collections import namedtuple

    from churnops.data import ingest as stage
    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit

    settings = settings_or_exit()
    setup_logging(settings)
    outputs = namedtuple("outputs", ["head", "refused"])
    if not branch:
        logging.getLogger("churnops.components.commit").info("nothing new to ingest: nothing published")
        return outputs("", "")
    outcome = run_step("commit", lambda: stage.publish_staged(settings, branch, metadata), settings.step_retry_seconds)
    return outputs(outcome.value or "", outcome.refused)
