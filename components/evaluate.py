"""The evaluate component: both models on the test split, the KFP metrics views, and the gate."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from typing import Any, NamedTuple

from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components import component


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def evaluate(  # pylint: disable=too-many-arguments,too-many-positional-arguments,too-many-locals  # one per KFP input/output
    parent_run_id: str,
    lineage: dict[str, Any],
    train_split: Input[Dataset],
    validation_split: Input[Dataset],
    test_split: Input[Dataset],
    baseline: Input[Model],
    challenger: Input[Model],
    metrics: Output[Metrics],
    winner_curves: Output[ClassificationMetrics],
    gate_report: Output[Markdown],
) -> NamedTuple(  # type: ignore[valid-type]
    "EvaluateOutputs", [("winner", str), ("refused", str)]
):
    """The gate: the winner of challenger (XGBoost) vs baseline chosen on the validation split (paired
    bootstrap over customers of the ROC-AUC difference), then both models scored once on the test split:
    accuracy, precision, recall, F1 at each model's decision threshold, ROC-AUC, PR-AUC, precision and
    lift at k, Brier, log-loss and calibration error per model (the run's Metrics view and each model's
    MLflow run); the winner must reach the minimum test ROC-AUC and not lose to the best recent
    `production` version on test by more than the margin. The winner's ROC curve and confusion matrix
    are the ROC and confusion-matrix views; the decision, its intervals and reasons are the gate report
    (also recorded on the MLflow training run). The gate's margin, confidence and resamples are the
    training configuration the features task recorded on the split, its seed the training seed (`lineage`).
    Outputs the name of the model to register (`baseline` or `xgboost`), or an empty string when the gate
    refused both. An input it refuses is the `refused` output (the views are then empty), which the gate
    task after it fails the run with, never retried.

    Args:
        parent_run_id: The MLflow training run the evaluation is recorded on.
        lineage: The lineage tags the features step recorded (the training seed among them).
        train_split: The train split (parquet Dataset): which customers training saw.
        validation_split: The validation split (parquet Dataset): where the winner is chosen.
        test_split: The test split (parquet Dataset): where the winner is confirmed.
        baseline: The fitted baseline (an MLflow model directory).
        challenger: The fitted XGBoost model (an MLflow model directory).
        metrics: Both models' test metrics (the Metrics view).
        winner_curves: The winner's ROC curve and confusion matrix.
        gate_report: The gate decision, its intervals and reasons (Markdown).
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
        {"train": train_split.path, "validation": validation_split.path, "test": test_split.path},
        test_split.metadata,
    )
    fitted = {
        name: artifacts.fitted_from_metadata(m.metadata)
        for name, m in (("baseline", baseline), ("xgboost", challenger))
    }
    outputs = namedtuple("outputs", ["winner", "refused"])
    outcome = run_step(
        "evaluate",
        lambda: training.evaluate_models(settings, parent_run_id, fitted, splits, spec, lineage, config),
        settings.step_retry_seconds,
    )
    report = outcome.value
    if report is None:
        leave_empty(metrics.path, winner_curves.path, gate_report.path)
        return outputs("", outcome.refused)
    for name, value in report.flat_metrics().items():
        metrics.log_metric(name, value)
    decision = report.gate
    shown = decision.winner or "xgboost"
    curve = report.roc[shown]
    if curve["fpr"]:
        winner_curves.log_roc_curve(curve["fpr"], curve["tpr"], curve["thresholds"])
    winner_curves.log_confusion_matrix(["stays", "churns"], report.confusion[shown])
    winner_curves.metadata["model"] = shown
    with open(gate_report.path, "w", encoding="utf-8") as out:
        out.write(decision.markdown())
    gate_report.metadata.update({"passed": decision.passed, "winner": decision.winner or ""})
    return outputs(decision.winner if decision.passed and decision.winner else "", "")
