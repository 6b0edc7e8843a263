"""The models training fits: the candidates per model, the validation search among them, calibration, the
decision rule, and how a fitted model is logged to MLflow.

:mod:`churnops.training.train` composes these into runs (fit, gate, refit, register); the behavioural
tests and benchmarks fit a model the same way with :func:`fit_chosen`, without logging.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from importlib import metadata
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema, TensorSpec
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from churnops.model.predict import DecisionRule
from churnops.model.spec import FeatureSpec
from churnops.training import evaluate
from churnops.training.config import TrainingConfig
from churnops.training.features import LABEL
from churnops.training.transform import (
    MODEL_CODE_PATHS,
    SKOPS_TRUSTED_TYPES,
    build_transformer,
    encoded_direction,
    selected_feature_names,
)

BASELINE = "baseline"


CHALLENGER = "xgboost"


MODEL_ARTIFACT = "model"


MODEL_REQUIREMENTS = ("mlflow", "scikit-learn", "xgboost-cpu", "pandas", "numpy", "scipy", "cloudpickle", "skops")


def model_requirements() -> list[str]:
    """The pins a logged model declares: the installed version of each package it needs to load."""
    pins = []
    for name in MODEL_REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def make_estimators(
    seed: int, xgb_params: dict[str, Any], config: "TrainingConfig | None" = None
) -> dict[str, list[BaseEstimator]]:
    """The candidates per model, seeded and unweighted (calibration on validation makes their scores
    probabilities): the baseline per C of ``config.baseline_c_grid``, the challenger per depth of
    ``config.challenger_depth_grid`` (default grids without a config)."""
    config = config or TrainingConfig()
    return {
        BASELINE: [LogisticRegression(C=c, max_iter=2000, random_state=seed) for c in config.baseline_c_grid],
        CHALLENGER: [
            XGBClassifier(
                **{**xgb_params, "max_depth": depth},
                tree_method="hist",
                n_jobs=1,
                random_state=seed,
                eval_metric="logloss",
            )
            for depth in config.challenger_depth_grid
        ],
    }


def tuned_params(estimator: BaseEstimator) -> dict[str, Any]:
    """The hyperparameters the validation search chose among (``C`` or ``max_depth``) as the estimator holds them."""
    params = estimator.get_params()
    return {"C": params["C"]} if isinstance(estimator, LogisticRegression) else {"max_depth": params["max_depth"]}


def constrained(estimator: BaseEstimator, encoded: list[str], directions: dict[str, int]) -> BaseEstimator:
    """``estimator`` with XGBoost's ``monotone_constraints`` set on the ``encoded`` columns it will be fitted on
    (the transform's output names, in order): each column's declared direction (:func:`encoded_direction`), 0
    where none is declared. Raising a column with direction +1 never lowers the score, -1 never raises it. Other
    estimators are returned unchanged (the baseline is linear: its direction per column is its coefficient's
    sign, which the behavioural checks test)."""
    if not isinstance(estimator, XGBClassifier):
        return estimator
    signs = tuple(encoded_direction(name, directions) for name in encoded)
    return estimator.set_params(monotone_constraints=signs if any(signs) else None)


def fit_pipeline(  # pylint: disable=too-many-arguments,too-many-positional-arguments  # the fit's inputs
    spec: FeatureSpec,
    estimator: BaseEstimator,
    config: "TrainingConfig",
    features: pd.DataFrame,
    labels: np.ndarray,
    wrap: Callable[[BaseEstimator], BaseEstimator] | None = None,
) -> Pipeline:
    """The model (:func:`build_model`) fitted on ``features`` and ``labels``: the transform first, then the
    estimator, constrained to ``config.monotone_directions`` on the columns the transform selected
    (:func:`constrained`) and, with ``wrap``, wrapped (e.g. in an out-of-fold calibration) before its fit."""
    transform = build_transformer(spec, config.select_percentile)
    encoded = transform.fit_transform(features, labels)
    final = constrained(estimator, selected_feature_names(transform), config.monotone_directions)
    if wrap is not None:
        final = wrap(final)
    final.fit(encoded, labels)
    return Pipeline([("transform", transform), ("model", final)])


def calibrate(model: Pipeline, frame: pd.DataFrame, spec: FeatureSpec, method: str) -> Pipeline:
    """``model`` (fitted) with its estimator calibrated on ``frame`` (validation): scikit-learn's
    CalibratedClassifierCV over the frozen estimator, Platt (``sigmoid``) or ``isotonic``. The transform
    and the estimator are not refitted."""
    transform = model.named_steps["transform"]
    calibrated = CalibratedClassifierCV(FrozenEstimator(model.named_steps["model"]), method=method)
    calibrated.fit(transform.transform(frame[spec.columns]), frame[LABEL].to_numpy())
    return Pipeline([("transform", transform), ("model", calibrated)])


def choose_rule(config: "TrainingConfig", probability: np.ndarray) -> DecisionRule:
    """The decision rule of ``config``'s retention terms, its top-k threshold taken from ``probability``."""
    return evaluate.decision_rule(
        config.decision_rule,
        probability,
        capacity_share=config.capacity_share,
        save_rate=config.save_rate,
        customer_value=config.customer_value,
        contact_cost=config.contact_cost,
    )


def model_signature(spec: FeatureSpec, X: pd.DataFrame, probability: np.ndarray) -> ModelSignature:
    """Inputs from the spec (every column optional: serving may send nulls); outputs from predict_proba."""
    columns: list[ColSpec | TensorSpec] = [ColSpec("double", name, required=False) for name in spec.numeric]
    columns += [ColSpec("string", name, required=False) for name in spec.categorical]
    inputs = Schema(columns)
    return ModelSignature(inputs=inputs, outputs=infer_signature(X.head(5), probability).outputs)


def select_candidate(
    candidates: list[BaseEstimator], splits: dict[str, pd.DataFrame], spec: FeatureSpec, config: "TrainingConfig"
) -> tuple[Pipeline, dict[str, float]]:
    """Fit every candidate on train and keep the one with the best validation ROC-AUC (the first on a tie);
    return it and each candidate's validation ROC-AUC (``search_<param>_<value>_validation_roc_auc``)."""
    train, validation = splits["train"], splits["validation"]
    if not candidates:
        raise ValueError("no candidate to choose from: the hyperparameter grid is empty")
    best_rank, best = -math.inf, None
    scores: dict[str, float] = {}
    for estimator in candidates:
        model = fit_pipeline(spec, estimator, config, train[spec.columns], train[LABEL].to_numpy())
        probability = evaluate.churn_probability(model, validation[spec.columns])
        auc = evaluate.classification_metrics(validation[LABEL], probability)["roc_auc"]
        label = "_".join(f"{key}_{value}" for key, value in tuned_params(estimator).items())
        scores[f"search_{label}_validation_roc_auc"] = auc
        rank = -math.inf if math.isnan(auc) else auc
        if best is None or rank > best_rank:
            best_rank, best = rank, model
    assert best is not None  # there was a candidate
    return best, scores


def input_example(spec: FeatureSpec) -> pd.DataFrame:
    """The logged model's input example: one synthetic row of the spec's types (zeros and nulls).

    It shows the input's shape without any customer's values (``docs/security.md``): the model
    accepts nulls in every column, as serving may send them.
    """
    numeric = {name: pd.Series([0.0], dtype="float64") for name in spec.numeric}
    categorical = {name: pd.Series([None], dtype=object) for name in spec.categorical}
    return pd.DataFrame({**numeric, **categorical})[spec.columns]


def fit_chosen(
    name: str, splits: dict[str, pd.DataFrame], spec: FeatureSpec, config: TrainingConfig, seed: int
) -> tuple[Pipeline, Pipeline]:
    """Model ``name`` as training fits it, without logging: (the candidate validation chose, fitted on train;
    that model calibrated on validation)."""
    raw, _ = select_candidate(make_estimators(seed, config.xgb_params, config)[name], splits, spec, config)
    return raw, calibrate(raw, splits["validation"], spec, config.calibration)


def log_model(model: Pipeline, spec: FeatureSpec, example: pd.DataFrame, recorded: dict[str, Any]) -> str:
    """Log ``model`` (the churn Pipeline) in the active run, its outputs' signature from ``example`` rows and a
    synthetic input example (:func:`input_example`); return its model URI."""
    info = mlflow.sklearn.log_model(
        model,
        name=MODEL_ARTIFACT,
        signature=model_signature(spec, input_example(spec), model.predict_proba(example)),
        input_example=input_example(spec),
        pip_requirements=model_requirements(),
        pyfunc_predict_fn="predict_proba",
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
        code_paths=list(MODEL_CODE_PATHS),
        metadata=recorded,
    )
    return str(info.model_uri)
