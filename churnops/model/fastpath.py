"""Scoring without the Pipeline: the fitted transformer's parameters compiled into array operations.

A logged churn model is a scikit-learn Pipeline (see :mod:`churnops.training.transform`): a
ColumnTransformer (numeric: coerce, impute the median, standard-scale; categorical: coerce to text,
impute ``"missing"``, one-hot encode), a ``SelectPercentile`` and an ``XGBClassifier``. Calling the
Pipeline on a one-row DataFrame spends almost all of its time in pandas and scikit-learn
bookkeeping, not in arithmetic. :class:`FastPath` reads the fitted parameters once (imputation
values, means and scales, category tables, the selected columns) and scores rows given as arrays:

- numeric: ``(x if x is not NaN else median - mean) / scale`` for the selected numeric columns;
- categorical: a dictionary from category to output column (unknown categories and unselected
  columns set nothing, exactly like ``handle_unknown="ignore"`` followed by the selection);
- the float64 matrix goes to the booster's ``inplace_predict`` with the classifier's own
  ``missing`` value and iteration range;
- a calibrated model (the estimator a ``CalibratedClassifierCV`` with one calibrated classifier:
  a frozen, prefit estimator calibrated on validation, or a refit with ``ensemble=False``) passes
  the booster's probability through its fitted calibrator, as scikit-learn does.

The same float64 operations in the same order as scikit-learn give the same matrix, so the
probabilities equal the Pipeline's ``predict_proba`` (a property-based test checks it on arbitrary
rows). :meth:`FastPath.from_pipeline` raises :class:`UnsupportedModel` for any model that is not
exactly this shape; callers then fall back to the Pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.feature_selection import SelectPercentile
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from xgboost import XGBClassifier

from churnops.errors import ChurnopsError


class UnsupportedModel(ChurnopsError):
    """The model is not the Pipeline shape the fast path understands (use the Pipeline instead)."""


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise UnsupportedModel(reason)


def _steps(pipeline: Any, names: Sequence[str]) -> list[Any]:
    _require(isinstance(pipeline, Pipeline), f"expected a Pipeline, got {type(pipeline).__name__}")
    _require(
        [name for name, _ in pipeline.steps] == list(names),
        f"expected steps {list(names)}, got {[name for name, _ in pipeline.steps]}",
    )
    return [step for _, step in pipeline.steps]


def _coercion(step: Any, function_name: str) -> None:
    _require(
        isinstance(step, FunctionTransformer)
        and getattr(step.func, "__name__", "") == function_name
        and not step.kw_args
        and step.inverse_func is None,
        f"expected the {function_name} coercion step",
    )


def model_columns(model: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numeric, categorical) input column names of a fitted churn Pipeline, in model-input order."""
    columns = _column_transformer(model)
    by_name = {name: cols for name, _, cols in columns.transformers_}
    _require("numeric" in by_name and "categorical" in by_name, "expected numeric and categorical blocks")
    return tuple(str(c) for c in by_name["numeric"]), tuple(str(c) for c in by_name["categorical"])


def _column_transformer(model: Any) -> ColumnTransformer:
    transform, _ = _steps(model, ("transform", "model"))
    columns, _ = _steps(transform, ("columns", "select"))
    _require(isinstance(columns, ColumnTransformer), "expected a ColumnTransformer")
    return columns


def _numeric_parameters(block: Any, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(imputed value, mean, scale) per numeric input."""
    to_float, impute, scale = _steps(block, ("to_float", "impute", "scale"))
    _coercion(to_float, "as_float")
    _require(
        isinstance(impute, SimpleImputer)
        and impute.strategy == "median"
        and not impute.add_indicator
        and len(impute.statistics_) == width
        and not np.isnan(impute.statistics_).any(),
        "expected a median imputer over every numeric column",
    )
    _require(isinstance(scale, StandardScaler), "expected a StandardScaler")
    mean = scale.mean_ if scale.with_mean else np.zeros(width)
    scales = scale.scale_ if scale.with_std else np.ones(width)
    return (
        np.asarray(impute.statistics_, dtype=np.float64),
        np.asarray(mean, dtype=np.float64),
        np.asarray(scales, dtype=np.float64),
    )


def _categorical_parameters(block: Any, width: int) -> tuple[OneHotEncoder, str]:
    """The fitted one-hot encoder and the text that stands for a missing category."""
    to_text, impute, onehot = _steps(block, ("to_text", "impute", "onehot"))
    _coercion(to_text, "as_text")
    _require(
        isinstance(impute, SimpleImputer)
        and impute.strategy == "constant"
        and isinstance(impute.fill_value, str)
        and not impute.add_indicator,
        "expected a constant text imputer",
    )
    _require(
        isinstance(onehot, OneHotEncoder)
        and onehot.handle_unknown == "ignore"
        and onehot.drop_idx_ is None
        and not getattr(onehot, "_infrequent_enabled", False),
        "expected a plain one-hot encoder",
    )
    _require(len(onehot.categories_) == width, "one category table per categorical column")
    return onehot, impute.fill_value


def _category_tables(
    categories: Sequence[np.ndarray], support: np.ndarray, out_of: np.ndarray, offset: int
) -> tuple[dict[str, int], ...]:
    """Per categorical input: category -> output column, for the encoded columns the selection keeps."""
    tables = []
    for values in categories:
        table = {}
        for k, category in enumerate(values):
            _require(isinstance(category, str), "expected text categories")
            if support[offset + k]:
                table[category] = int(out_of[offset + k])
        tables.append(table)
        offset += len(values)
    return tuple(tables)


def _single_thread_booster(estimator: XGBClassifier) -> Any:
    booster = estimator.get_booster()
    booster.set_param({"nthread": 1})
    return booster


def _iteration_range(estimator: XGBClassifier) -> tuple[int, int]:
    """The trees ``predict_proba`` uses: up to the best iteration when early stopping set one, else all."""
    try:
        return (0, int(estimator.best_iteration) + 1)
    except AttributeError:
        return (0, 0)


def _calibrated(estimator: Any) -> tuple[Any, Any]:
    """(the estimator under the calibration, its calibrator), or (``estimator``, None) when not calibrated."""
    if not isinstance(estimator, CalibratedClassifierCV):
        return estimator, None
    _require(len(estimator.calibrated_classifiers_) == 1, "expected one calibrated classifier")
    inner = estimator.calibrated_classifiers_[0]
    _require(
        inner.method in ("sigmoid", "isotonic") and len(inner.calibrators) == 1 and list(inner.classes) == [0, 1],
        "expected a sigmoid or isotonic calibration of a binary classifier",
    )
    base = inner.estimator.estimator if isinstance(inner.estimator, FrozenEstimator) else inner.estimator
    _require(list(getattr(base, "classes_", [])) == [0, 1], "expected classes 0 and 1 under the calibration")
    return base, inner.calibrators[0]


@dataclass(frozen=True)
class FastPath:  # pylint: disable=too-many-instance-attributes  # one field per fitted parameter array
    """The compiled transform + booster of one fitted churn Pipeline (see the module docstring)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    width: int
    numeric_index: np.ndarray  # positions (in ``numeric``) of the numeric inputs the selection keeps
    numeric_out: np.ndarray  # their output columns
    numeric_fill: np.ndarray  # imputed value per kept numeric input
    numeric_mean: np.ndarray
    numeric_scale: np.ndarray
    category_out: tuple[Mapping[str, int], ...]  # per categorical input: category -> output column (kept only)
    missing_category: str
    booster: Any
    missing: float
    iteration_range: tuple[int, int]
    calibrator: Any = None  # the fitted sigmoid or isotonic calibrator of a calibrated model

    @classmethod
    def from_pipeline(cls, model: Any) -> "FastPath":
        """Compile a fitted churn Pipeline; :class:`UnsupportedModel` if it is not the expected shape."""
        transform, step = _steps(model, ("transform", "model"))
        estimator, calibrator = _calibrated(step)
        columns, select = _steps(transform, ("columns", "select"))
        _require(isinstance(select, SelectPercentile) and hasattr(select, "scores_"), "expected a fitted selection")
        _require(isinstance(estimator, XGBClassifier), f"no fast path for {type(estimator).__name__}")
        _require(
            getattr(estimator, "n_classes_", None) == 2
            and estimator.get_params().get("objective") in (None, "binary:logistic"),
            "expected a binary:logistic XGBClassifier",
        )
        numeric, categorical = model_columns(model)
        _require(
            columns.remainder == "drop" and not columns.sparse_output_, "expected a dense, remainder-drop transform"
        )
        _require(
            [name for name, _, _ in columns.transformers_ if name != "remainder"] == ["numeric", "categorical"],
            "expected exactly the numeric and categorical blocks, in that order",
        )
        blocks = dict((name, trans) for name, trans, _ in columns.transformers_)

        fill, mean, scale = _numeric_parameters(blocks["numeric"], len(numeric))
        onehot, missing_category = _categorical_parameters(blocks["categorical"], len(categorical))
        support = select.get_support()
        _require(
            len(support) == len(numeric) + sum(len(c) for c in onehot.categories_),
            "the selection does not match the encoded width",
        )
        out_of = np.cumsum(support) - 1  # output column of each encoded column (where kept)
        kept = np.flatnonzero(support[: len(numeric)])
        return cls(
            numeric=numeric,
            categorical=categorical,
            width=int(support.sum()),
            numeric_index=kept,
            numeric_out=out_of[kept],
            numeric_fill=fill[kept],
            numeric_mean=mean[kept],
            numeric_scale=scale[kept],
            category_out=_category_tables(onehot.categories_, support, out_of, len(numeric)),
            missing_category=missing_category,
            booster=_single_thread_booster(estimator),
            missing=float("nan") if estimator.missing is None else float(estimator.missing),
            iteration_range=_iteration_range(estimator),
            calibrator=calibrator,
        )

    def transform(self, numeric: np.ndarray, categorical: Sequence[Sequence[str | None]]) -> np.ndarray:
        """The matrix the booster sees, from ``numeric`` (rows x numeric inputs, float64, NaN = missing)
        and one sequence per categorical input (``None`` = missing)."""
        rows = numeric.shape[0]
        out = np.zeros((rows, self.width), dtype=np.float64)
        values = numeric[:, self.numeric_index]
        values = np.where(np.isnan(values), self.numeric_fill, values)
        values -= self.numeric_mean
        values /= self.numeric_scale
        out[:, self.numeric_out] = values
        missing = self.missing_category
        for table, column in zip(self.category_out, categorical):
            for row, value in enumerate(column):
                position = table.get(missing if value is None else value)
                if position is not None:
                    out[row, position] = 1.0
        return out

    def predict(self, numeric: np.ndarray, categorical: Sequence[Sequence[str | None]]) -> np.ndarray:
        """Churn probability per row (float64), equal to the Pipeline's ``predict_proba(...)[:, 1]``."""
        matrix = self.transform(numeric, categorical)
        probability = self.booster.inplace_predict(matrix, iteration_range=self.iteration_range, missing=self.missing)
        if self.calibrator is None:
            return np.asarray(probability, dtype=np.float64).reshape(-1)
        calibrated = np.asarray(self.calibrator.predict(np.asarray(probability).reshape(-1)), dtype=np.float64)
        # scikit-learn's own clean-up of a probability a hair above 1
        calibrated[(calibrated > 1.0) & (calibrated <= 1.0 + 1e-5)] = 1.0
        return calibrated
