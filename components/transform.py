"""The preprocessing half of the model: one scikit-learn object, fitted on training data only.

``build_transformer(spec)`` returns an unfitted :class:`~sklearn.pipeline.Pipeline`:

1. ``columns``: a :class:`~sklearn.compose.ColumnTransformer` that picks the spec's columns (anything
   else in the frame is dropped) and
   - numeric: coerce to float, impute the training median (a column empty in training becomes 0),
     standard-scale;
   - categorical: coerce to text, impute ``"missing"``, one-hot encode with
     ``handle_unknown="ignore"`` (a category unseen in training encodes as all zeros);
2. ``select``: :class:`~sklearn.feature_selection.SelectKBest` on the ANOVA F-score; constant
   columns and undefined scores (e.g. a single-class target) score 0, so they are dropped first
   and never make the fit fail.

:func:`build_model` appends the estimator, giving the single Pipeline that is logged to MLflow and
loaded by serving.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from components.features import FeatureSpec

MISSING_CATEGORY = "missing"
DEFAULT_K_BEST = 40


def as_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as float64 (unparseable values and pandas NA become NaN)."""
    return frame.apply(pd.to_numeric, errors="coerce").astype(np.float64)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as Python strings, with every kind of missing value as NaN."""
    return frame.astype(str).where(frame.notna(), np.nan).astype(object)


def anova_scores(X: Any, y: Any) -> np.ndarray:
    """ANOVA F-scores with undefined values (constant column, single class) replaced by 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        scores, _ = f_classif(X, y)
    return np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0, posinf=np.finfo(np.float64).max)


def build_transformer(spec: FeatureSpec, k_best: int | str = DEFAULT_K_BEST) -> Pipeline:
    """An unfitted preprocessing pipeline for ``spec``; keeps the ``k_best`` best columns (or "all")."""
    if not spec.columns:
        raise ValueError("the feature spec names no columns")
    if not (k_best == "all" or (isinstance(k_best, int) and k_best > 0)):
        raise ValueError(f"k_best must be a positive integer or 'all', got {k_best!r}")
    numeric = Pipeline(
        [
            ("to_float", FunctionTransformer(as_float, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    categorical = Pipeline(
        [
            ("to_text", FunctionTransformer(as_text, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY, keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    columns = ColumnTransformer(
        [("numeric", numeric, list(spec.numeric)), ("categorical", categorical, list(spec.categorical))],
        remainder="drop",
    )
    return Pipeline([("columns", columns), ("select", SelectKBest(score_func=anova_scores, k=k_best))])


def build_model(spec: FeatureSpec, estimator: BaseEstimator, k_best: int | str = DEFAULT_K_BEST) -> Pipeline:
    """The full model: ``transform`` (see :func:`build_transformer`) followed by ``model``."""
    return Pipeline([("transform", build_transformer(spec, k_best)), ("model", estimator)])


def selected_feature_names(model: Pipeline) -> list[str]:
    """Names of the columns a fitted transformer (or full model) hands to the estimator."""
    transformer = model.named_steps.get("transform", model)
    return [str(name) for name in transformer.get_feature_names_out()]
