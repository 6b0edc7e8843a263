"""The preprocessing pipeline: each step, the awkward inputs, and the serving path (reloaded model)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes
from sklearn.linear_model import LogisticRegression
from xgboost import XGBClassifier

from churnops.model.spec import FeatureSpec
from churnops.training.transform import (
    SKOPS_TRUSTED_TYPES,
    build_model,
    build_transformer,
    selected_feature_names,
)

SPEC = FeatureSpec(numeric=("x", "z"), categorical=("plan",), windows_h=(1,))


def frame(x: list, z: list, plan: list) -> pd.DataFrame:
    """A feature frame for SPEC."""
    return pd.DataFrame({"x": pd.array(x, dtype="Float64").astype("float64"), "z": z, "plan": plan})


def fit(X: pd.DataFrame, y: list[int], percentile: float = 100) -> tuple[np.ndarray, list[str], object]:
    """Fit the transformer on (X, y); return its training output, output names and the fitted object."""
    transformer = build_transformer(SPEC, percentile=percentile).fit(X, np.asarray(y))
    return transformer.transform(X), selected_feature_names(transformer), transformer


def test_numeric_missing_values_get_the_training_median_then_scaling() -> None:
    X = frame([1.0, 2.0, None, 10.0], [0.0, 1.0, 0.0, 1.0], ["a", "b", "a", "b"])
    out, names, transformer = fit(X, [0, 1, 0, 1])
    x = out[:, names.index("numeric__x")]
    assert x.mean() == pytest.approx(0) and x.std() == pytest.approx(1)
    imputed = transformer.transform(frame([None], [0.0], ["a"]))[0, names.index("numeric__x")]
    median_row = transformer.transform(frame([2.0], [0.0], ["a"]))[0, names.index("numeric__x")]
    assert imputed == pytest.approx(median_row)


def test_categories_are_one_hot_encoded_with_missing_as_its_own_category() -> None:
    X = frame([1.0, 2.0, 3.0], [0.0, 1.0, 0.0], ["basic", None, "premium"])
    out, names, _ = fit(X, [0, 1, 0])
    assert {"categorical__plan_basic", "categorical__plan_missing", "categorical__plan_premium"} <= set(names)
    onehot = out[:, [names.index(f"categorical__plan_{v}") for v in ("basic", "missing", "premium")]]
    assert onehot.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_unknown_category_encodes_as_zeros_without_error() -> None:
    _, names, transformer = fit(frame([1.0, 2.0], [0.0, 1.0], ["basic", "premium"]), [0, 1])
    row = transformer.transform(frame([1.5], [0.5], ["platinum"]))
    plan_columns = [i for i, name in enumerate(names) if name.startswith("categorical__plan_")]
    assert row[0, plan_columns].tolist() == [0.0, 0.0]


def test_selection_drops_the_constant_and_keeps_the_informative_column() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    X = frame(list(y * 3.0 + rng.normal(0, 0.1, 200)), [7.0] * 200, ["a"] * 200)
    _, names, _ = fit(X, list(y), percentile=50)
    assert names == ["numeric__x"]


def test_all_null_columns_do_not_break_fit_or_output() -> None:
    X = pd.DataFrame({"x": [np.nan] * 4, "z": [1.0, 2.0, 3.0, 4.0], "plan": [None] * 4})
    out, _, transformer = fit(X, [0, 1, 0, 1])
    assert out.shape[0] == 4 and not np.isnan(out).any()
    later = transformer.transform(pd.DataFrame({"x": [5.0], "z": [1.0], "plan": ["basic"]}))
    assert not np.isnan(later).any()


def test_single_class_target_does_not_break_the_transformer() -> None:
    X = frame([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], ["a", "b", "a"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, _, _ = fit(X, [0, 0, 0], percentile=50)
    assert out.shape[0] == 3 and not np.isnan(out).any()


def test_extra_columns_and_column_order_do_not_matter() -> None:
    X = frame([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], ["a", "b", "a"])
    out, _, transformer = fit(X, [0, 1, 0])
    shuffled = X[["plan", "z", "x"]].assign(customer_token=["t1", "t2", "t3"])
    np.testing.assert_array_equal(transformer.transform(shuffled), out)


def test_text_numbers_and_pandas_na_are_accepted_as_serving_sends_them() -> None:
    _, _, transformer = fit(frame([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], ["a", "b", "a"]), [0, 1, 0])
    sent = pd.DataFrame({"x": ["2.0"], "z": [pd.NA], "plan": [pd.NA]}, dtype=object)
    expected = transformer.transform(pd.DataFrame({"x": [2.0], "z": [np.nan], "plan": [None]}))
    np.testing.assert_array_equal(transformer.transform(sent), expected)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="percentile"):
        build_transformer(SPEC, percentile=0)
    with pytest.raises(ValueError, match="no columns"):
        build_transformer(FeatureSpec(numeric=(), categorical=(), windows_h=(1,)))


feature_frames = data_frames(
    columns=[
        column("x", elements=st.one_of(st.none(), st.floats(-1e6, 1e6))),
        column("z", elements=st.one_of(st.none(), st.floats(-1e6, 1e6))),
        column("plan", elements=st.one_of(st.none(), st.sampled_from(["basic", "premium", "standard"]))),
    ],
    index=range_indexes(min_size=1, max_size=30),
)


@settings(max_examples=60, deadline=None)
@given(train=feature_frames, serve=feature_frames, labels=st.randoms(use_true_random=False))
def test_transformer_invariants_and_the_serving_path(train: pd.DataFrame, serve: pd.DataFrame, labels) -> None:
    train = train.astype({"x": "float64", "z": "float64"})
    serve = serve.astype({"x": "float64", "z": "float64"})
    y = np.array([labels.randint(0, 1) for _ in range(len(train))])
    transformer = build_transformer(SPEC, percentile=60).fit(train, y)
    out = transformer.transform(serve)
    assert out.shape[0] == len(serve)
    assert not np.isnan(out).any()
    reloaded = pickle.loads(pickle.dumps(transformer))
    np.testing.assert_array_equal(reloaded.transform(serve), out)


@pytest.mark.parametrize("estimator", [LogisticRegression(max_iter=500), XGBClassifier(n_estimators=5, n_jobs=1)])
def test_mlflow_saved_model_scores_exactly_like_the_trained_one(tmp_path: Path, estimator) -> None:
    rng = np.random.default_rng(1)
    X = frame(
        list(rng.normal(size=60)),
        [None if i % 7 == 0 else float(i) for i in range(60)],
        [["a", "b", None][i % 3] for i in range(60)],
    )
    y = (X["x"] > 0).astype(int).to_numpy()
    model = build_model(SPEC, estimator).fit(X, y)
    path = tmp_path / "model"
    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
        pyfunc_predict_fn="predict_proba",
        pip_requirements=["scikit-learn", "xgboost-cpu"],
    )
    probe = X.copy()
    probe.loc[len(probe)] = [np.nan, np.nan, "unseen"]
    expected = model.predict_proba(probe)
    np.testing.assert_array_equal(mlflow.sklearn.load_model(str(path)).predict_proba(probe), expected)
    np.testing.assert_array_equal(np.asarray(mlflow.pyfunc.load_model(str(path)).predict(probe)), expected)
