"""The aggregates backfill pipeline (run by hand): write the hourly pre-aggregates of the events partitions on
``main`` that lack them, in one commit (``churnops lake backfill-aggregates``, as a pipeline task: on the cluster the
lake and its credentials are reachable from the tasks)."""

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from churnops.platform import declaration as platform
from churnops.platform.settings import load_settings
from components.backfill import backfill_aggregates
from pipelines.common import BACKFILL, configure, declare_pipeline, failure_alert, refusal_gate

NAME = "aggregates-backfill"
CRON = platform.PIPELINE_CRONS[NAME]  # None: nothing schedules it
TRIGGER = (
    "the aggregates backfill is run by hand (the KFP UI, or `churnops pipeline submit aggregates-backfill`), "
    "once per lake ingested before the pre-aggregates; a run that finds nothing missing changes nothing"
)


def build() -> GraphComponent:
    """The aggregates backfill pipeline, its task settings read from the settings now (at compile or local run
    time)."""

    @declare_pipeline(
        name="churnops-aggregates-backfill",
        description="Aggregates backfill: the hourly pre-aggregates of every events partition on main that lacks "
        "them are written, checked against their partitions and merged into main in one commit (none when nothing "
        "is missing).",
    )
    def aggregates_backfill_pipeline() -> None:
        """Write the missing pre-aggregates on main."""
        settings = load_settings()
        alert = failure_alert(NAME, settings)
        with dsl.ExitHandler(alert, name="aggregates-backfill-run"):
            backfilled = configure(backfill_aggregates(), settings, BACKFILL, display_name="backfill-aggregates")
            refusal_gate(backfilled, "backfill-aggregates", settings)

    return aggregates_backfill_pipeline
