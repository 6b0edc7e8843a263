"""The register component: register the gate's winner and give it the `candidate` alias."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from typing import Any, NamedTuple

from kfp.dsl import Dataset, Input, Model

from components import component


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def register(  # pylint: disable=too-many-arguments,too-many-positional-arguments  # one per KFP input
    parent_run_id: str,
    lineage: dict[str, Any],
    winner: str,
    train_split: Input[Dataset],
    validation_split: Input[Dataset],
    test_split: Input[Dataset],
    baseline: Input[Model],
    challenger: Input[Model],
) -> NamedTuple(  # type: ignore[valid-type]
    "RegisterOutputs", [("version", str), ("refused", str)]
):
    """Refit the gate's winner (`baseline` or `xgboost`, with the hyperparameters validation chose) on every
    labelled cutoff (train, validation and test rows), calibrated out of fold, and register the refit as a
    new version of the churn model, tagged with its lineage (data commit, code and lock versions, seed,
    the evaluated model's test ROC-AUC, `refit_on_all_cutoffs`, the decision rule); point the `candidate`
    alias at it; the alias change is recorded on the version. Runs only when the gate passed. A training
    that reproduces an existing version registers nothing. Outputs the version. An input it refuses is
    the `refused` output, which the gate after it fails the run with, never retried.

    Args:
        parent_run_id: The MLflow training run.
        lineage: The lineage tags the features step recorded (data commit, code and lock versions, seed).
        winner: The model the gate chose: `baseline` or `xgboost`.
        train_split: The train split (parquet Dataset).
        validation_split: The validation split (parquet Dataset).
        test_split: The test split (parquet Dataset).
        baseline: The fitted baseline (an MLflow model directory).
        challenger: The fitted XGBoost model (an MLflow model directory).
    """
    from collections import namedtuple

    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit
    from churnops.training import artifacts
    from churnops.training import train as training

    settings = settings_or_exit()
    setup_logging(settings)
    splits, spec, config = artifacts.read_splits(
        {"train": train_split.path, "validation": validation_split.path, "test": test_split.path},
        test_split.metadata,
    )
    models = {
        name: artifacts.fitted_from_metadata(model.metadata)
        for name, model in (("baseline", baseline), ("xgboost", challenger))
    }
    outputs = namedtuple("outputs", ["version", "refused"])
    outcome = run_step(
        "register",
        lambda: training.register_candidate(
            settings, parent_run_id, models[winner], models["baseline"], lineage, splits, spec, config
        ),
        settings.step_retry_seconds,
    )
    return outputs(outcome.value or "", outcome.refused)
