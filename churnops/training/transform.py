"""The preprocessing half of the model: one scikit-learn object, fitted on training data only.

``build_transformer(spec)`` returns an unfitted :class:`~sklearn.pipeline.Pipeline`:

1. ``columns``: a :class:`~sklearn.compose.ColumnTransformer` that picks the spec's columns (anything
   else in the frame is dropped) and
   - numeric: coerce to float, impute the training median (a column empty in training becomes 0),
     standard-scale;
   - categorical: coerce to text, impute ``"missing"``, one-hot encode with
     ``handle_unknown="ignore"`` (a category unseen in training encodes as all zeros);
2. ``select``: :class:`~sklearn.feature_selection.SelectPercentile` keeps the best-scoring
   ``percentile`` % of the encoded columns by ANOVA F-score; constant columns and undefined scores
   (e.g. a single-class target) score 0, so they are dropped first and never make the fit fail.

:func:`build_model` appends the estimator, giving the single Pipeline that is logged to MLflow and
loaded by serving.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.feature_selection import SelectPercentile
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import churnops_preprocessing
from churnops.model.spec import FeatureSpec
from churnops_preprocessing import anova_scores, as_float, as_text

MISSING_CATEGORY = "missing"
# The model's own functions (as_float, as_text, anova_scores) live in the stand-alone package
# churnops_preprocessing, which training logs with the model (MLflow code_paths): the artifact loads
# without this repository. The names stay importable from here for models logged before that.
MODEL_CODE_PATHS: tuple[str, ...] = (str(Path(churnops_preprocessing.__file__).parent),)
# Types a saved model references beyond what skops trusts by default (MLflow saves sklearn models in
# the skops format and records this list with the model, so loading needs no extra argument).
SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    *(f"churnops_preprocessing.{name}" for name in churnops_preprocessing.__all__),
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.frozen._frozen.FrozenEstimator",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
)
DEFAULT_PERCENTILE = 90.0
ANY_CATEGORY = "*"  # with :func:`encodes`: any category of a categorical column
__all__ = [
    "ANY_CATEGORY",
    "MISSING_CATEGORY",
    "MODEL_CODE_PATHS",
    "SKOPS_TRUSTED_TYPES",
    "anova_scores",
    "as_float",
    "as_text",
    "build_model",
    "build_transformer",
    "encoded_direction",
    "encodes",
    "selected_feature_names",
]


def build_transformer(spec: FeatureSpec, percentile: float = DEFAULT_PERCENTILE) -> Pipeline:
    """An unfitted preprocessing pipeline for ``spec``; keeps the best ``percentile`` % of encoded columns."""
    if not spec.columns:
        raise ValueError("the feature spec names no columns")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
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
    select = SelectPercentile(score_func=anova_scores, percentile=percentile)
    return Pipeline([("columns", columns), ("select", select)])


def build_model(spec: FeatureSpec, estimator: BaseEstimator, percentile: float = DEFAULT_PERCENTILE) -> Pipeline:
    """The full model: ``transform`` (see :func:`build_transformer`) followed by ``model``."""
    return Pipeline([("transform", build_transformer(spec, percentile)), ("model", estimator)])


def selected_feature_names(model: Pipeline) -> list[str]:
    """Names of the columns a fitted transformer (or full model) hands to the estimator."""
    transformer = model.named_steps.get("transform", model)
    return [str(name) for name in transformer.get_feature_names_out()]


def encodes(encoded: str, column: str, category: str | None = None) -> bool:
    """Whether ``encoded`` (the name of a column the transform hands the estimator: ``numeric__<column>`` or
    ``categorical__<column>_<category>``) encodes ``column``: without ``category``, numeric ``column`` (an fnmatch
    pattern of column names); with it, that category of categorical ``column`` (:data:`ANY_CATEGORY`: any of its
    categories)."""
    kind, _, name = encoded.partition("__")
    if category is None:
        return kind == "numeric" and fnmatchcase(name, column)
    prefix = f"{column}_"
    return kind == "categorical" and name.startswith(prefix) and category in (ANY_CATEGORY, name.removeprefix(prefix))


def encoded_direction(encoded: str, directions: Mapping[str, int]) -> int:
    """The declared direction (+1, -1; 0 when none is declared) of one encoded column the transform hands the
    estimator (:func:`encodes`), from ``directions``: keys are numeric columns as fnmatch patterns, or
    ``column=category`` for one category of a categorical column."""
    for key, direction in directions.items():
        column, separator, category = key.partition("=")
        if encodes(encoded, column, category if separator else None):
            return int(direction)
    return 0
