"""The ingest pipeline (hourly): ingest -> commit, under an exit handler that alerts on failure."""


from kfp import dsl

from churnops.platform.settings import Settings
from components.alert import alert_on_failure
from components.commit import commit
from components.ingest import ingest
from pipelines.common import configure

NAME = "ingest"
CRON = "0 5 * * * *"  # every hour at minute 5 (KFP cron has a leading seconds field)


@dsl.pipeline(
    name="churnops-ingest",
    description="Hourly ingest: new raw objects of an hour (plus a lookback for late files) -> contract check, "
    "quarantine, tokenization -> one lake commit merged into main.",
)
def ingest_pipeline(hour: str = "", lookback: int = 3) -> None:
    """``hour`` (YYYY-MM-DDTHH) overrides the scheduled time; a recurring run ingests the hour before it."""
    settings = Settings()
    alert = configure(alert_on_failure(pipeline=NAME), settings, display_name="alert-on-failure")
    with dsl.ExitHandler(alert, name="ingest-run"):
        staged = configure(
            ingest(hour=hour, lookback=lookback, scheduled_time=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER),
            settings,
            display_name="ingest",
        )
        configure(
            commit(branch=staged.outputs["branch"], metadata=staged.outputs["metadata"]),
            settings,
            display_name="commit-and-merge",
        )
