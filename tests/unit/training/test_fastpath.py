"""The compiled fast path scores exactly like the Pipeline it was compiled from, on any row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from xgboost import XGBClassifier

from churnops.model.fastpath import FastPath, UnsupportedModel
from churnops.model.spec import FeatureSpec
from churnops.training.estimators import calibrate
from churnops.training.transform import build_model

SPEC = FeatureSpec(numeric=("a", "b", "c", "empty", "flat"), categorical=("plan", "country"), windows_h=(1,))
PLANS = ["basic", "premium", "standard", "missing"]
COUNTRIES = ["DE", "FR", "US", "PL", "ES"]


def training_frame(rows: int = 300, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows with missing values everywhere, a column empty in training and a constant one."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(0, 1, rows),
            "b": rng.exponential(5, rows),
            "c": rng.integers(0, 40, rows).astype(np.float64),
            "empty": np.full(rows, np.nan),
            "flat": np.full(rows, 7.0),
            "plan": rng.choice(PLANS[:3] + [None], rows).astype(object),
            "country": rng.choice(COUNTRIES[:4], rows).astype(object),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "a"] = np.nan
    frame.loc[rng.random(rows) < 0.1, "b"] = np.nan
    label = (
        (
            (frame["a"].fillna(0) + (frame["plan"] == "premium") - frame["b"].fillna(5) / 5 + rng.normal(0, 0.5, rows))
            > 0
        )
        .astype(int)
        .to_numpy()
    )
    return frame, label


@pytest.fixture(scope="module", name="fitted")
def fixture_fitted():
    """A small XGBoost churn Pipeline and its compiled fast path."""
    X, y = training_frame()
    model = build_model(SPEC, XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1, random_state=0), percentile=70).fit(
        X, y
    )
    return model, FastPath.from_pipeline(model)


def split(frame: pd.DataFrame) -> tuple[np.ndarray, list[list[str | None]]]:
    """A frame as the fast path takes it: a float matrix and one list per categorical column."""
    numeric = frame[list(SPEC.numeric)].to_numpy(dtype=np.float64)
    categorical = [[None if pd.isna(v) else v for v in frame[name]] for name in SPEC.categorical]
    return numeric, categorical


number = st.one_of(st.just(float("nan")), st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False))
category = st.one_of(st.none(), st.sampled_from(PLANS + COUNTRIES + ["", "unseen", "ünïcode"]), st.text(max_size=5))
row = st.fixed_dictionaries(
    {**{name: number for name in SPEC.numeric}, **{name: category for name in SPEC.categorical}}
)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(row, min_size=1, max_size=20))
def test_fast_path_equals_the_pipeline_on_arbitrary_rows(fitted, rows) -> None:
    model, fast = fitted
    frame = pd.DataFrame(rows, columns=SPEC.columns).astype({name: np.float64 for name in SPEC.numeric})
    frame = frame.astype({name: object for name in SPEC.categorical})
    expected = model.predict_proba(frame)[:, 1]
    np.testing.assert_allclose(fast.predict(*split(frame)), expected, rtol=0, atol=1e-7)


def test_fast_path_reproduces_the_transformed_matrix(fitted) -> None:
    model, fast = fitted
    X, _ = training_frame(50, seed=9)
    np.testing.assert_array_equal(fast.transform(*split(X)), model.named_steps["transform"].transform(X))


def test_other_estimators_are_refused_so_callers_fall_back_to_the_pipeline() -> None:
    X, y = training_frame(60)
    model = build_model(SPEC, LogisticRegression(max_iter=200)).fit(X, y)
    with pytest.raises(UnsupportedModel, match="LogisticRegression"):
        FastPath.from_pipeline(model)
    with pytest.raises(UnsupportedModel, match="Pipeline"):
        FastPath.from_pipeline(model.named_steps["model"])


@pytest.fixture(scope="module", name="calibrated", params=["frozen-sigmoid", "frozen-isotonic", "refit-isotonic"])
def fixture_calibrated(request):
    """Calibrated XGBoost churn Pipelines as training makes them: calibrated on validation rows over the frozen
    estimator (Platt or isotonic), or refit on every row with out-of-fold calibration (``ensemble=False``)."""
    X, y = training_frame()
    validation, validation_y = training_frame(200, seed=5)
    xgb = XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1, random_state=0)
    kind, method = request.param.split("-")
    if kind == "frozen":
        raw = build_model(SPEC, xgb, percentile=70).fit(X, y)
        model = calibrate(raw, validation.assign(churned=validation_y), SPEC, method)
    else:
        model = build_model(SPEC, CalibratedClassifierCV(xgb, method=method, cv=3, ensemble=False), percentile=70)
        model.fit(X, y)
    return model, FastPath.from_pipeline(model)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(row, min_size=1, max_size=20))
def test_fast_path_equals_a_calibrated_pipeline_on_arbitrary_rows(calibrated, rows) -> None:
    model, fast = calibrated
    assert fast.calibrator is not None
    frame = pd.DataFrame(rows, columns=SPEC.columns).astype({name: np.float64 for name in SPEC.numeric})
    frame = frame.astype({name: object for name in SPEC.categorical})
    np.testing.assert_allclose(fast.predict(*split(frame)), model.predict_proba(frame)[:, 1], rtol=0, atol=1e-7)


def test_calibration_changes_what_the_fast_path_returns(calibrated, fitted) -> None:
    """The calibrator is applied, not skipped: the raw booster's probabilities differ from the calibrated ones."""
    model, fast = calibrated
    X, _ = training_frame(50, seed=9)
    raw = (
        model.named_steps["model"]
        .calibrated_classifiers_[0]
        .estimator.predict_proba(model.named_steps["transform"].transform(X))[:, 1]
    )
    assert not np.allclose(fast.predict(*split(X)), raw)
    assert fitted[1].calibrator is None
