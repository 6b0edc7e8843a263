"""The scoring pipeline (daily): the production model scores every active customer into ``predictions/``.

resolve-model (the alias -> one registered version, a Model artifact) -> score with that version.
"""

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from churnops.platform import declaration as platform
from churnops.platform.settings import load_settings
from components.model import resolve_model
from components.score import score
from pipelines.common import LARGE, configure, declare_pipeline, failure_alert, refusal_gate

NAME = "scoring"
CRON = platform.PIPELINE_CRONS[NAME]


def build() -> GraphComponent:
    """The scoring pipeline, its task settings read from the settings now (at compile or local run time)."""

    @declare_pipeline(
        name="churnops-scoring",
        description="Batch scoring: the production model scores every active customer at the head of the lake's main "
        "branch; the predictions are one lake commit under predictions/.",
    )
    def scoring_pipeline(data_ref: str = "main", alias: str = "production") -> None:
        """Score every active customer.

        Args:
            data_ref: The lake branch or commit id whose customers are scored.
            alias: The registry alias of the model that scores.
        """
        settings = load_settings()
        alert = failure_alert(NAME, settings)
        with dsl.ExitHandler(alert, name="scoring-run"):
            # At compile time a component call is a PipelineTask; pylint sees the function (a NamedTuple return, output
            # artifacts as parameters).
            # pylint: disable=no-member,no-value-for-parameter
            resolved = configure(resolve_model(model_ref=alias), settings, display_name="resolve-model")
            chosen = refusal_gate(resolved, "resolve-model", settings)
            scored = configure(
                score(data_ref=data_ref, model=resolved.outputs["model"]), settings, LARGE, display_name="score"
            ).after(chosen)
            refusal_gate(scored, "score", settings)

    return scoring_pipeline
