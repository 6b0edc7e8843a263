"""The predict contract every scorer shares: the output names, the threshold and the probability of churn.

The model server's response tensors, the batch predictions table and the metrics of training all
use these, so a label means the same thing wherever it is computed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PROBABILITY = "churn_probability"
LABEL = "churn_label"
OUTPUTS: tuple[str, ...] = (PROBABILITY, LABEL)
THRESHOLD = 0.5
"""A customer is labelled as churning when the probability is at least this."""


def churn_probability(model: Any, X: Any) -> np.ndarray:
    """The model's probability of the positive class (churn) for each row of ``X``, as float64.

    A model fitted on one class only (no churner in its training data) gives 0 for every row.
    """
    proba = np.asarray(model.predict_proba(X))
    classes = list(getattr(model, "classes_", [0, 1]))
    if 1 not in classes:
        return np.zeros(len(X), dtype=np.float64)
    return proba[:, classes.index(1)].astype(np.float64)


def churn_label(probability: np.ndarray) -> np.ndarray:
    """1 where ``probability`` is at least :data:`THRESHOLD`, else 0 (int64)."""
    return (np.asarray(probability) >= THRESHOLD).astype(np.int64)
