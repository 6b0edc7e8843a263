"""The preprocessing functions a logged churn model references, shipped inside the model artifact.

The fitted model (a scikit-learn Pipeline, see :mod:`churnops.training.transform`) calls these three
functions. Training logs this package with the model (MLflow ``code_paths``), and MLflow puts it on
``sys.path`` when it loads the model, so ``models:/churn-classifier@production`` loads wherever
the model's declared requirements are installed: a peer model server, a batch job or a notebook,
with or without this repository. Hence the rule: this package imports only numpy, pandas and scikit-learn,
never ``churnops``.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_selection import f_classif

__all__ = ["anova_scores", "as_float", "as_text"]


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
    return np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0, posinf=sys.float_info.max)
