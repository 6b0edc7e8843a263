"""The training configuration: every parameter besides the data and the seed that decides a training result.

:class:`TrainingConfig` is what every step of a training uses (in process and in the pipeline's
tasks, which hand it on as JSON); it is logged as the runs' parameters and hashed into their
lineage (``params_sha256``). Its defaults are the settings' (``TRAINING_DEFAULTS``) plus the
hyperparameter grids validation chooses from and the XGBoost parameters.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from churnops.platform.settings import TRAINING_DEFAULTS, Settings
from churnops.training.features import DEFAULT_HORIZON_HOURS, DEFAULT_WINDOWS_HOURS
from churnops.training.transform import DEFAULT_PERCENTILE

DEFAULT_XGB_PARAMS: dict[str, Any] = {
    "n_estimators": 400,
    "max_depth": 5,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5.0,
    "reg_lambda": 1.0,
}
# Hyperparameters chosen on validation: the baseline's inverse regularisation C, the challenger's tree depth.
DEFAULT_BASELINE_C_GRID: tuple[float, ...] = (0.1, 1.0)
DEFAULT_CHALLENGER_DEPTH_GRID: tuple[int, ...] = (3, 5)
# Folds (by customer) of the final refit's out-of-fold calibration.
DEFAULT_REFIT_FOLDS = 3
REFIT_TAG = "refit_on_all_cutoffs"
# A registered version's tag: the end of the last label window it was refit on (ISO 8601); the gate compares
# it with a new model only on test rows from that time on.
LABELS_THROUGH_TAG = "labels_through"

# What is known about churn before any data is seen (the generator's ground truth, and the retention team's
# experience): the declared directions and the attributes declared irrelevant. One home for both, read by the
# challenger's monotone constraints (:func:`churnops.training.estimators.constrained`) and by the gate's
# behavioural checks (:mod:`churnops.training.behaviour`).
#
# Monotone directions per model input: a numeric column's name (an fnmatch pattern: one entry covers every
# window), or ``column=category`` for one category of a categorical column; +1 where a larger value (or that
# category) means more risk, -1 less. A longer commitment churns less; invoice payers churn most, card payers
# least; support contacts raise the risk; a falling event rate (a lower rate change, less activity than the
# customer's own baseline) raises it.
DEFAULT_MONOTONE_DIRECTIONS: dict[str, int] = {
    "contract_months": -1,
    "payment_method=invoice": 1,
    "payment_method=card": -1,
    "n_support_contact_*": 1,
    "rate_change_*": -1,
    "relative_activity_*": -1,
}
# Directional checks: (model input, riskier value, safer value); every validation row is scored with the input
# set to each value, and the riskier must score higher on the share ``behaviour_directional_share`` of rows.
DEFAULT_BEHAVIOUR_DIRECTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("contract_months", 1.0, 12.0),  # monthly > annual
    ("contract_months", 12.0, 24.0),  # annual > two-year
    ("payment_method", "invoice", "card"),
)
# Invariance checks: an attribute declared irrelevant to churn and the values it is set to; the probability may
# move by less than ``behaviour_invariance_tolerance`` on the share ``behaviour_invariance_share`` of rows. An
# attribute that is no model input cannot move it (the check records so).
DEFAULT_BEHAVIOUR_IRRELEVANT: tuple[tuple[str, tuple[str, ...]], ...] = (("country", ("US", "DE", "IN")),)


@dataclass(frozen=True)
class TrainingConfig:  # pylint: disable=too-many-instance-attributes  # one field per parameter that decides a result
    """Everything besides the data and the seed that decides a training result."""

    windows_h: tuple[int, ...] = DEFAULT_WINDOWS_HOURS
    horizon_h: int = DEFAULT_HORIZON_HOURS
    cutoff_step_h: int = TRAINING_DEFAULTS["cutoff_step_hours"]
    min_history_h: int = TRAINING_DEFAULTS["min_history_hours"]
    split_fractions: tuple[float, float, float] = TRAINING_DEFAULTS["split_fractions"]
    holdout_share: float = TRAINING_DEFAULTS["holdout_share"]
    select_percentile: float = DEFAULT_PERCENTILE
    gate_margin: float = TRAINING_DEFAULTS["gate_margin"]
    gate_confidence: float = TRAINING_DEFAULTS["gate_confidence"]
    gate_resamples: int = TRAINING_DEFAULTS["gate_resamples"]
    gate_min_auc: float = TRAINING_DEFAULTS["gate_min_auc"]
    gate_recent_production: int = TRAINING_DEFAULTS["gate_recent_production"]
    calibration: str = TRAINING_DEFAULTS["calibration"]
    decision_rule: str = TRAINING_DEFAULTS["decision_rule"]
    capacity_share: float = TRAINING_DEFAULTS["retention_capacity_share"]
    save_rate: float = TRAINING_DEFAULTS["retention_save_rate"]
    customer_value: float = TRAINING_DEFAULTS["retention_customer_value"]
    contact_cost: float = TRAINING_DEFAULTS["retention_contact_cost"]
    baseline_c_grid: tuple[float, ...] = DEFAULT_BASELINE_C_GRID
    challenger_depth_grid: tuple[int, ...] = DEFAULT_CHALLENGER_DEPTH_GRID
    refit_folds: int = DEFAULT_REFIT_FOLDS
    xgb_params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_XGB_PARAMS))
    monotone_directions: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MONOTONE_DIRECTIONS))
    behaviour_directions: tuple[tuple[str, Any, Any], ...] = DEFAULT_BEHAVIOUR_DIRECTIONS
    behaviour_directional_share: float = TRAINING_DEFAULTS["gate_behaviour_share"]
    behaviour_irrelevant: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_BEHAVIOUR_IRRELEVANT
    behaviour_invariance_share: float = 0.95
    behaviour_invariance_tolerance: float = 0.02
    # The gate refuses a model whose seen-customer ROC-AUC exceeds its held-out-customer ROC-AUC by more than this
    # at the lower bound of the gate's confidence interval (customers resampled).
    behaviour_memorisation_gap: float = 0.02

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "TrainingConfig":
        """The configuration the settings describe, with keyword overrides."""
        return cls(**{**settings_values(settings), **overrides})

    def as_params(self) -> dict[str, str]:
        """Flat MLflow params."""
        params = {key: json.dumps(value) for key, value in asdict(self).items() if key != "xgb_params"}
        params.update({f"xgb_{key}": json.dumps(value) for key, value in sorted(self.xgb_params.items())})
        return params

    def to_json(self) -> str:
        """The configuration as JSON text (what the pipeline's tasks hand each other: KFP's artifact metadata
        would turn integers into floats)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainingConfig":
        """The inverse of :meth:`to_json`."""
        values = json.loads(text)
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown training parameters {unknown}")
        converted: dict[str, Any] = {key: tuples_from_json(value) for key, value in values.items()}
        return cls(**converted)


def tuples_from_json(value: Any) -> Any:
    """``value`` read back from JSON with its lists (at any depth) as the tuples the configuration holds."""
    if isinstance(value, list):
        return tuple(tuples_from_json(item) for item in value)
    return value


def settings_values(settings: Settings) -> dict[str, Any]:
    """The settings-backed fields of :class:`TrainingConfig`, by field name, as ``settings`` gives them: the one
    list of which parameters a setting changes (reproduction with ``--current-settings`` takes exactly these)."""
    return {
        "windows_h": tuple(settings.feature_windows_hours),
        "horizon_h": settings.label_horizon_hours,
        "cutoff_step_h": settings.cutoff_step_hours,
        "min_history_h": settings.min_history_hours,
        "gate_margin": settings.gate_margin,
        "gate_confidence": settings.gate_confidence,
        "gate_resamples": settings.gate_resamples,
        "gate_min_auc": settings.gate_min_auc,
        "behaviour_directional_share": settings.gate_behaviour_share,
        "gate_recent_production": settings.gate_recent_production,
        "calibration": settings.calibration,
        "decision_rule": settings.decision_rule,
        "capacity_share": settings.retention_capacity_share,
        "save_rate": settings.retention_save_rate,
        "customer_value": settings.retention_customer_value,
        "contact_cost": settings.retention_contact_cost,
    }
