"""The ingest component: stage one hour of raw objects on a run branch of the lake."""

# pylint: disable=import-outside-toplevel,reimported
# KFP runs only the function's own source in the task, so every import lives in the body.

from typing import NamedTuple

from components import component


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def ingest(hour: str, lookback: int, scheduled_time: str, created_time: str = "", pipeline_run: str = "") -> NamedTuple(  # type: ignore[valid-type]
    "IngestOutputs", [("branch", str), ("accounting", dict), ("metadata", dict), ("refused", str)]
):
    """Ingest one hour: list new raw objects (the hour and `lookback` hours of late files), check them
    against the data contract (bad rows to quarantine, alerts raised), tokenize customer ids and stage
    the result on a new run branch of the lake, uncommitted.

    `hour` (YYYY-MM-DDTHH) wins when set; otherwise the run handles the hour before its scheduled
    time, and refuses when that is only its creation time (`created_time`) late in the hour (KFP's
    fallback when it cannot read the run's Workflow: a catch-up run would ingest the wrong hour).
    Outputs the run branch (empty when nothing was new), the row accounting and the commit metadata
    the commit step records. A retried attempt first deletes the run branch an earlier attempt of the same
    pipeline run (`pipeline_run`) left. An unreachable service is retried inside the task; an input it refuses (an
    hour it cannot know or parse, a data-contract error) is the `refused` output, which the gate after
    it fails the run with, never retried.

    Args:
        hour: The hour to ingest, YYYY-MM-DDTHH (UTC); empty: the hour before the scheduled time.
        lookback: How many hours before the hour are listed again for late files.
        scheduled_time: The run's scheduled time (KFP's placeholder, RFC 3339).
        created_time: The run's creation time (KFP's placeholder, RFC 3339), to detect KFP's fallback.
        pipeline_run: The KFP run id (KFP's placeholder): a retry removes the branch a lost attempt left.
    """
    from collections import namedtuple

    from churnops.data import ingest as stage
    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit

    settings = settings_or_exit()
    setup_logging(settings)
    outcome = run_step(
        "ingest",
        lambda: stage.stage_hour(
            settings, stage.scheduled_hour(hour, scheduled_time, created_time), lookback, pipeline_run
        ),
        settings.step_retry_seconds,
    )
    outputs = namedtuple("outputs", ["branch", "accounting", "metadata", "refused"])
    staged = outcome.value
    if staged is None:
        return outputs("", {}, {}, outcome.refused)
    return outputs(staged.branch or "", staged.report.accounting(), staged.metadata, "")
