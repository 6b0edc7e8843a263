"""The aggregates backfill component: write the missing hourly pre-aggregates on ``main``
(``churnops lake backfill-aggregates``)."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from typing import NamedTuple

from components import component


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def backfill_aggregates() -> NamedTuple(  # type: ignore[valid-type]
    "BackfillOutputs", [("partitions", int), ("events", int), ("commit_id", str), ("refused", str)]
):
    """Write the hourly pre-aggregates of every events partition on ``main`` that lacks them, in one commit merged
    into ``main`` (docs/ingestion.md, "Backfilling the pre-aggregates"): `partitions` and `events` backfilled, and
    `commit_id`, main's head after the publish (empty when nothing was missing: no branch, no commit). ``main``
    moving on every attempt, or a branch that does not hold what was written, is the `refused` output, which the
    gate after it fails the run with, never retried.
    """
    from churnops.data.backfill import BackfillReport
    from churnops.data.backfill import backfill_aggregates as backfill
    from churnops.data.versioning import open_repository
    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit

    settings = settings_or_exit()
    setup_logging(settings)

    def run() -> BackfillReport:
        return backfill(open_repository(settings), settings)

    outcome = run_step("backfill-aggregates", run, settings.step_retry_seconds)
    report = outcome.value
    if report is None:
        return 0, 0, "", outcome.refused  # KFP reads a plain tuple in the annotation's order
    return len(report.backfilled), report.events, report.commit_id or "", ""
