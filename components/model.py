"""The model component: a registry reference resolved to one version, brought in as a KFP Model artifact."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from typing import NamedTuple

from kfp.dsl import Model, Output

from components import component


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def resolve_model(model_ref: str, model: Output[Model]) -> NamedTuple(  # type: ignore[valid-type]
    "ResolveOutputs", [("version", str), ("refused", str)]
):
    """Resolve `model_ref` (a registry alias such as `production`, or a version number) to the version of the
    churn model it names now, and output that version as the `model` artifact (its MLflow model directory;
    registered model, reference, version, model URI, run and data commit in its metadata): the tasks after it
    use this version, which the run's lineage shows, even if the alias moves meanwhile. No version holding
    the alias is the `refused` output (the model is then an empty file), which the gate after it fails the
    run with, never retried.

    Args:
        model_ref: The registry alias or version number of the model.
        model: The resolved version (an MLflow model directory, written).
    """
    from collections import namedtuple

    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import leave_empty, run_step
    from churnops.platform.settings import settings_or_exit
    from churnops.training import artifacts, resolve

    settings = settings_or_exit()
    setup_logging(settings)
    outputs = namedtuple("outputs", ["version", "refused"])

    def resolve_and_export() -> resolve.ResolvedModel:
        resolved = resolve.resolve_model(settings, model_ref or "production")
        artifacts.export_model(settings, resolved.model_uri, model.path)
        return resolved

    outcome = run_step("resolve-model", resolve_and_export, settings.step_retry_seconds)
    resolved = outcome.value
    if resolved is None:
        leave_empty(model.path)
        return outputs("", outcome.refused)
    model.metadata.update(resolved.metadata())
    return outputs(resolved.version, "")
