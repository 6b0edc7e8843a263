"""The commit component: commit a staged ingest branch and merge it into the lake's main branch."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from kfp import dsl

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def commit(branch: str, metadata: dict) -> str:
    """Commit the run branch the ingest step staged, with its metadata (sources and generations, row
    accounting, schema and code versions), and merge it into `main`: the atomic publish. Returns
    main's new head commit id. The pipeline runs it only when the ingest step staged something; given no
    branch it publishes nothing and returns an empty string. An unreachable lake is retried inside the
    task; a merge conflict fails it (nothing was published: the next run ingests those objects).

    Args:
        branch: The run branch the ingest step staged; empty when nothing was new.
        metadata: The commit metadata the ingest step built (sources, accounting, versions).
    """
    import logging

    from churnops.data import ingest as stage
    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit

    settings = settings_or_exit()
    setup_logging(settings)
    if not branch:
        logging.getLogger("churnops.components.commit").info("nothing new to ingest: nothing published")
        return ""
    return run_step(
        "commit", lambda: stage.publish_staged(settings, branch, metadata), settings.step_retry_seconds
    ).result("commit")
