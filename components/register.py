"""The register component: register the challenger and give it the `candidate` alias."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.


from kfp import dsl
from kfp.dsl import Input, Model

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(parent_run_id: str, lineage: dict, challenger: Input[Model], baseline_test_roc_auc: float) -> str:
    """Register the challenger's MLflow model as a new version of the churn model, tagged with its
    lineage (data commit, code and lock versions, seed, test ROC-AUC), and point the `candidate`
    alias at it; the alias change is recorded on the version. Runs only when the gate passed.
    Returns the version.
    """
    from churnops.platform.logs import setup_logging
    from churnops.platform.settings import get_settings
    from churnops.training import train as training

    settings = get_settings()
    setup_logging(settings)
    fitted = training.fitted_from_metadata(challenger.metadata)
    return training.register_candidate(settings, parent_run_id, fitted, baseline_test_roc_auc, lineage)
