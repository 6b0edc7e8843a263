"""How a run fails: the alert (the exit task of every pipeline, raises an alert when the run failed) and the gate
(fails the run when a step refused its input, never retried)."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from kfp.dsl import PipelineTaskFinalStatus

from components import component


@component
def alert_on_failure(pipeline: str, status: PipelineTaskFinalStatus, run_id: str = "", run_name: str = "") -> bool:
    """Runs after every other task of the pipeline, whatever happened. When the run did not succeed,
    raises a `pipeline_failed` alert through the alert sink (a log line, and the alert webhook
    when one is configured) naming the pipeline, the run and the failing task with its error (on the
    cluster asked of the KFP API: the final status names neither). Returns whether it alerted.

    Args:
        pipeline: The pipeline the alert names.
        status: The run's final status, which KFP passes to the exit task.
        run_id: The run's id (KFP's placeholder), by which the failing task is looked up.
        run_name: The run's name (KFP's placeholder), which the alert names.
    """
    from churnops.platform.alerts import alert_on_pipeline_failure
    from churnops.platform.kfp_runs import describe_failure
    from churnops.platform.logs import setup_logging
    from churnops.platform.settings import settings_or_exit

    settings = settings_or_exit()
    setup_logging(settings)
    failed_task, error = status.pipeline_task_name, status.error_message
    if status.state.upper() != "SUCCEEDED":
        failed_task, error = describe_failure(settings, run_id, failed_task, error)
    raised = alert_on_pipeline_failure(
        settings,
        pipeline,
        status.state,
        run_id or status.pipeline_job_resource_name,
        failed_task,
        error,
        run_name=run_name,
    )
    return raised is not None


@component
def gate(step: str, refused: str, passes: str = "") -> str:
    """Fail with the refusal of step `step` (a data or contract error, which no retry can mend), else pass
    `passes` on. A step that refuses ends normally with the refusal as an output, so the pipeline's retry
    (which retries any failed task) does not run it again; this task has no retry, so the run fails once
    with the step's reason and the exit handler alerts. Returns `passes`.

    Args:
        step: The step whose refusal this gate checks.
        refused: The step's refusal (`<error class>: <message>`); empty when it did not refuse.
        passes: A value of the step passed on when it did not refuse (what later conditions test).
    """
    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import check_refusal
    from churnops.platform.settings import settings_or_exit

    setup_logging(settings_or_exit())
    check_refusal(step, refused)
    return passes
