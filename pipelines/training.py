"""The training pipeline (daily, on new data, or on demand).

features -> train baseline and XGBoost in parallel -> evaluate (metrics, ROC, the model gate) -> register the
winner when the model gate passes, each step followed by its refusal gate, under an exit handler that alerts on
failure.
"""

from typing import Any

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from churnops.platform import declaration as platform
from churnops.platform.settings import Settings, load_settings
from components.evaluate import evaluate
from components.features import features
from components.register import register
from components.train import train
from pipelines.common import LARGE, MODEL_FILES, configure, declare_pipeline, failure_alert, refusal_gate

NAME = "training"
# No KFP recurring run: one trigger starts training, Cloud Scheduler's daily message to the Cloud Build
# trigger that submits it with the components image that build pinned (cloudbuild.training.yaml).
CRON = platform.PIPELINE_CRONS[NAME]  # None: Cloud Scheduler starts it (cicd.trainingSchedule)
TRIGGER = "training is started by Cloud Scheduler through Cloud Build (cloudbuild.training.yaml), not by KFP"
MODELS = ("baseline", "xgboost")


DEFAULT_SEED = 42


def training_tasks(settings: Settings, data_commit: Any, seed: Any, reason: Any = None) -> None:
    """Add the training's tasks to the pipeline being defined: features -> train both models -> evaluate and gate
    -> register the winner when the model gate passes, each step followed by its refusal gate.

    The one composition of training in KFP: the training pipeline runs it under its exit handler, the drift
    pipeline under its condition on a firing check (``reason``: the drift check's tags for the training run), so
    a retraining has the same tasks, metrics and views as any training.
    """
    # pylint: disable=no-value-for-parameter,no-member
    # The KFP decorator turns each component into a factory of tasks: pylint sees the plain function
    # (outputs as parameters, a NamedTuple return without ``.outputs``).
    started = {"reason": reason} if reason is not None else {}
    feats = configure(
        features(data_ref=data_commit, seed=seed, pipeline_run=dsl.PIPELINE_JOB_ID_PLACEHOLDER, **started),
        settings,
        LARGE,
        display_name="features",
    )
    checked = refusal_gate(feats, "features", settings)
    trained, fitted = {}, []
    for model_name in MODELS:
        trained[model_name] = configure(
            train(
                model_name=model_name,
                parent_run_id=feats.outputs["parent_run_id"],
                lineage=feats.outputs["lineage"],
                train_split=feats.outputs["train"],
                validation_split=feats.outputs["validation"],
            ),
            settings,
            LARGE,
            display_name=f"train-{model_name}",
        ).after(checked)
        fitted.append(refusal_gate(trained[model_name], f"train-{model_name}", settings))
    # what evaluate and register both take: the training run, its splits and both models
    candidates = {
        "parent_run_id": feats.outputs["parent_run_id"],
        "lineage": feats.outputs["lineage"],
        "train_split": feats.outputs["train"],
        "validation_split": feats.outputs["validation"],
        "test_split": feats.outputs["test"],
        "baseline": trained["baseline"].outputs["model"],
        "challenger": trained["xgboost"].outputs["model"],
    }
    evaluated = configure(
        evaluate(**candidates),
        settings,
        MODEL_FILES,
        display_name="evaluate-and-gate",
    ).after(*fitted)
    # The refusal gate passes the winner's name on (empty when the model gate refused both) as its single
    # output, which the condition tests (kfp.local resolves a condition on a task's `Output` only); the
    # comparison is compiled, not evaluated here.
    winner = refusal_gate(evaluated, "evaluate", settings, passes=evaluated.outputs["winner"])
    with dsl.If(winner.output != "", name="gate-passed"):
        registered = configure(
            register(winner=winner.output, **candidates),
            settings,
            MODEL_FILES,
            display_name="register-candidate",
        )
        refusal_gate(registered, "register", settings)


def build() -> GraphComponent:
    """The training pipeline, its task settings read from the settings now (at compile or local run time)."""

    @declare_pipeline(
        name="churnops-training",
        description="Features at a lake commit -> baseline and XGBoost in parallel -> evaluate and gate -> "
        "register the winner as candidate.",
    )
    def training_pipeline(data_commit: str = "", seed: int = DEFAULT_SEED) -> None:
        """Train, evaluate and register a churn model.

        Args:
            data_commit: The lake commit id to train on; empty: the head of `main`.
            seed: The random seed of the split and of both fits.
        """
        settings = load_settings()
        alert = failure_alert(NAME, settings)
        with dsl.ExitHandler(alert, name="training-run"):
            training_tasks(settings, data_commit, seed)

    return training_pipeline
