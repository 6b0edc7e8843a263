"""The alert component: the exit task of every pipeline; raises an alert when the run failed."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from kfp import dsl
from kfp.dsl import PipelineTaskFinalStatus

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def alert_on_failure(pipeline: str, status: PipelineTaskFinalStatus) -> bool:
    """Runs after every other task of the pipeline, whatever happened. When the run did not succeed,
    raises a `pipeline_failed` alert through the alert sink (a log line, and the alert webhook
    when one is configured) naming the pipeline, the run and the error. Returns whether it alerted.

    Args:
        pipeline: The pipeline the alert names.
        status: The run's final status, which KFP passes to the exit task.
    """
    from churnops.platform.alerts import alert_on_pipeline_failure
    from churnops.platform.logs import setup_logging
    from churnops.platform.settings import settings_or_exit

    settings = settings_or_exit()
    setup_logging(settings)
    raised = alert_on_pipeline_failure(
        settings,
        pipeline,
        status.state,
        status.pipeline_job_resource_name,
        status.pipeline_task_name,
        status.error_message,
    )
    return raised is not None
