"""The drift pipeline (daily): publish the online feature snapshot, then check it for drift against production;
beside them, judge production on the labels matured since its training data. Both checks take the model from
resolve-model (the alias -> one registered version, a Model artifact); a check that fires with `retrain` runs the
training's own tasks (:func:`pipelines.training.training_tasks`) under a condition on it."""

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from churnops.platform import declaration as platform
from churnops.platform.settings import load_settings
from components.drift import drift_check, online_features, performance_check
from components.model import resolve_model
from pipelines.common import LARGE, SNAPSHOT, configure, declare_pipeline, failure_alert, refusal_gate
from pipelines.training import DEFAULT_SEED, training_tasks

NAME = "drift"
CRON = platform.PIPELINE_CRONS[NAME]


def build() -> GraphComponent:
    """The drift pipeline, its task settings read from the settings now (at compile or local run time)."""

    @declare_pipeline(
        name="churnops-drift",
        description="Drift monitoring: publish the online features of the head of the lake's main branch, compare them "
        "with the training features of the model version holding `model_ref` (PSI per feature and for the prediction), "
        "record the report in the lake and MLflow, alert when it fires and, if `retrain`, run the training pipeline's "
        "tasks with the report as reason; judge the same version on the labels matured since its training data "
        "(ROC-AUC, calibration, precision at k in MLflow, alert when it degraded).",
    )
    def drift_pipeline(data_ref: str = "main", model_ref: str = "production", retrain: bool = True) -> None:
        """Check the online features for drift.

        Args:
            data_ref: The lake branch or commit whose online features are published and checked, and whose matured
                labels judge the model.
            model_ref: The registry alias or version whose training features are the reference, and which is judged.
            retrain: Whether a firing check runs the training (its tasks, in this run, on the head of `main`).
        """
        settings = load_settings()
        alert = failure_alert(NAME, settings)
        with dsl.ExitHandler(alert, name="drift-run"):
            snapshot = configure(online_features(data_ref=data_ref), settings, SNAPSHOT, display_name="online-features")
            # At compile time a component call is a PipelineTask; pylint sees the function's NamedTuple, and output
            # artifacts as parameters.
            # pylint: disable=no-member,no-value-for-parameter
            published = refusal_gate(snapshot, "online-features", settings, passes=snapshot.outputs["snapshot_commit"])
            resolved = configure(resolve_model(model_ref=model_ref), settings, display_name="resolve-model")
            chosen = refusal_gate(resolved, "resolve-model", settings)
            checked = configure(
                drift_check(snapshot_commit=published.output, model=resolved.outputs["model"], retrain=retrain),
                settings,
                LARGE,
                display_name="drift-check",
            ).after(chosen)
            # The gate passes `true` on when the check fired and `retrain` is set (kfp.local resolves a condition on a
            # task's single `Output` only).
            drifted = refusal_gate(checked, "drift-check", settings, passes=checked.outputs["retrain"])
            with dsl.If(drifted.output == "true", name="retrain-on-drift"):
                training_tasks(settings, "", DEFAULT_SEED, reason=checked.outputs["retrain_reason"])
            judged = configure(
                performance_check(data_ref=data_ref, model=resolved.outputs["model"]),
                settings,
                LARGE,
                display_name="performance-check",
            ).after(chosen)
            refusal_gate(judged, "performance-check", settings)

    return drift_pipeline
