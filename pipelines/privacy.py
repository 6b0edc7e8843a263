"""The purge pipeline (daily): complete the erasures whose grace period has passed, in every store."""

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from churnops.platform import declaration as platform
from churnops.platform.settings import load_settings
from components.privacy import purge
from pipelines.common import LARGE, configure, declare_pipeline, failure_alert, refusal_gate

NAME = "purge"
CRON = platform.PIPELINE_CRONS[NAME]


def build() -> GraphComponent:
    """The purge pipeline, its task settings read from the settings now (at compile or local run time)."""

    @declare_pipeline(
        name="churnops-purge",
        description="Erasure purge: every erasure whose grace period has passed is completed in the lake's history, "
        "the raw bucket, MLflow run artifacts and the pipeline root, and recorded on its erasure record.",
    )
    def purge_pipeline(as_of: str = "") -> None:
        """Complete the due erasures.

        Args:
            as_of: Complete the erasures due at this UTC time (ISO 8601, not later than now); empty means now.
        """
        settings = load_settings()
        alert = failure_alert(NAME, settings)
        with dsl.ExitHandler(alert, name="purge-run"):
            purged = configure(purge(as_of=as_of), settings, LARGE, display_name="purge")
            refusal_gate(purged, "purge", settings)

    return purge_pipeline
