"""The evaluate component: both models on the test split, the KFP metrics views, and the gate."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.


from typing import NamedTuple

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    parent_run_id: str,
    test_split: Input[Dataset],
    baseline: Input[Model],
    challenger: Input[Model],
    metrics: Output[Metrics],
    challenger_curves: Output[ClassificationMetrics],
) -> NamedTuple("EvaluateOutputs", [("passed", bool), ("reasons", str)]):  # type: ignore[valid-type]
    """Score the baseline and the challenger (XGBoost) on the test split: accuracy, precision, recall,
    F1, ROC-AUC and PR-AUC per model (the run's Metrics view), the challenger's ROC curve and
    confusion matrix (the ROC and confusion-matrix views), then the gate: the challenger must beat
    the baseline and be no worse than the `production` model by more than the margin. Outputs the
    decision and its reasons; the decision is also recorded on the MLflow training run.
    """
    from collections import namedtuple

    from churnops.platform.logs import setup_logging
    from churnops.platform.settings import get_settings
    from churnops.training import train as training

    settings = get_settings()
    setup_logging(settings)
    splits, spec = training.read_splits({"test": test_split.path}, test_split.metadata)
    report = training.evaluate_models(
        settings,
        parent_run_id,
        {"baseline": baseline.metadata["model_uri"], "xgboost": challenger.metadata["model_uri"]},
        splits["test"],
        spec,
    )
    for name, value in report.flat_metrics().items():
        metrics.log_metric(name, value)
    curve = report.roc["xgboost"]
    if curve["fpr"]:
        challenger_curves.log_roc_curve(curve["fpr"], curve["tpr"], curve["thresholds"])
    challenger_curves.log_confusion_matrix(["stays", "churns"], report.confusion["xgboost"])
    outputs = namedtuple("EvaluateOutputs", ["passed", "reasons"])
    return outputs(report.gate.passed, "; ".join(report.gate.reasons))
