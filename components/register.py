"""The register component: register the gate's winner and give it the `candidate` alias."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from kfp import dsl
from kfp.dsl import Input, Model

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(parent_run_id: str, lineage: dict, winner: str, baseline: Input[Model], challenger: Input[Model]) -> str:
    """Register the gate's winner (`baseline` or `xgboost`) as a new version of the churn model, tagged
    with its lineage (data commit, code and lock versions, seed, test ROC-AUC), and point the
    `candidate` alias at it; the alias change is recorded on the version. Runs only when the gate
    passed. A training that reproduces an existing version registers nothing. Returns the version.

    Args:
        parent_run_id: The MLflow training run.
        lineage: The lineage tags the features step recorded (data commit, code and lock versions, seed).
        winner: The model the gate chose: `baseline` or `xgboost`.
        baseline: The fitted baseline (an MLflow model directory).
        challenger: The fitted XGBoost model (an MLflow model directory).
    """
    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit
    from churnops.training import train as training

    settings = settings_or_exit()
    setup_logging(settings)
    models = {
        name: training.fitted_from_metadata(model.metadata)
        for name, model in (("baseline", baseline), ("xgboost", challenger))
    }
    return run_step(
        "register",
        lambda: training.register_candidate(
            settings, parent_run_id, models[winner], models["baseline"].metrics["test_roc_auc"], lineage
        ),
        settings.step_retry_seconds,
    ).result("register")
