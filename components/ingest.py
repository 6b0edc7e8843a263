"""The ingest components: plan one hour of raw objects on a run branch of the lake, stage each group of its objects
(the pipeline fans out over them), finish the branch for the commit step."""

# pylint: disable=import-outside-toplevel,reimported
# KFP runs only the function's own source in the task, so every import lives in the body.

from typing import NamedTuple

from components import component


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def ingest_plan(  # pylint: disable=too-many-arguments,too-many-positional-arguments  # one per pipeline input
    hour: str, lookback: int, scheduled_time: str, created_time: str = "", pipeline_run: str = "", fanout: int = 1
) -> NamedTuple(  # type: ignore[valid-type]
    "IngestPlanOutputs", [("branch", str), ("plan", str), ("groups", list), ("refused", str)]
):
    """Plan one hour: list new raw objects (the hour and `lookback` hours of late files), create the run branch
    of the lake and split the new objects into at most `fanout` groups of about equal size.

    `hour` (YYYY-MM-DDTHH) wins when set; otherwise the run handles the hour before its scheduled
    time, and refuses when that is only its creation time (`created_time`) late in the hour (KFP's
    fallback when it cannot read the run's Workflow: a catch-up run would ingest the wrong hour).
    Outputs the run branch (empty when nothing was new), the plan (JSON) the finish step reads and the
    groups (one JSON text each) the pipeline fans out over. A retried attempt first deletes the run branch an
    earlier attempt of the same pipeline run (`pipeline_run`) left. An unreachable service is retried inside
    the task; an input it refuses (an hour it cannot know or parse, a key other than the lake's) is the
    `refused` output, which the gate after it fails the run with, never retried.

    Args:
        hour: The hour to ingest, YYYY-MM-DDTHH (UTC); empty: the hour before the scheduled time.
        lookback: How many hours before the hour are listed again for late files.
        scheduled_time: The run's scheduled time (KFP's placeholder, RFC 3339).
        created_time: The run's creation time (KFP's placeholder, RFC 3339), to detect KFP's fallback.
        pipeline_run: The KFP run id (KFP's placeholder): a retry removes the branch a lost attempt left.
        fanout: The most groups the objects are split into (CHURNOPS_INGEST_FANOUT when the pipeline was built).
    """
    from collections import namedtuple

    from churnops.data import ingest, ingest_steps
    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit

    settings = settings_or_exit()
    setup_logging(settings)
    outcome = run_step(
        "ingest-plan",
        lambda: ingest_steps.plan_run(
            ingest.ingest_run(settings),
            ingest.scheduled_hour(hour, scheduled_time, created_time),
            lookback,
            pipeline_run,
            fanout,
        ),
        settings.step_retry_seconds,
    )
    outputs = namedtuple("outputs", ["branch", "plan", "groups", "refused"])
    plan = outcome.value
    if plan is None:
        return outputs("", "", [], outcome.refused)
    return outputs(plan.branch or "", plan.to_json(), [group.to_json() for group in plan.groups], "")


@component
def ingest_group(group: str) -> NamedTuple("IngestGroupOutputs", [("staged", str), ("refused", str)]):  # type: ignore[valid-type]
    """Stage one group of the plan's objects on the run branch: check each against the data contract (bad rows
    to quarantine), drop duplicate ids, tokenize customer ids, write its partition, quarantine and marker, then
    the group's object reports and published ids for the finish step. Groups run at the same time; a retry
    writes the same files again. Outputs where the group's reports are staged on the branch. An unreachable
    service is retried inside the task; a refusal (a data-contract error) is the `refused` output.

    Args:
        group: One group of the plan (JSON), an item of the plan's `groups`.
    """
    from collections import namedtuple

    from churnops.data import ingest, ingest_steps
    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit

    settings = settings_or_exit()
    setup_logging(settings)
    outcome = run_step(
        "ingest-group",
        lambda: ingest_steps.stage_group(ingest.ingest_run(settings), ingest_steps.IngestGroup.from_json(group)),
        settings.step_retry_seconds,
    )
    outputs = namedtuple("outputs", ["staged", "refused"])
    return outputs(outcome.value or "", outcome.refused)


@component
def ingest_finish(plan: str, staged: list[str]) -> NamedTuple(  # type: ignore[valid-type]
    "IngestFinishOutputs", [("branch", str), ("accounting", dict), ("metadata", dict), ("refused", str)]
):
    """Finish the run branch once every group is staged: drop the ids an object published that an object of
    another group listed before it also published (so the branch holds what one sequential run stages), write
    the id index, aggregates and run manifest, delete superseded partitions, and check that the branch holds
    exactly the rows the accounting claims. Outputs the run branch, the row accounting and the commit metadata
    the commit step records. A retry after it finished returns the same run. An unreachable service is retried
    inside the task; a refusal (the accounting does not balance, a group was not staged) is the `refused` output.

    Args:
        plan: The plan (JSON) the plan step made.
        staged: Where each group staged its reports (the outputs of the groups' gates, which this step waits for).
    """
    import logging
    from collections import namedtuple

    from churnops.data import ingest, ingest_steps
    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit

    settings = settings_or_exit()
    setup_logging(settings)
    logging.getLogger("churnops.components.ingest").info("groups staged", extra={"staged": staged})
    outcome = run_step(
        "ingest-finish",
        lambda: ingest_steps.finish_run(ingest.ingest_run(settings), ingest_steps.IngestPlan.from_json(plan)),
        settings.step_retry_seconds,
    )
    outputs = namedtuple("outputs", ["branch", "accounting", "metadata", "refused"])
    finished = outcome.value
    if finished is None:
        return outputs("", {}, {}, outcome.refused)
    return outputs(finished.branch or "", finished.report.accounting(), finished.metadata, "")
