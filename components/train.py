"""The train component: fit one estimator on the train split and log it to MLflow."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from typing import Any, NamedTuple

from kfp.dsl import Dataset, Input, Model, Output

from components import component


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def train(
    model_name: str,
    parent_run_id: str,
    lineage: dict[str, Any],
    train_split: Input[Dataset],
    validation_split: Input[Dataset],
    model: Output[Model],
) -> NamedTuple(  # type: ignore[valid-type]
    "TrainOutputs", [("run_id", str), ("validation_roc_auc", float), ("refused", str)]
):
    """Fit `model_name` (`baseline`: logistic regression, or `xgboost`) with the shared transform on the
    train split, with the training configuration the features task recorded on the split: each candidate
    of the hyperparameter grid is fitted on train and the best by validation ROC-AUC is kept, calibrated
    on validation, and given the decision rule of the retention terms. Log params, validation metrics,
    plots, feature importance, the feature spec and the model itself in an MLflow child run of the
    training run, with the data commit as lineage. The test split is not read here.
    Outputs the model (an MLflow model directory) and its run id. An input it refuses (e.g. a split
    without both classes) is the `refused` output (the model is then an empty file), which the gate after
    it fails the run with, never retried.

    Args:
        model_name: `baseline` (logistic regression) or `xgboost`.
        parent_run_id: The MLflow training run the fit is a child run of.
        lineage: The lineage tags the features step recorded.
        train_split: The train split (parquet Dataset).
        validation_split: The validation split (parquet Dataset).
        model: The fitted model (an MLflow model directory, written).
    """
    from collections import namedtuple

    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import leave_empty, run_step
    from churnops.platform.settings import settings_or_exit
    from churnops.training import artifacts
    from churnops.training import train as training

    settings = settings_or_exit()
    setup_logging(settings)
    splits, spec, config = artifacts.read_splits(
        {"train": train_split.path, "validation": validation_split.path},
        train_split.metadata,
    )
    outputs = namedtuple("outputs", ["run_id", "validation_roc_auc", "refused"])
    outcome = run_step(
        f"train-{model_name}",
        lambda: training.fit_model(settings, model_name, splits, spec, lineage, parent_run_id, config),
        settings.step_retry_seconds,
    )
    fitted = outcome.value
    if fitted is None:
        leave_empty(model.path)
        return outputs("", 0.0, outcome.refused)
    artifacts.export_model(settings, fitted.model_uri, model.path)
    model.metadata.update(artifacts.model_metadata(fitted))
    return outputs(fitted.run_id, fitted.metrics["validation_roc_auc"], "")
