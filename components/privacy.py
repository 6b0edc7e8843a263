"""The purge component: complete every erasure whose grace period has passed (``churnops privacy purge``)."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from typing import NamedTuple

from components import component


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def purge(as_of: str) -> NamedTuple(  # type: ignore[valid-type]
    "PurgeOutputs", [("erasures", int), ("commit_id", str), ("refused", str)]
):
    """Complete every due erasure (``docs/security.md``, "Completing an erasure"): the lake's
    history (lakeFS: the GC retention), the raw bucket, MLflow run artifacts and the pipeline root;
    record it on the erasure records. Nothing due is a run that changes nothing. An `as_of` later
    than now is the `refused` output, which the gate after it fails the run with, never retried.

    Args:
        as_of: Complete the erasures due at this UTC time (ISO 8601, not later than now); empty means now.
    """
    from churnops.data.privacy import lake_tokenizer
    from churnops.data.versioning import open_repository
    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit
    from churnops.platform.storage import storage_client
    from churnops.training import erasure

    settings = settings_or_exit()
    setup_logging(settings)

    def complete() -> erasure.PurgeReport:
        moment = erasure.as_of(as_of)
        repo = open_repository(settings)
        return erasure.purge(settings, repo, storage_client(settings), lake_tokenizer(settings), moment)

    outcome = run_step("purge", complete, settings.step_retry_seconds)
    report = outcome.value
    if report is None:
        return 0, "", outcome.refused  # KFP reads a plain tuple in the annotation's order
    return len(report.erasures), report.commit_id or "", ""
