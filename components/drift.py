"""The drift components: publish the online feature snapshot, then compare it with the model's training reference."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from typing import NamedTuple

from kfp.dsl import Input, Model

from components import component


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def online_features(data_ref: str) -> NamedTuple(  # type: ignore[valid-type]
    "OnlineOutputs", [("snapshot_commit", str), ("data_commit", str), ("cutoff", str), ("rows", int), ("refused", str)]
):
    """Build the features of every customer active at the latest cutoff of `data_ref` (a lake
    branch or commit; `main` by default) with the training feature code, and publish them as the
    online snapshot (`features/online/` on the lake's `features` branch, one commit). The
    by-customer transformer serves from the newest snapshot. No active customer is the `refused` output,
    which the gate after it fails the run with, never retried.

    Args:
        data_ref: The lake branch or commit whose active customers are featurized.
    """
    from collections import namedtuple

    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit
    from churnops.training.online import refresh_online_features

    settings = settings_or_exit()
    setup_logging(settings)
    outputs = namedtuple("outputs", ["snapshot_commit", "data_commit", "cutoff", "rows", "refused"])
    outcome = run_step(
        "online-features", lambda: refresh_online_features(settings, data_ref or None), settings.step_retry_seconds
    )
    snapshot = outcome.value
    if snapshot is None:
        return outputs("", "", "", 0, outcome.refused)
    return outputs(snapshot.commit_id, snapshot.data_commit, snapshot.cutoff.isoformat(), len(snapshot.features), "")


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def drift_check(snapshot_commit: str, model: Input[Model], retrain: bool) -> NamedTuple(  # type: ignore[valid-type]
    "DriftOutputs",
    [
        ("fired", bool),
        ("drifted_feature_share", float),
        ("report_uri", str),
        ("mlflow_run_id", str),
        ("retrain", str),
        ("retrain_reason", dict),
        ("refused", str),
    ],
):
    """Compare the online snapshot at `snapshot_commit` with the training features of `model`, the registered
    version the resolve step chose: PSI per feature and for the predicted probability. The report goes to
    the lake and MLflow; when it fires, a `drift` alert is raised and, if `retrain`, the `retrain` output is
    `true` and `retrain_reason` holds the tags (report, drift run, drifted features) the training run the
    pipeline then starts records as its reason. A firing check is a finding, not a task failure. No
    training reference for the model is the `refused` output, which the gate after it fails the run with.

    Args:
        snapshot_commit: The lake commit of the online feature snapshot to check.
        model: The registered version whose training features are the reference (the resolve step's Model).
        retrain: Whether a firing check starts a training.
    """
    from collections import namedtuple

    from churnops.data.versioning import open_repository
    from churnops.model.online import load_snapshot
    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit
    from churnops.training.monitoring import check_drift, retrain_reason

    settings = settings_or_exit()
    setup_logging(settings)
    outputs = namedtuple(
        "outputs",
        ["fired", "drifted_feature_share", "report_uri", "mlflow_run_id", "retrain", "retrain_reason", "refused"],
    )
    repo = open_repository(settings)
    checked = run_step(
        "drift-check",
        lambda: check_drift(
            settings, str(model.metadata["version"]), repo=repo, snapshot=load_snapshot(repo, snapshot_commit or None)
        ),
        settings.step_retry_seconds,
    )
    report = checked.value
    if report is None:
        return outputs(False, 0.0, "", "", "", {}, checked.refused)
    wanted = report.fired and retrain
    return outputs(
        report.fired,
        report.drifted_feature_share,
        report.lake_uri or "",
        report.mlflow_run_id or "",
        "true" if wanted else "",
        retrain_reason(report) if wanted else {},
        "",
    )


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def performance_check(data_ref: str, model: Input[Model]) -> NamedTuple(  # type: ignore[valid-type]
    "PerformanceOutputs",
    [
        ("degraded", bool),
        ("waiting", str),
        ("mlflow_run_id", str),
        ("refused", str),
    ],
):
    """Judge `model`, the registered version the resolve step chose, on every
    label matured at `data_ref` (a lake branch or commit; `main` by default) since its training data:
    ROC-AUC, calibration error and precision at k, logged to MLflow (the run is the `mlflow_run_id`
    output); a `performance` alert when it fell below the settings' limits. A degraded model is a
    finding, not a task failure; nothing matured yet is the `waiting` output (why), not a failure
    either. An input it refuses is the `refused` output, which the gate after it fails the run with.

    Args:
        data_ref: The lake branch or commit whose matured labels judge the model.
        model: The registered version to judge (the resolve step's Model artifact).
    """
    from collections import namedtuple

    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import run_step
    from churnops.platform.settings import settings_or_exit
    from churnops.training.performance import check_production_performance

    settings = settings_or_exit()
    setup_logging(settings)
    outputs = namedtuple("outputs", ["degraded", "waiting", "mlflow_run_id", "refused"])
    checked = run_step(
        "performance-check",
        lambda: check_production_performance(settings, str(model.metadata["version"]), data_ref=data_ref or None),
        settings.step_retry_seconds,
    )
    check = checked.value
    if check is None:
        return outputs(False, "", "", checked.refused)
    return outputs(check.degraded, check.waiting, check.mlflow_run_id or "", "")
