"""The evaluate component: both models on the test split, the KFP metrics views, and the gate."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(  # pylint: disable=too-many-arguments,too-many-positional-arguments  # one per KFP input/output
    parent_run_id: str,
    lineage: dict,
    test_split: Input[Dataset],
    baseline: Input[Model],
    challenger: Input[Model],
    metrics: Output[Metrics],
    winner_curves: Output[ClassificationMetrics],
    gate_report: Output[Markdown],
) -> str:
    """Score the baseline and the challenger (XGBoost) on the test split: accuracy, precision, recall,
    F1, ROC-AUC and PR-AUC per model (the run's Metrics view), then the gate: the winner of challenger
    vs baseline (paired bootstrap of the ROC-AUC difference) must not lose to the `production` model by
    more than the margin. The winner's ROC curve and confusion matrix are the ROC and confusion-matrix
    views; the decision, its intervals and reasons are the gate report (also recorded on the MLflow
    training run). The gate's margin, confidence and resamples are the training configuration the
    features task recorded on the split, its seed the training seed (`lineage`). Returns the name of
    the model to register (`baseline` or `xgboost`), or an empty string when the gate refused both.

    Args:
        parent_run_id: The MLflow training run the evaluation is recorded on.
        lineage: The lineage tags the features step recorded (the training seed among them).
        test_split: The test split (parquet Dataset).
        baseline: The fitted baseline (an MLflow model directory).
        challenger: The fitted XGBoost model (an MLflow model directory).
        metrics: Both models' test metrics (the Metrics view).
        winner_curves: The winner's ROC curve and confusion matrix.
        gate_report: The gate decision, its intervals and reasons (Markdown).
    """
    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit
    from churnops.training import train as training

    settings = settings_or_exit()
    setup_logging(settings)
    splits, spec, config = training.read_splits({"test": test_split.path}, test_split.metadata)
    report = run_step(
        "evaluate",
        lambda: training.evaluate_models(
            settings,
            parent_run_id,
            {"baseline": baseline.metadata["model_uri"], "xgboost": challenger.metadata["model_uri"]},
            splits["test"],
            spec,
            lineage,
            config,
        ),
        settings.step_retry_seconds,
    ).result("evaluate")
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
    return decision.winner if decision.passed and decision.winner else ""
