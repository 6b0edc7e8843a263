"""The drift pipeline (daily): publish the online feature snapshot, then check it for drift against production;
beside them, judge production on the labels matured since its training data."""

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from churnops.platform.settings import load_settings
from components.drift import drift_check, online_features, performance_check
from pipelines.common import LARGE, configure, declare_pipeline, failure_alert, refusal_gate

NAME = "drift"
CRON = "0 0 5 * * *"  # daily at 05:00 UTC, after training (02:30) and scoring (04:00)


def build() -> GraphComponent:
    """The drift pipeline, its task settings read from the settings now (at compile or local run time)."""

    @declare_pipeline(
        name="churnops-drift",
        description="Drift monitoring: publish the online features of the head of the lake's main branch, compare them "
        "with the training features of the model version holding `model_ref` (PSI per feature and for the prediction), "
        "record the report in the lake and MLflow, alert when it fires and, if `retrain`, train with the report as "
        "reason; judge the same version on the labels matured since its training data (ROC-AUC, calibration, "
        "precision at k in MLflow, alert when it degraded).",
    )
    def drift_pipeline(data_ref: str = "main", model_ref: str = "production", retrain: bool = True) -> None:
        """Check the online features for drift.

        Args:
            data_ref: The lake branch or commit whose online features are published and checked, and whose matured
                labels judge the model.
            model_ref: The registry alias or version whose training features are the reference, and which is judged.
            retrain: Whether a firing check trains a new model.
        """
        settings = load_settings()
        alert = failure_alert(NAME, settings)
        with dsl.ExitHandler(alert, name="drift-run"):
            snapshot = configure(online_features(data_ref=data_ref), settings, LARGE, display_name="online-features")
            # At compile time a component call is a PipelineTask; pylint sees the function's NamedTuple.
            # pylint: disable=no-member
            published = refusal_gate(snapshot, "online-features", settings, passes=snapshot.outputs["snapshot_commit"])
            checked = configure(
                drift_check(snapshot_commit=published.output, model_ref=model_ref, retrain=retrain),
                settings,
                LARGE,
                display_name="drift-check",
            )
            refusal_gate(checked, "drift-check", settings)
            judged = configure(
                performance_check(data_ref=data_ref, model_ref=model_ref),
                settings,
                LARGE,
                display_name="performance-check",
            )
            refusal_gate(judged, "performance-check", settings)

    return drift_pipeline
