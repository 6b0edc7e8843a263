"""Training: from an immutable data commit to logged, comparable, gated MLflow runs.

``train_from_commit`` resolves a ref of the data repository to a commit id, reads the published
``events/`` and ``subscriptions/`` tables at that commit and calls :func:`train_on_frames`, which

1. builds features and labels at hourly cutoffs and splits them by time (train / validation / test);
2. opens one parent MLflow run (lineage tags: ``data_commit``, ``git_sha`` and ``git_dirty``,
   ``lock_sha256``, ``image_digest``, ``params_sha256``, ``feature_spec_sha256``,
   ``tokenizer_key_id``, ``schema_versions``, ``seed``) and logs the feature matrices as its
   artifacts under ``features/``;
3. per model (``baseline`` = logistic regression, ``xgboost``), fits each candidate of a small
   hyperparameter grid on train, keeps the best by validation ROC-AUC, calibrates it on validation
   and chooses its decision rule (the retention team's terms) there: one sklearn Pipeline (transform
   + calibrated estimator) in a nested run with params, validation metrics, plots, feature
   importance, the feature spec, the model itself and the data commit as a dataset input;
4. gates the models (see :func:`churnops.training.evaluate.gate`): the winner is chosen on
   validation, the test split is scored once for the recorded metrics and to compare the winner
   with the minimum and the best recent ``production`` version, and a winner that fails its behavioural
   checks on validation (:mod:`churnops.training.behaviour`) is refused; when it passes, the winner is refit
   on every labelled cutoff and the refit registered with the ``candidate`` alias, unless a version
   trained from the same data commit, code version, parameters and seed exists: then nothing is
   registered, no alias moves, and the result names the version it reproduced.

Same commit + same seed + same configuration gives the same metrics.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.meta_dataset import MetaDataset
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline

from churnops.data import aggregates
from churnops.data.versioning import DataRepository, open_repository
from churnops.data.versioning.base import DEFAULT_BRANCH
from churnops.errors import DataContractError
from churnops.model import registry
from churnops.model.predict import DECISION_RULE_KEY, DecisionRule, decision_rule_of
from churnops.model.scoring import load_model
from churnops.model.spec import FeatureSpec
from churnops.platform.alerts import Alert, AlertSink
from churnops.platform.settings import Settings
from churnops.training import evaluate
from churnops.training.behaviour import BehaviourReport, check_behaviour
from churnops.training.config import LABELS_THROUGH_TAG, REFIT_TAG, TrainingConfig
from churnops.training.estimators import (
    BASELINE,
    CHALLENGER,
    calibrate,
    choose_rule,
    fit_pipeline,
    log_model,
    make_estimators,
    select_candidate,
    tuned_params,
)
from churnops.training.featurefiles import record_features
from churnops.training.features import (
    EVENT_COLUMNS,
    GHOST_AFTER_HOURS,
    LABEL,
    Activity,
    HourlyActivity,
    InsufficientData,
    build_training_set,
    choose_cutoffs,
    feature_spec,
    ghost_customers,
    held_out_customers,
    split_by_time,
)
from churnops.training.lineage import dataset, lineage_tags
from churnops.training.production import labels_through, recent_production_scores, unseen_by_production
from churnops.training.runs import (
    CHOSEN_PARAMS_TAG,
    MODEL_URI_TAG,
    STEP_TAG,
    FittedModel,
    child_run_of,
    log_metrics_once,
    reused,
)

logger = logging.getLogger(__name__)

PIPELINE_RUN_TAG = "kfp_run_id"  # on a parent run a training pipeline run opened: that run's id


@dataclass(frozen=True)
class TrainingResult:
    """What one training produced: runs, metrics per model, the gate decision and the registered version."""

    data_commit: str
    experiment_id: str
    parent_run_id: str
    run_ids: dict[str, str]
    metrics: dict[str, dict[str, float]]
    gate: evaluate.GateDecision
    model_version: str | None
    features_uri: str
    reproduced_version: str | None = None


# --------------------------------------------------------------------------------------------
# Lineage


# --------------------------------------------------------------------------------------------
# Data


def load_tables(repo: DataRepository, data_commit: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The published events (needed columns, strings as categories) and subscriptions at a commit."""
    events = repo.read_table(data_commit, "events/")
    missing = [c for c in EVENT_COLUMNS if c not in events.column_names]
    if missing:
        raise DataContractError(f"events at commit {data_commit} lack columns {missing}")
    events_frame = events.select(list(EVENT_COLUMNS)).to_pandas(strings_to_categorical=True)
    subscriptions = repo.read_table(data_commit, "subscriptions/").to_pandas()
    return events_frame, subscriptions


def load_activity(repo: DataRepository, data_commit: str) -> tuple[Activity, pd.DataFrame]:
    """The events at a commit as their hourly pre-aggregates (:mod:`churnops.data.aggregates`) when every events
    partition there has them, else the raw events (:func:`load_tables`, e.g. a commit older than the aggregates);
    and the subscriptions. Features from either are the same (see :class:`HourlyActivity`)."""
    listed = repo.list_paths(data_commit, aggregates.EVENTS_PREFIX)
    listed += repo.list_paths(data_commit, f"{aggregates.AGGREGATES_PREFIX}{aggregates.EVENTS_PREFIX}")
    if not aggregates.covered(listed):
        return load_tables(repo, data_commit)
    hourly = repo.read_table(data_commit, f"{aggregates.AGGREGATES_PREFIX}{aggregates.EVENTS_PREFIX}")
    return HourlyActivity(hourly), repo.read_table(data_commit, "subscriptions/").to_pandas()


def event_count(events: Activity) -> int:
    """How many events ``events`` holds (raw or pre-aggregated)."""
    return events.events if isinstance(events, HourlyActivity) else len(events)


@dataclass(frozen=True)
class PublishedData:
    """The published tables at one commit and what its metadata says about them."""

    commit: str
    events: Activity
    subscriptions: pd.DataFrame
    schema_versions: str
    tokenizer_key_id: str


def published_at(repo: DataRepository, ref: str | None) -> PublishedData:
    """The published tables at ``ref`` (a commit id or branch; None = ``main``), resolved to its commit; the events
    as their hourly pre-aggregates when the commit has them for every partition (:func:`load_activity`)."""
    commit = repo.resolve(ref or DEFAULT_BRANCH)
    recorded = repo.commit_info(commit).metadata
    events, subscriptions = load_activity(repo, commit)
    logger.info(
        "data commit %s: %d events%s, %d subscription records",
        commit,
        event_count(events),
        " (from hourly pre-aggregates)" if isinstance(events, HourlyActivity) else "",
        len(subscriptions),
    )
    return PublishedData(
        commit,
        events,
        subscriptions,
        recorded.get("schema_versions", "unknown"),
        recorded.get("tokenizer_key_id", "unknown"),
    )


def build_splits(events: Activity, subscriptions: pd.DataFrame, config: TrainingConfig) -> dict[str, pd.DataFrame]:
    """Feature/label frames per split (train, validation, test): split by cutoff time with a label horizon
    between splits (:func:`split_by_time`), and the held-out customers (``config.holdout_share``, by id)
    left out of train; validation and test keep every customer."""
    cutoffs = choose_cutoffs(
        events, subscriptions, horizon=config.horizon_h, step_h=config.cutoff_step_h, min_history_h=config.min_history_h
    )
    frame = build_training_set(events, subscriptions, cutoffs, horizon=config.horizon_h, windows=config.windows_h)
    splits = split_by_time(frame, config.split_fractions, config.horizon_h)
    train = splits["train"]
    splits["train"] = train[~held_out_customers(train["customer_token"], config.holdout_share)].reset_index(drop=True)
    if splits["train"][LABEL].nunique() < 2:
        raise InsufficientData(
            "the training split holds one class only: no customer churns (or every one does) in its horizons; "
            "use more data or a longer horizon"
        )
    return splits


# --------------------------------------------------------------------------------------------
# Runs


def _log_split_evaluation(  # pylint: disable=too-many-arguments,too-many-positional-arguments  # one split's inputs
    probability: np.ndarray,
    name: str,
    split: str,
    frame: pd.DataFrame,
    trained_on: set[str],
    rule: DecisionRule,
    capacity_share: float,
) -> dict[str, float]:
    """Log one split's metrics (``<split>_<metric>``) and plots from the model's ``probability`` on ``frame``
    in the active run; return the metrics.

    Labels use the model's decision ``rule``; precision and lift at k the top ``capacity_share``.
    ROC-AUC is also computed apart for the customers training saw (``<split>_seen_roc_auc``) and the
    ones it never saw (``<split>_unseen_roc_auc``): a model that memorises customers does better on
    the first.
    """
    metrics = evaluate.classification_metrics(frame[LABEL], probability, rule.threshold, capacity_share)
    seen = frame["customer_token"].astype(str).isin(trained_on).to_numpy()
    for group, rows in (("seen", seen), ("unseen", ~seen)):
        labels = frame[LABEL].to_numpy()[rows]
        if np.unique(labels).size == 2:
            metrics[f"{group}_roc_auc"] = evaluate.classification_metrics(labels, probability[rows])["roc_auc"]
    log_metrics_once({f"{split}_{key}": value for key, value in metrics.items()})
    title = f"{name} ({split})"
    confusion = evaluate.confusion_matrix_figure(frame[LABEL], probability, title, rule.threshold)
    mlflow.log_figure(confusion, f"plots/{split}_confusion.png")
    mlflow.log_figure(evaluate.reliability_figure(frame[LABEL], probability, title), f"plots/{split}_reliability.png")
    for kind in ("roc", "pr"):
        figure = evaluate.curve_figure(kind, frame[LABEL], probability, title)
        if figure is not None:
            mlflow.log_figure(figure, f"plots/{split}_{kind}_curve.png")
    return metrics


def _train_one(  # pylint: disable=too-many-arguments,too-many-positional-arguments,too-many-locals  # one fit's inputs
    name: str,
    candidates: list[BaseEstimator],
    splits: dict[str, pd.DataFrame],
    spec: FeatureSpec,
    config: TrainingConfig,
    lineage: dict[str, str],
    datasets: list[MetaDataset],
    parent_run_id: str,
) -> FittedModel:
    """Choose, fit, calibrate and log one model in a child run of ``parent_run_id``.

    Every candidate is fitted on train; the best by validation ROC-AUC is calibrated on validation
    and its decision rule chosen on validation (:func:`choose_rule`). The test split is not read
    here: it is scored once, by :func:`evaluate_models`, after the winner is chosen.

    One child run per model and training run: a retried attempt (a pipeline task run again after its pod was
    lost) finds the run an earlier attempt opened. When that run holds its model (the ``model_uri`` tag, set
    once the model is logged) it is returned as it is, nothing fitted or logged again; otherwise the attempt
    resumes it and logs what is missing (the fit is deterministic: parameters, artifacts and metrics are the
    same; a metric already logged is not logged twice).
    """
    train = splits["train"]
    tags = {**lineage, "model_type": name, "parent_run_id": parent_run_id, STEP_TAG: "fit"}
    client = mlflow.MlflowClient()
    earlier = child_run_of(client, parent_run_id, name, "fit")
    if earlier is not None and MODEL_URI_TAG in earlier.data.tags:
        metrics = {key: value for key, value in earlier.data.metrics.items() if key.startswith("validation_")}
        return reused(earlier, metrics)
    # The parent's experiment, also when this runs in a process of its own (a pipeline task).
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    opened = (
        registry.resume_run(earlier.info.run_id)
        if earlier is not None
        else mlflow.start_run(run_name=name, parent_run_id=parent_run_id, experiment_id=experiment_id, tags=tags)
    )
    with opened as run:
        for table_input in datasets:
            mlflow.log_input(table_input, context="training")
        raw, search = select_candidate(candidates, splits, spec, config)
        estimator = raw.named_steps["model"]
        chosen = tuned_params(estimator)
        mlflow.log_params({**config.as_params(), "seed": lineage["seed"], "estimator": type(estimator).__name__})
        mlflow.log_params({f"model_{k}": str(v) for k, v in sorted(estimator.get_params().items()) if v is not None})
        log_metrics_once(search)
        model = calibrate(raw, splits["validation"], spec, config.calibration)
        validation_probability = evaluate.churn_probability(model, splits["validation"][spec.columns])
        rule = choose_rule(config, validation_probability)
        mlflow.log_dict(rule.to_dict(), "decision_rule.json")
        mlflow.set_tags({"decision_rule": rule.describe(), "calibration": config.calibration})
        trained_on = set(train["customer_token"].astype(str))
        result = _log_split_evaluation(
            validation_probability, name, "validation", splits["validation"], trained_on, rule, config.capacity_share
        )
        metrics = {f"validation_{key}": value for key, value in result.items()}
        importance = evaluate.feature_importance(raw)
        mlflow.log_table(importance, "feature_importance.json")
        mlflow.log_figure(evaluate.importance_figure(importance, f"{name}: feature importance"), "plots/importance.png")
        mlflow.log_dict(spec.to_dict(), "feature_spec.json")
        mlflow.set_tag(CHOSEN_PARAMS_TAG, json.dumps(chosen, sort_keys=True))
        model_uri = log_model(
            model,
            spec,
            train[spec.columns].head(5),
            {"data_commit": lineage["data_commit"], DECISION_RULE_KEY: rule.to_dict()},
        )
        mlflow.set_tag(MODEL_URI_TAG, model_uri)  # last: the run is complete
        logger.info(
            "trained %s %s: validation ROC-AUC %.4f (run %s)",
            name,
            chosen,
            metrics["validation_roc_auc"],
            run.info.run_id,
        )
        return FittedModel(name, run.info.run_id, model_uri, metrics, chosen, rule.to_dict())


@dataclass(frozen=True)
class TrainingSetup:
    """What :func:`begin_training` prepared: the splits, the spec, the parent run, the lineage tags and the
    configuration every later step uses."""

    data_commit: str
    experiment_id: str
    parent_run_id: str
    splits: dict[str, pd.DataFrame]
    spec: FeatureSpec
    lineage: dict[str, str]
    features_uri: str
    config: TrainingConfig


def alert_ghosts(
    sink: AlertSink, events: Activity, subscriptions: pd.DataFrame, cutoff: pd.Timestamp, run_id: str | None = None
) -> int:
    """Emit a ``ghost_customers`` alert (a count, no identifier) when customers active by their records at
    ``cutoff`` have been silent for more than ``GHOST_AFTER_HOURS`` with no cancellation: training leaves them
    out of its labels, and their cancellations may be in a billing export that never arrived. Return how many."""
    ghosts = len(ghost_customers(events, subscriptions, cutoff, GHOST_AFTER_HOURS))
    if ghosts:
        sink.emit(
            Alert(
                kind="ghost_customers",
                message=f"{ghosts} customers active by their records at the last labelled cutoff "
                f"({cutoff.isoformat()}) have been silent for more than {GHOST_AFTER_HOURS:g} h with no cancellation "
                "(a lost billing export?): training left them out of its labels",
                counts={"ghosts": ghosts},
                run_id=run_id,
            )
        )
    return ghosts


def begin_training(  # pylint: disable=too-many-arguments  # the stage's inputs, plus the key id as a keyword
    settings: Settings,
    events: Activity,
    subscriptions: pd.DataFrame,
    data_commit: str,
    seed: int = 42,
    config: TrainingConfig | None = None,
    schema_versions: str = "unknown",
    repo: DataRepository | None = None,
    *,
    tokenizer_key_id: str = "unknown",
    pipeline_run: str = "",
    reason: dict[str, str] | None = None,
    alerts: AlertSink | None = None,
) -> TrainingSetup:
    """Build the splits and open the parent run: lineage tags, dataset inputs, params, the feature matrices.

    Ghost customers at the last labelled cutoff raise a ``ghost_customers`` alert on ``alerts`` (default: the
    settings' sink; :func:`alert_ghosts`), once per training run (not again when a retried attempt resumes it).

    The feature matrices are run artifacts; with ``repo``, they are also committed to its
    ``features`` branch (see :func:`publish_features`) and ``features_uri`` points there.

    ``pipeline_run`` (the KFP run id of a training pipeline run) makes the parent run one per pipeline run:
    tagged ``kfp_run_id``, and a retried attempt of the same run on the same training (``training_key``)
    resumes the parent run an earlier attempt opened, logs what that attempt did not finish (the
    ``features_uri`` tag is set last) and publishes the features once.

    ``reason`` (tag -> value) records on the parent run what started the training, e.g. a drift check
    (:func:`churnops.training.monitoring.retrain_reason`); empty for a scheduled or manual training.
    """
    if not data_commit:
        raise ValueError("a data commit id is required: every run records the data it was trained on")
    config = config or TrainingConfig.from_settings(settings)
    spec = feature_spec(config.windows_h)
    splits = build_splits(events, subscriptions, config)
    client = registry.use_tracking(settings)
    experiment = mlflow.set_experiment(settings.mlflow_experiment)
    lineage = lineage_tags(settings, data_commit, seed, config, spec, schema_versions, tokenizer_key_id)
    tags = {**(reason or {}), **lineage, "run_kind": "training"}
    earlier = None
    if pipeline_run:
        tags[PIPELINE_RUN_TAG] = pipeline_run
        identity = {PIPELINE_RUN_TAG: pipeline_run, "run_kind": "training", "training_key": lineage["training_key"]}
        earlier = registry.find_run(client, experiment.experiment_id, identity)
    opened = (
        mlflow.start_run(run_id=earlier)
        if earlier
        else mlflow.start_run(run_name=f"train-{data_commit[:12]}", tags=tags)
    )
    with opened as parent:
        features_uri = parent.data.tags.get("features_uri", "")
        if not features_uri:
            for table_input in (
                # the events' schema, when they were read raw (pre-aggregates are derived from them in the same commit)
                dataset(settings, data_commit, "events/", events if isinstance(events, pd.DataFrame) else None),
                dataset(settings, data_commit, "subscriptions/", subscriptions),
            ):
                mlflow.log_input(table_input, context="training")
            mlflow.log_params({**config.as_params(), "seed": str(seed)})
            mlflow.log_params({f"{name}_rows": str(len(frame)) for name, frame in splits.items()})
            features_uri = record_features(settings, splits, spec, data_commit, parent.info.run_id, repo)
            last_cutoff = max(pd.Timestamp(frame["cutoff"].max()) for frame in splits.values())
            alert_ghosts(alerts or AlertSink(settings), events, subscriptions, last_cutoff, parent.info.run_id)
    if earlier:
        logger.info("training run resumed", extra={"parent_run_id": earlier, "kfp_run_id": pipeline_run})
    return TrainingSetup(
        data_commit, parent.info.experiment_id, parent.info.run_id, splits, spec, lineage, features_uri, config
    )


def fit_model(  # pylint: disable=too-many-arguments,too-many-positional-arguments  # one step's inputs
    settings: Settings,
    name: str,
    splits: dict[str, pd.DataFrame],
    spec: FeatureSpec,
    lineage: dict[str, str],
    parent_run_id: str,
    config: TrainingConfig | None = None,
) -> FittedModel:
    """Choose, fit and calibrate model ``name`` (``baseline`` or ``xgboost``) on the train and validation splits,
    in a child run of ``parent_run_id`` (see :func:`_train_one`); ``splits`` needs no test split.

    ``lineage`` holds the tags :func:`begin_training` set (``data_commit`` and ``seed`` among them).
    """
    config = config or TrainingConfig.from_settings(settings)
    seed = int(lineage["seed"])
    estimators = make_estimators(seed, config.xgb_params, config)
    if name not in estimators:
        raise ValueError(f"unknown model {name!r}: use one of {sorted(estimators)}")
    registry.use_tracking(settings)
    data_commit = lineage["data_commit"]
    datasets = [dataset(settings, data_commit, "events/"), dataset(settings, data_commit, "subscriptions/")]
    return _train_one(name, estimators[name], splits, spec, config, lineage, datasets, parent_run_id)


def refit_model(  # pylint: disable=too-many-arguments,too-many-positional-arguments,too-many-locals  # one step's inputs
    settings: Settings,
    fitted: FittedModel,
    splits: dict[str, pd.DataFrame],
    spec: FeatureSpec,
    lineage: dict[str, str],
    parent_run_id: str,
    config: TrainingConfig,
) -> FittedModel:
    """The chosen model refit on every labelled cutoff (train, validation and test rows, every customer),
    in a child run tagged ``refit_on_all_cutoffs``: what is registered once the gate passed.

    The estimator has the hyperparameters validation chose (``fitted.params``). It is calibrated out of
    fold: scikit-learn's CalibratedClassifierCV (``ensemble=False``) fits the calibrator on predictions
    for customers its fold never trained on (``config.refit_folds`` folds by customer), then refits the
    estimator on all rows. The top-k threshold is taken on the last labelled cutoff's rows, the
    population most like the one scored next. Its metrics are the evaluated model's as recorded in its run
    (``evaluated_run_id``), since no labelled rows are left to measure the refit on.

    One refit run per training run, as for :func:`fit_model`: a retried attempt reuses the refit run an earlier
    attempt completed, or resumes the one it left.
    """
    registry.use_tracking(settings)
    client = mlflow.MlflowClient()
    earlier = child_run_of(client, parent_run_id, fitted.name, "refit")
    if earlier is not None and MODEL_URI_TAG in earlier.data.tags:
        return reused(earlier, dict(fitted.metrics))
    seed = int(lineage["seed"])
    estimator = make_estimators(seed, config.xgb_params, config)[fitted.name][0].set_params(**fitted.params)
    frame = pd.concat([splits[name] for name in ("train", "validation", "test")], ignore_index=True)
    customers = frame["customer_token"].astype(str).to_numpy()
    folds = list(GroupKFold(n_splits=config.refit_folds).split(frame, frame[LABEL], customers))
    model = fit_pipeline(
        spec,
        estimator,
        config,
        frame[spec.columns],
        frame[LABEL].to_numpy(),
        wrap=lambda final: CalibratedClassifierCV(final, method=config.calibration, cv=folds, ensemble=False),
    )
    last = frame[frame["cutoff"] == frame["cutoff"].max()]
    rule = choose_rule(config, evaluate.churn_probability(model, last[spec.columns]))
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    tags = {
        **lineage,
        "model_type": fitted.name,
        "parent_run_id": parent_run_id,
        STEP_TAG: "refit",
        REFIT_TAG: "true",
        "evaluated_run_id": fitted.run_id,
        "decision_rule": rule.describe(),
        "calibration": config.calibration,
    }
    opened = (
        registry.resume_run(earlier.info.run_id)
        if earlier is not None
        else mlflow.start_run(
            run_name=f"{fitted.name}-refit", parent_run_id=parent_run_id, experiment_id=experiment_id, tags=tags
        )
    )
    with opened as run:
        for prefix in ("events/", "subscriptions/"):
            mlflow.log_input(dataset(settings, lineage["data_commit"], prefix), context="training")
        mlflow.log_params({**config.as_params(), "seed": lineage["seed"], "estimator": type(estimator).__name__})
        mlflow.log_params({f"model_{key}": str(value) for key, value in sorted(fitted.params.items())})
        mlflow.log_params(
            {
                "refit_rows": str(len(frame)),
                "refit_cutoffs": str(frame["cutoff"].nunique()),
                "refit_customers": str(len(set(customers))),
                "refit_calibration": f"out-of-fold, {config.refit_folds} folds by customer",
            }
        )
        log_metrics_once(client.get_run(fitted.run_id).data.metrics)
        mlflow.log_dict(rule.to_dict(), "decision_rule.json")
        mlflow.log_dict(spec.to_dict(), "feature_spec.json")
        mlflow.set_tag(CHOSEN_PARAMS_TAG, json.dumps(fitted.params, sort_keys=True))
        recorded = {"data_commit": lineage["data_commit"], DECISION_RULE_KEY: rule.to_dict(), REFIT_TAG: True}
        model_uri = log_model(model, spec, frame[spec.columns].head(5), recorded)
        mlflow.set_tag(MODEL_URI_TAG, model_uri)  # last: the run is complete
    logger.info(
        "refit %s on %d rows of %d cutoffs (run %s)",
        fitted.name,
        len(frame),
        frame["cutoff"].nunique(),
        run.info.run_id,
    )
    return FittedModel(
        fitted.name, run.info.run_id, model_uri, dict(fitted.metrics), dict(fitted.params), rule.to_dict()
    )


def gate_models(  # pylint: disable=too-many-arguments,too-many-positional-arguments  # one step's inputs
    settings: Settings,
    parent_run_id: str,
    scores: dict[str, dict[str, np.ndarray]],
    splits: dict[str, pd.DataFrame],
    spec: FeatureSpec,
    lineage: dict[str, str],
    config: TrainingConfig,
    behaviour: dict[str, BehaviourReport] | None = None,
) -> evaluate.GateDecision:
    """Choose the winner of challenger vs baseline on validation, confirm it on test against the recent
    ``production`` versions; record the decision.

    ``scores`` maps ``validation`` and ``test`` to each model's probabilities on those splits (in
    ``splits``), for the paired-bootstrap intervals over customers (see
    :func:`churnops.training.evaluate.gate`); the last ``config.gate_recent_production`` production
    versions are scored on the test rows and the winner must not lose to the best of them by more
    than the margin. The margin, confidence and resamples come from ``config``, the bootstrap's seed
    is the training seed (``lineage``): the in-process training and the pipeline's evaluate task take
    the same decision on the same data. ``behaviour`` (model name -> its behavioural checks on validation,
    :func:`churnops.training.behaviour.check_behaviour`) refuses a winner that fails one. The decision goes to the
    parent run (``gate.json``, ``gate_*`` tags and interval metrics).
    """
    client = registry.use_tracking(settings)
    validation, test = splits["validation"], splits["test"]
    production = recent_production_scores(client, settings.registered_model, test, spec, config.gate_recent_production)
    unseen, trained_on_test = unseen_by_production(client, settings.registered_model, list(production), test)
    for version in trained_on_test:
        logger.warning("production version %s was trained on every test row: it is not compared", version)
        del production[version]
    labels = validation[LABEL].to_numpy()
    auc = {
        name: evaluate.classification_metrics(labels, scores["validation"][name])["roc_auc"]
        for name in (BASELINE, CHALLENGER)
    }
    decision = evaluate.gate(
        auc[CHALLENGER],
        auc[BASELINE],
        None,
        config.gate_margin,
        None,
        labels=labels,
        challenger_scores=scores["validation"][CHALLENGER],
        baseline_scores=scores["validation"][BASELINE],
        production_scores=production or None,
        confidence=config.gate_confidence,
        resamples=config.gate_resamples,
        seed=int(lineage["seed"]),
        challenger=CHALLENGER,
        baseline=BASELINE,
        groups=validation["customer_token"].astype(str).to_numpy(),
        min_auc=config.gate_min_auc,
        test=evaluate.GateRows(test[LABEL].to_numpy(), scores["test"], test["customer_token"].astype(str).to_numpy()),
        production_rows=unseen,
        behaviour={name: report.reasons() for name, report in (behaviour or {}).items()},
    )
    with registry.resume_run(parent_run_id):
        mlflow.log_dict(decision.to_dict(), "gate.json")
        log_metrics_once(decision.metrics())
        mlflow.set_tags(
            {
                "gate_passed": str(decision.passed).lower(),
                "gate_reasons": "; ".join(decision.reasons),
                "gate_winner": decision.winner or "",
                "gate_summary": decision.summary[:5000],
                "gate_selection_split": decision.selection_split,
            }
        )
        if decision.production_auc is not None:
            log_metrics_once({"production_test_roc_auc": decision.production_auc})
    if not decision.passed:
        logger.warning("gate refused the new model: %s", "; ".join(decision.reasons))
    return decision


def register_candidate(  # pylint: disable=too-many-arguments,too-many-positional-arguments  # one step's inputs
    settings: Settings,
    parent_run_id: str,
    winner: FittedModel,
    baseline: FittedModel,
    lineage: dict[str, str],
    splits: dict[str, pd.DataFrame],
    spec: FeatureSpec,
    config: TrainingConfig,
) -> str:
    """Refit the gate's winner on every labelled cutoff (:func:`refit_model`) and register the refit as a new
    version with the ``candidate`` alias; the version's tags carry the evaluated model's test metrics,
    ``refit_on_all_cutoffs`` and the decision rule.

    When a version with the same ``training_key`` exists (same data commit, code version, parameters
    and seed), nothing is refitted or registered and no alias moves: that version is returned, and the
    parent run is tagged ``reproduced_version``.

    A retried attempt registers once: the version an earlier attempt of the same training run
    (``parent_run_id``) registered is found by its tags and finished (the ``candidate`` alias given unless it
    holds it already, the parent run tagged), and the refit run an earlier attempt logged is reused
    (:func:`refit_model`).
    """
    client = registry.use_tracking(settings)
    own = registry.find_version(client, settings.registered_model, {"parent_run_id": parent_run_id, REFIT_TAG: "true"})
    if own is not None:
        logger.info("training run %s registered version %s before this attempt", parent_run_id, own)
        return _finish_registration(settings, client, parent_run_id, own, winner.name)
    existing = reproduced_version(settings, lineage)
    if existing is not None:
        with registry.resume_run(parent_run_id):
            mlflow.set_tag("reproduced_version", existing)
        logger.warning(
            "this training reproduces %s version %s (same data commit, code version, parameters and "
            "seed): nothing registered, no alias moved",
            settings.registered_model,
            existing,
        )
        return existing
    refit = refit_model(settings, winner, splits, spec, lineage, parent_run_id, config)
    test_auc = {
        name: client.get_run(model.run_id).data.metrics.get("test_roc_auc", math.nan)
        for name, model in (("winner", winner), ("baseline", baseline))
    }
    version = registry.register_version(
        settings.registered_model,
        refit.model_uri,
        tags={
            **lineage,
            "run_id": refit.run_id,
            "evaluated_run_id": winner.run_id,
            "parent_run_id": parent_run_id,
            "model_type": winner.name,
            REFIT_TAG: "true",
            "calibration": config.calibration,
            DECISION_RULE_KEY: json.dumps(refit.decision_rule, sort_keys=True),
            LABELS_THROUGH_TAG: labels_through(splits, config.horizon_h).isoformat(),
            "test_roc_auc": f"{test_auc['winner']:.6f}",
            "baseline_test_roc_auc": f"{test_auc['baseline']:.6f}",
        },
    )
    return _finish_registration(settings, client, parent_run_id, version, winner.name)


def _finish_registration(
    settings: Settings, client: mlflow.MlflowClient, parent_run_id: str, version: str, model_type: str
) -> str:
    """Give the registered ``version`` the ``candidate`` alias (unless it holds it) and tag the training run."""
    if registry.alias_holder(client, settings.registered_model, "candidate") != version:
        registry.assign_alias(
            client,
            settings.registered_model,
            "candidate",
            version,
            note=f"gate passed in run {parent_run_id}",
            actor=registry.resolve_actor(settings),
        )
    with registry.resume_run(parent_run_id):
        mlflow.set_tag("model_version", version)
    logger.info("registered %s version %s (%s) as candidate", settings.registered_model, version, model_type)
    return version


def reproduced_version(settings: Settings, lineage: dict[str, str]) -> str | None:
    """The registered version with this lineage's ``training_key`` (None when there is none)."""
    if "training_key" not in lineage:
        return None
    client = registry.use_tracking(settings)
    return registry.find_version(client, settings.registered_model, {"training_key": lineage["training_key"]})


def train_on_frames(  # pylint: disable=too-many-arguments  # the stage's inputs, plus the key id as a keyword
    settings: Settings,
    events: Activity,
    subscriptions: pd.DataFrame,
    data_commit: str,
    seed: int = 42,
    config: TrainingConfig | None = None,
    schema_versions: str = "unknown",
    repo: DataRepository | None = None,
    *,
    tokenizer_key_id: str = "unknown",
    reason: dict[str, str] | None = None,
) -> TrainingResult:
    """Train, log, gate and (when the gate passes) refit and register, from published-format frames of
    ``data_commit``.

    The steps the training pipeline runs as separate tasks, in one process and with the same
    arguments: :func:`begin_training`, :func:`fit_model` per model (train and validation only),
    :func:`evaluate_models` (the gate: winner on validation, test scored once),
    :func:`register_candidate` (the winner refit on every labelled cutoff). ``config`` (default: from
    the settings) is the one configuration every step uses; ``reason`` tags the training run with what
    started it (:func:`begin_training`).
    """
    config = config or TrainingConfig.from_settings(settings)
    setup = begin_training(
        settings,
        events,
        subscriptions,
        data_commit,
        seed,
        config,
        schema_versions,
        repo,
        tokenizer_key_id=tokenizer_key_id,
        reason=reason,
    )
    fitted = {
        name: fit_model(settings, name, setup.splits, setup.spec, setup.lineage, setup.parent_run_id, config)
        for name in (BASELINE, CHALLENGER)
    }
    report = evaluate_models(settings, setup.parent_run_id, fitted, setup.splits, setup.spec, setup.lineage, config)
    evaluated = report.evaluated(fitted)
    decision = report.gate
    version = reproduced = None
    if decision.passed and decision.winner is not None:
        reproduced = reproduced_version(settings, setup.lineage)
        version = register_candidate(
            settings,
            setup.parent_run_id,
            evaluated[decision.winner],
            evaluated[BASELINE],
            setup.lineage,
            setup.splits,
            setup.spec,
            config,
        )
        if reproduced is not None:
            version = None  # nothing registered: the existing version was returned
    return TrainingResult(
        data_commit=data_commit,
        experiment_id=setup.experiment_id,
        parent_run_id=setup.parent_run_id,
        run_ids={name: model.run_id for name, model in fitted.items()},
        metrics={name: model.metrics for name, model in evaluated.items()},
        gate=decision,
        model_version=version,
        features_uri=setup.features_uri,
        reproduced_version=reproduced,
    )


def train_from_commit(
    settings: Settings,
    data_commit: str | None = None,
    seed: int = 42,
    config: TrainingConfig | None = None,
    repo: DataRepository | None = None,
    reason: dict[str, str] | None = None,
) -> TrainingResult:
    """Train on the published tables at ``data_commit`` (a commit id or branch; None = latest ``main``); ``reason``
    tags the training run with what started it."""
    repo = repo or open_repository(settings)
    data = published_at(repo, data_commit)
    return train_on_frames(
        settings,
        data.events,
        data.subscriptions,
        data.commit,
        seed,
        config,
        data.schema_versions,
        repo,
        tokenizer_key_id=data.tokenizer_key_id,
        reason=reason,
    )


def load_models(settings: Settings, model_uris: dict[str, str]) -> dict[str, Pipeline]:
    """Each logged model (name -> model URI) loaded from MLflow."""
    tracking = registry.use_tracking(settings).tracking_uri
    return {name: load_model(uri, tracking).pipeline for name, uri in model_uris.items()}


def score_splits(
    models: dict[str, Pipeline], frames: dict[str, pd.DataFrame], spec: FeatureSpec
) -> dict[str, dict[str, np.ndarray]]:
    """Each model scored on each frame: split -> model name -> probabilities."""
    return {
        split: {name: evaluate.churn_probability(model, frame[spec.columns]) for name, model in models.items()}
        for split, frame in frames.items()
    }


def split_probabilities(
    settings: Settings, model_uris: dict[str, str], frames: dict[str, pd.DataFrame], spec: FeatureSpec
) -> dict[str, dict[str, np.ndarray]]:
    """Each logged model (name -> model URI) loaded once from MLflow and scored on each frame:
    split -> model name -> probabilities."""
    return score_splits(load_models(settings, model_uris), frames, spec)


def record_behaviour(  # pylint: disable=too-many-arguments,too-many-positional-arguments  # one step's inputs
    fitted: dict[str, FittedModel],
    models: dict[str, Pipeline],
    splits: dict[str, pd.DataFrame],
    spec: FeatureSpec,
    config: TrainingConfig,
    seed: int,
) -> dict[str, BehaviourReport]:
    """Each model's behavioural checks on the validation split (:func:`churnops.training.behaviour.check_behaviour`,
    the train split's customers as the seen ones), logged in its own run: ``validation_behaviour_<check>``
    metrics and ``behaviour.json``; return them (name -> report)."""
    trained_on = set(splits["train"]["customer_token"].astype(str))
    reports: dict[str, BehaviourReport] = {}
    for name, model in fitted.items():
        report = check_behaviour(name, models[name], splits["validation"], spec, config, trained_on, seed)
        with registry.resume_run(model.run_id):
            log_metrics_once(report.metrics())
            mlflow.log_dict(report.to_dict(), "behaviour.json")
        if not report.passed:
            logger.warning("%s", "; ".join(report.reasons()))
        reports[name] = report
    return reports


def begin_training_at(
    settings: Settings,
    data_ref: str | None = None,
    seed: int = 42,
    repo: DataRepository | None = None,
    config: TrainingConfig | None = None,
    pipeline_run: str = "",
    reason: dict[str, str] | None = None,
) -> TrainingSetup:
    """:func:`begin_training` on the published tables at ``data_ref`` (a commit id or branch; None = ``main``),
    one parent run per ``pipeline_run`` when given, tagged with ``reason``."""
    repo = repo or open_repository(settings)
    data = published_at(repo, data_ref)
    return begin_training(
        settings,
        data.events,
        data.subscriptions,
        data.commit,
        seed,
        config or TrainingConfig.from_settings(settings),
        data.schema_versions,
        repo,
        tokenizer_key_id=data.tokenizer_key_id,
        pipeline_run=pipeline_run,
        reason=reason,
    )


def write_split(setup: TrainingSetup, split: str, path: str) -> None:
    """Write one split (keys, features, label) as parquet to ``path``."""
    setup.splits[split].to_parquet(path, index=False)


def split_metadata(setup: TrainingSetup, split: str) -> dict[str, Any]:
    """What a split's Dataset artifact carries: the feature spec, the label, rows and positives, the lineage."""
    frame = setup.splits[split]
    return {
        "feature_spec": setup.spec.to_dict(),
        "training_config": setup.config.to_json(),
        "label": LABEL,
        "rows": len(frame),
        "positives": int(frame[LABEL].sum()),
        "data_commit": setup.data_commit,
        "features_uri": setup.features_uri,
        "mlflow_run_id": setup.parent_run_id,
    }


@dataclass(frozen=True)
class EvaluationReport:
    """Both models on the test split (scored once, after the winner was chosen on validation): metrics,
    curves and confusion matrices at each model's decision threshold, the gate decision."""

    metrics: dict[str, dict[str, float]]
    roc: dict[str, dict[str, list[float]]]
    confusion: dict[str, list[list[int]]]
    gate: evaluate.GateDecision
    behaviour: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> validation_behaviour_<check>

    def flat_metrics(self) -> dict[str, float]:
        """``<model>_test_<metric>`` -> value, NaN left out (KFP metrics must be numbers)."""
        return {
            f"{name}_test_{key}": value
            for name, values in self.metrics.items()
            for key, value in values.items()
            if not math.isnan(value)
        }

    def evaluated(self, fitted: dict[str, FittedModel]) -> dict[str, FittedModel]:
        """``fitted`` with each model's test metrics (``test_<metric>``) and behavioural figures
        (``validation_behaviour_<check>``) added to its validation metrics."""
        return {
            name: replace(
                model,
                metrics={
                    **model.metrics,
                    **{f"test_{key}": value for key, value in self.metrics[name].items()},
                    **self.behaviour.get(name, {}),
                },
            )
            for name, model in fitted.items()
        }


def record_test(
    fitted: dict[str, FittedModel],
    probabilities: dict[str, np.ndarray],
    splits: dict[str, pd.DataFrame],
    config: TrainingConfig,
) -> dict[str, dict[str, float]]:
    """Log each model's test metrics and plots (``test_<metric>``, at its decision rule) in its own run, from
    its ``probabilities`` on the test split; return them (name -> metric -> value)."""
    test = splits["test"]
    trained_on = set(splits["train"]["customer_token"].astype(str))
    metrics: dict[str, dict[str, float]] = {}
    for name, model in fitted.items():
        rule = decision_rule_of({DECISION_RULE_KEY: model.decision_rule})
        with registry.resume_run(model.run_id):
            metrics[name] = _log_split_evaluation(
                probabilities[name], name, "test", test, trained_on, rule, config.capacity_share
            )
    return metrics


def evaluate_models(  # pylint: disable=too-many-arguments,too-many-positional-arguments,too-many-locals  # one step
    settings: Settings,
    parent_run_id: str,
    fitted: dict[str, FittedModel],
    splits: dict[str, pd.DataFrame],
    spec: FeatureSpec,
    lineage: dict[str, str],
    config: TrainingConfig,
) -> EvaluationReport:
    """Score each logged model (loaded from MLflow) on validation and, once, on test; run each model's
    behavioural checks on validation (:func:`record_behaviour`); :func:`gate_models`; log each model's test
    metrics and plots in its own run (``test_<metric>``)."""
    models = load_models(settings, {name: model.model_uri for name, model in fitted.items()})
    scores = score_splits(models, {split: splits[split] for split in ("validation", "test")}, spec)
    behaviour = record_behaviour(fitted, models, splits, spec, config, int(lineage["seed"]))
    decision = gate_models(settings, parent_run_id, scores, splits, spec, lineage, config, behaviour)
    labels = splits["test"][LABEL].to_numpy()
    metrics = record_test(fitted, scores["test"], splits, config)
    rules = {name: decision_rule_of({DECISION_RULE_KEY: model.decision_rule}) for name, model in fitted.items()}
    return EvaluationReport(
        metrics=metrics,
        roc={name: evaluate.roc_points(labels, p) for name, p in scores["test"].items()},
        confusion={
            name: evaluate.confusion_counts(labels, p, rules[name].threshold) for name, p in scores["test"].items()
        },
        gate=decision,
        behaviour={name: report.metrics() for name, report in behaviour.items()},
    )
