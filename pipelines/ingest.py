"""The ingest pipeline (hourly): plan -> gate, then only when something is new: a stage task per group of objects
(``dsl.ParallelFor``, each with its gate) -> finish -> gate -> commit -> gate; under an exit handler that alerts on
failure. The three ingest tasks (plan, groups, finish) get their temporary-file volume (``INGEST``); the gates and
the commit write no temporary files and get none."""

from datetime import timedelta

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from churnops.platform import declaration as platform
from churnops.platform.settings import load_settings
from components.commit import commit
from components.ingest import ingest_finish, ingest_group, ingest_plan
from pipelines.common import INGEST, configure, declare_pipeline, failure_alert, refusal_gate

NAME = "ingest"
CRON = platform.PIPELINE_CRONS[NAME]  # every hour at minute 5
# A run on CRON ingests the hour before it: hour H is the run scheduled at H + SLOT_AFTER.
SLOT_AFTER = timedelta(hours=1, minutes=5)


def build(
    scheduled_time: str = dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
    created_time: str = dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER,
) -> GraphComponent:
    """The ingest pipeline, whose plan task gets ``scheduled_time`` and ``created_time`` (KFP's schedule-time
    and creation-time placeholders); its task settings, and how many groups it fans out over
    (``ingest_fanout``), are read from the settings now (at compile or local run time).

    ``kfp.local`` cannot resolve those placeholders (it fails on them), so local runs build the same
    DAG with empty times, and the ``hour`` parameter is then required.
    """

    @declare_pipeline(
        name="churnops-ingest",
        description="Hourly ingest: new raw objects of an hour (plus a lookback for late files) -> contract check, "
        "quarantine, tokenization -> one lake commit merged into main.",
    )
    def pipeline(hour: str = "", lookback: int = 3) -> None:
        """Ingest one hour of raw objects into the lake.

        Args:
            hour: The hour to ingest, YYYY-MM-DDTHH (UTC); empty: the hour before the run's scheduled time.
            lookback: How many hours before `hour` are listed again for late files.
        """
        # pylint: disable=no-member
        # The KFP decorator turns each component into a factory of tasks: pylint sees the plain function
        # (a NamedTuple return without ``.outputs``).
        settings = load_settings()
        alert = failure_alert(NAME, settings)
        with dsl.ExitHandler(alert, name="ingest-run"):
            planned = configure(
                ingest_plan(
                    hour=hour,
                    lookback=lookback,
                    scheduled_time=scheduled_time,
                    created_time=created_time,
                    pipeline_run=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                    fanout=settings.ingest_fanout,
                ),
                settings,
                INGEST,
                display_name="ingest-plan",
            )
            # The gate fails the run on a refusal (never retried) and passes the run branch on; the condition
            # tests the gate's single output, which kfp.local resolves as the backend does (it resolves a
            # condition on a task output only when the output is the task's `Output`).
            checked = refusal_gate(planned, "ingest-plan", settings, passes=planned.outputs["branch"])
            with dsl.If(checked.output != "", name="something-new"):
                # One task per group, at most CHURNOPS_INGEST_FANOUT at a time; each item is one group's JSON.
                with dsl.ParallelFor(
                    planned.outputs["groups"], parallelism=settings.ingest_fanout, name="groups"
                ) as group:
                    staged = configure(ingest_group(group=group), settings, INGEST, display_name="ingest-group")
                    group_checked = refusal_gate(staged, "ingest-group", settings, passes=staged.outputs["staged"])
                finished = configure(
                    ingest_finish(plan=planned.outputs["plan"], staged=dsl.Collected(group_checked.output)),
                    settings,
                    INGEST,
                    display_name="ingest-finish",
                )
                done = refusal_gate(finished, "ingest-finish", settings, passes=finished.outputs["branch"])
                published = configure(
                    commit(branch=done.output, metadata=finished.outputs["metadata"]),
                    settings,
                    display_name="commit-and-merge",
                )
                refusal_gate(published, "commit", settings)  # a merge conflict fails the run, never retried

    return pipeline


def build_local() -> GraphComponent:
    """The ingest pipeline as ``kfp.local`` runs it (no schedule-time placeholder)."""
    return build(scheduled_time="", created_time="")
