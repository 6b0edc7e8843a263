"""The predict contract every scorer shares: the output names, the decision rule and the probability of churn.

The model server's response tensors, the batch predictions table and the metrics of training all
use these, so a label means the same thing wherever it is computed. ``churn_label`` is 1 where the
probability reaches the model's decision threshold: the threshold training chose from the retention
team's terms and recorded with the model (:class:`DecisionRule`, in the MLflow model's metadata
under ``decision_rule``). A model logged without one labels at :data:`THRESHOLD`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

PROBABILITY = "churn_probability"
LABEL = "churn_label"
OUTPUTS: tuple[str, ...] = (PROBABILITY, LABEL)
THRESHOLD = 0.5
"""The threshold of a model logged without a decision rule."""
DECISION_RULE_KEY = "decision_rule"
"""Where the rule is recorded: a key of the MLflow model's metadata (and a tag of the registered version)."""


@dataclass(frozen=True)
class DecisionRule:
    """Who gets ``churn_label`` 1: every customer whose probability is at least ``threshold``.

    ``kind`` says how the threshold was chosen: ``top_k`` (the share of customers the retention team
    can contact, ``capacity_share``), ``expected_value`` (contact when probability x save rate x
    customer value exceeds the contact cost) or ``fixed`` (no rule recorded). ``terms`` holds the
    figures it was chosen from.
    """

    kind: str = "fixed"
    threshold: float = THRESHOLD
    terms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"a decision threshold is a probability in [0, 1], got {self.threshold}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> "DecisionRule":
        """The inverse of :meth:`to_dict`."""
        terms = {str(key): float(term) for key, term in dict(value.get("terms") or {}).items()}
        return cls(kind=str(value["kind"]), threshold=float(value["threshold"]), terms=terms)

    def describe(self) -> str:
        """``top_k: churn_label = 1 at probability >= 0.2310 (capacity_share=0.1)``."""
        terms = ", ".join(f"{key}={value:g}" for key, value in sorted(self.terms.items()))
        return f"{self.kind}: churn_label = 1 at probability >= {self.threshold:.4f}" + (f" ({terms})" if terms else "")


def decision_rule_of(model_metadata: Mapping[str, Any] | None) -> DecisionRule:
    """The rule recorded in an MLflow model's metadata; the fixed :data:`THRESHOLD` when none is."""
    recorded = (model_metadata or {}).get(DECISION_RULE_KEY)
    return DecisionRule.from_dict(recorded) if recorded else DecisionRule()


def churn_probability(model: Any, X: Any) -> np.ndarray:
    """The model's probability of the positive class (churn) for each row of ``X``, as float64.

    A model fitted on one class only (no churner in its training data) gives 0 for every row.
    """
    proba = np.asarray(model.predict_proba(X))
    classes = list(getattr(model, "classes_", [0, 1]))
    if 1 not in classes:
        return np.zeros(len(X), dtype=np.float64)
    return proba[:, classes.index(1)].astype(np.float64)


def churn_label(probability: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """1 where ``probability`` is at least ``threshold`` (the model's :class:`DecisionRule`), else 0 (int64)."""
    return (np.asarray(probability) >= threshold).astype(np.int64)
