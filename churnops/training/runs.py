"""The runs of a training: the fitted models its child runs hold, and how a retried step finds and reuses them.

A pipeline task that KFP retries runs again with the same inputs, in the same MLflow training run (the parent
run). Each child run is tagged with the step that opened it (``training_step``: ``fit`` or ``refit``) and its
model (``model_type``), and, once its model is logged, with the model's URI (``model_uri``, set last): a retried
step finds its child run by the first two and, when the third is there, reuses it instead of fitting again.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.entities import Run

from churnops.model import registry

logger = logging.getLogger(__name__)

# On each child run of a training run: which step opened it (``fit`` on train, ``refit`` on every labelled cutoff),
# and, set once its model is logged, the model's URI: a retried step finds its child run by the first and, when the
# second is there, reuses the run instead of fitting again.
STEP_TAG = "training_step"
MODEL_URI_TAG = "model_uri"
CHOSEN_PARAMS_TAG = "chosen_params"


@dataclass(frozen=True)
class FittedModel:
    """One fitted and logged model: its run, its logged model URI, its metrics (validation; test once
    evaluated), the hyperparameters validation chose and its decision rule."""

    name: str
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)
    decision_rule: dict[str, Any] = field(default_factory=dict)


def log_metrics_once(values: dict[str, float]) -> None:
    """Log ``values`` (NaN left out) in the active run, except the metrics it already holds: a retried step logs
    each metric once (a second value of the same key would be a second point in its history)."""
    active = mlflow.active_run()
    assert active is not None  # called inside a run
    held = mlflow.get_run(active.info.run_id).data.metrics
    mlflow.log_metrics({key: value for key, value in values.items() if key not in held and not math.isnan(value)})


def child_run_of(client: mlflow.MlflowClient, parent_run_id: str, name: str, step: str) -> Run | None:
    """The child run of ``parent_run_id`` that step ``step`` (``fit`` or ``refit``) opened for model ``name``
    (the oldest active one; None when no attempt opened one)."""
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    identity = {"parent_run_id": parent_run_id, "model_type": name, STEP_TAG: step}
    run_id = registry.find_run(client, experiment_id, identity)
    return client.get_run(run_id) if run_id else None


def reused(run: Run, metrics: dict[str, float]) -> FittedModel:
    """The model a completed child run holds (its model URI tag set), as the step that logged it returned it."""
    tags = run.data.tags
    rule = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/decision_rule.json")
    logger.info("child run %s already holds the fitted %s: reused", run.info.run_id, tags["model_type"])
    return FittedModel(
        tags["model_type"], run.info.run_id, tags[MODEL_URI_TAG], metrics, json.loads(tags[CHOSEN_PARAMS_TAG]), rule
    )


# END
