"""The score component: batch predictions of the `production` model for every active customer."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from typing import NamedTuple

from kfp.dsl import Input, Model

from components import component


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def score(data_ref: str, model: Input[Model]) -> NamedTuple(  # type: ignore[valid-type]
    "ScoreOutputs",
    [
        ("commit_id", str),
        ("data_commit", str),
        ("model_version", str),
        ("rows", int),
        ("cutoff", str),
        ("refused", str),
    ],
):
    """Score every customer active at the head of `data_ref` (a lake branch or commit; `main` by
    default) with `model`, the registered version the resolve step chose (its metadata names the version and
    the alias it held), and publish the predictions (customer token, churn probability and label, model
    version, data commit, cutoff) under `predictions/` in one lake commit merged into `main`. No active
    customer is the `refused` output, which the gate after it fails the run with, never retried.

    Args:
        data_ref: The lake branch or commit whose active customers are scored.
        model: The registered version that scores (the resolve step's Model artifact).
    """
    from collections import namedtuple

    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit
    from churnops.training import batch

    settings = settings_or_exit()
    setup_logging(settings)
    outputs = namedtuple("outputs", ["commit_id", "data_commit", "model_version", "rows", "cutoff", "refused"])
    outcome = run_step(
        "score",
        lambda: batch.score_customers(
            settings, data_ref or "main", str(model.metadata["model_ref"]), version=str(model.metadata["version"])
        ),
        settings.step_retry_seconds,
    )
    result = outcome.value
    if result is None:
        return outputs("", "", "", 0, "", outcome.refused)
    return outputs(result.commit_id, result.data_commit, result.model_version, result.rows, result.cutoff, "")
