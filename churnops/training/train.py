"""Training: from an immutable data commit to logged, comparable, gated MLflow runs.

``train_from_commit`` resolves a ref of the data repository to a commit id, reads the published
``events/`` and ``subscriptions/`` tables at that commit and calls :func:`train_on_frames`, which

1. builds features and labels at hourly cutoffs and splits them by time (train / validation / test);
2. opens one parent MLflow run (lineage tags: ``data_commit``, ``git_sha`` and ``git_dirty``,
   ``lock_sha256``, ``image_digest``, ``params_sha256``, ``feature_spec_sha256``,
   ``tokenizer_key_id``, ``schema_versions``, ``seed``) and logs the feature matrices as its
   artifacts under ``features/``;
3. fits, per model (``baseline`` = logistic regression, ``xgboost``), one sklearn Pipeline
   (transform + estimator) in a nested run with params, validation/test metrics, plots, feature
   importance, the feature spec, the model itself and the data commit as a dataset input;
4. gates the models on the same test rows (see :func:`churnops.training.evaluate.gate`) and, when
   the winner passes, registers it and gives it the ``candidate`` alias, unless a version trained
   from the same data commit, code version, parameters and seed exists: then nothing is registered,
   no alias moves, and the result names the version it reproduced.

Same commit + same seed + same configuration gives the same metrics.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import tempfile
import warnings
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from churnops.data.versioning import DataRepository, open_repository
from churnops.data.versioning.base import DEFAULT_BRANCH, FEATURES_BRANCH
from churnops.errors import DataContractError, RegistryError
from churnops.model import registry
from churnops.model.scoring import load_model
from churnops.model.spec import FeatureSpec
from churnops.platform.buildinfo import code_version, lock_sha256
from churnops.platform.settings import TRAINING_DEFAULTS, Settings
from churnops.training import evaluate
from churnops.training.features import (
    DEFAULT_HORIZON_HOURS,
    DEFAULT_WINDOWS_HOURS,
    EVENT_COLUMNS,
    KEY_COLUMNS,
    LABEL,
    InsufficientData,
    build_training_set,
    choose_cutoffs,
    feature_spec,
    held_out_customers,
    split_by_time,
)
from churnops.training.transform import DEFAULT_PERCENTILE, MODEL_CODE_PATHS, SKOPS_TRUSTED_TYPES, build_model

logger = logging.getLogger(__name__)

BASELINE = "baseline"
CHALLENGER = "xgboost"
MODEL_ARTIFACT = "model"
# MLflow caps a dataset digest at 36 characters; the full commit id is in the source and tags.
DIGEST_LENGTH = 36
_MODEL_REQUIREMENTS = ("mlflow", "scikit-learn", "xgboost-cpu", "pandas", "numpy", "scipy", "cloudpickle", "skops")

DEFAULT_XGB_PARAMS: dict[str, Any] = {
    "n_estimators": 400,
    "max_depth": 5,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5.0,
    "reg_lambda": 1.0,
}


@dataclass(frozen=True)
class TrainingConfig:
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
    xgb_params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_XGB_PARAMS))

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "TrainingConfig":
        """The configuration the settings describe, with keyword overrides."""
        values: dict[str, Any] = {
            "windows_h": tuple(settings.feature_windows_hours),
            "horizon_h": settings.label_horizon_hours,
            "cutoff_step_h": settings.cutoff_step_hours,
            "min_history_h": settings.min_history_hours,
            "gate_margin": settings.gate_margin,
            "gate_confidence": settings.gate_confidence,
            "gate_resamples": settings.gate_resamples,
            "gate_min_auc": settings.gate_min_auc,
        }
        values.update(overrides)
        return cls(**values)

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
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


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


def dataset_source(settings: Settings, data_commit: str, prefix: str) -> str:
    """The S3-gateway address of a table at a commit (``s3://<repository>/<commit>/<prefix>``)."""
    return f"s3://{settings.lakefs_repository}/{data_commit}/{prefix}"


def sha256_json(value: Any) -> str:
    """sha256 of the canonical JSON of ``value`` (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


IDENTITY_TAGS: tuple[str, ...] = ("data_commit", "git_sha", "params_sha256", "seed")


def lineage_tags(
    settings: Settings,
    data_commit: str,
    seed: int,
    config: TrainingConfig,
    spec: FeatureSpec,
    schema_versions: str = "unknown",
    tokenizer_key_id: str = "unknown",
) -> dict[str, str]:
    """Tags that tie a run (and the version registered from it) to its data, code, environment and inputs.

    ``training_key`` hashes :data:`IDENTITY_TAGS`: equal keys mean the same data commit, code
    version, parameters and seed, i.e. the same model.
    """
    code = code_version(settings)
    tags = {
        "data_commit": data_commit,
        "git_sha": str(code),
        "git_dirty": str(code.dirty).lower(),
        "code_version_source": code.source,
        "lock_sha256": lock_sha256(),
        "schema_versions": schema_versions,
        "lakefs_repository": settings.lakefs_repository,
        "seed": str(seed),
        "params_sha256": sha256_json(config.as_params()),
        "feature_spec_sha256": sha256_json(spec.to_dict()),
        "tokenizer_key_id": tokenizer_key_id,
    }
    if settings.image_digest:
        tags["image_digest"] = settings.image_digest
    tags["training_key"] = sha256_json({key: tags[key] for key in IDENTITY_TAGS})
    return tags


def _dataset(settings: Settings, data_commit: str, prefix: str, frame: pd.DataFrame | None = None) -> MetaDataset:
    """The table at the commit as an MLflow dataset: S3-gateway source, commit digest, column schema (with a frame)."""
    schema = None
    if frame is not None:
        categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
        sample = frame.head(200).astype({c: object for c in categorical})
        with warnings.catch_warnings():
            # MLflow hints that integer columns cannot hold missing values; the schema only documents the table.
            warnings.filterwarnings(
                "ignore", message="Hint: Inferred schema contains integer column", category=UserWarning
            )
            schema = infer_signature(sample).inputs
    return MetaDataset(
        source=resolve_dataset_source(dataset_source(settings, data_commit, prefix)),
        name=prefix.rstrip("/"),
        digest=data_commit[:DIGEST_LENGTH],
        schema=schema,
    )


def _model_requirements() -> list[str]:
    pins = []
    for name in _MODEL_REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


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


def build_splits(events: pd.DataFrame, subscriptions: pd.DataFrame, config: TrainingConfig) -> dict[str, pd.DataFrame]:
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


def make_estimators(seed: int, train_labels: pd.Series, xgb_params: dict[str, Any]) -> dict[str, BaseEstimator]:
    """The baseline and the challenger, seeded and weighted for class imbalance."""
    positives = int(train_labels.sum())
    negatives = int(len(train_labels) - positives)
    return {
        BASELINE: LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed),
        CHALLENGER: XGBClassifier(
            **xgb_params,
            tree_method="hist",
            n_jobs=1,
            random_state=seed,
            scale_pos_weight=negatives / max(positives, 1),
            eval_metric="logloss",
        ),
    }


def model_signature(spec: FeatureSpec, X: pd.DataFrame, probability: np.ndarray) -> ModelSignature:
    """Inputs from the spec (every column optional: serving may send nulls); outputs from predict_proba."""
    inputs = Schema(
        [ColSpec("double", name, required=False) for name in spec.numeric]
        + [ColSpec("string", name, required=False) for name in spec.categorical]
    )
    return ModelSignature(inputs=inputs, outputs=infer_signature(X.head(5), probability).outputs)


def input_example(spec: FeatureSpec) -> pd.DataFrame:
    """The logged model's input example: one synthetic row of the spec's types (zeros and nulls).

    It shows the input's shape without any customer's values (``docs/security.md``): the model
    accepts nulls in every column, as serving may send them.
    """
    numeric = {name: pd.Series([0.0], dtype="float64") for name in spec.numeric}
    categorical = {name: pd.Series([None], dtype=object) for name in spec.categorical}
    return pd.DataFrame({**numeric, **categorical})[spec.columns]


def _parquet_bytes(frame: pd.DataFrame) -> tuple[bytes, pa.Schema]:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue(), table.schema


def feature_files(splits: dict[str, pd.DataFrame], spec: FeatureSpec, data_commit: str) -> dict[str, bytes]:
    """The run's feature matrices as files: ``<split>.parquet`` (keys, features, label) and ``schema.json``."""
    schema: dict[str, Any] = {
        "data_commit": data_commit,
        "label": LABEL,
        "keys": list(KEY_COLUMNS),
        "spec": spec.to_dict(),
    }
    files: dict[str, bytes] = {}
    for name, frame in splits.items():
        files[f"{name}.parquet"], arrow_schema = _parquet_bytes(frame)
        schema.setdefault("columns", [{"name": f.name, "type": str(f.type)} for f in arrow_schema])
        schema.setdefault("splits", {})[name] = {
            "rows": len(frame),
            "positives": int(frame[LABEL].sum()),
            "cutoffs": [c.isoformat() for c in sorted(frame["cutoff"].unique())],
        }
    files["schema.json"] = json.dumps(schema, indent=2, sort_keys=True).encode()
    return files


def publish_features(repo: DataRepository, files: dict[str, bytes], data_commit: str, run_id: str) -> str:
    """Commit the feature matrices to the lake's ``features`` branch under ``features/<data_commit>/<run_id>/``.

    The branch starts from the data it describes and never merges into ``main``, so publishing
    features does not change what "latest data" means. Each run writes on a branch of its own and
    merges it into ``features``, so concurrent trainings cannot mix their files. Returns
    ``<commit id>/<path prefix>``.
    """
    if not repo.branch_exists(FEATURES_BRANCH):
        repo.create_branch(FEATURES_BRANCH, source=data_commit)
    run_branch = f"features-{run_id[:12]}"
    repo.create_branch(run_branch, source=FEATURES_BRANCH)
    prefix = f"features/{data_commit}/{run_id}"
    try:
        repo.put_objects(run_branch, {f"{prefix}/{name}": content for name, content in files.items()})
        lineage = {"source_commit": data_commit, "run_id": run_id}
        repo.commit(run_branch, f"feature matrices of run {run_id} on {data_commit[:12]}", lineage)
        commit = repo.merge(run_branch, into=FEATURES_BRANCH, message=f"features of run {run_id}", metadata=lineage)
    finally:
        repo.delete_branch(run_branch)
    return f"{commit}/{prefix}"


def _record_features(
    settings: Settings,
    splits: dict[str, pd.DataFrame],
    spec: FeatureSpec,
    data_commit: str,
    run_id: str,
    repo: DataRepository | None,
) -> str:
    """Log the feature matrices as run artifacts and, with a repository, commit them to the lake.

    Returns (and tags the run with) ``features_uri``: the lake location when committed, else the
    run's artifact folder.
    """
    files = feature_files(splits, spec, data_commit)
    for name, content in files.items():
        _log_bytes(content, f"features/{name}")
    features_uri = f"runs:/{run_id}/features"
    if repo is not None:
        features_uri = f"lakefs://{settings.lakefs_repository}/{publish_features(repo, files, data_commit, run_id)}"
    mlflow.set_tag("features_uri", features_uri)
    return features_uri


def _log_bytes(content: bytes, artifact_path: str) -> None:
    """Log raw bytes as a run artifact at ``artifact_path``."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / Path(artifact_path).name
        local.write_bytes(content)
        mlflow.log_artifact(str(local), artifact_path=str(Path(artifact_path).parent))


# --------------------------------------------------------------------------------------------
# Runs


def _log_split_evaluation(
    model: Pipeline, name: str, split: str, frame: pd.DataFrame, spec: FeatureSpec, trained_on: set[str]
) -> dict:
    """Score one split, log its metrics (``<split>_<metric>``) and plots; return the metrics.

    ROC-AUC is also computed apart for the customers training saw (``<split>_seen_roc_auc``) and the
    ones it never saw (``<split>_unseen_roc_auc``): a model that memorises customers does better on
    the first.
    """
    probability = evaluate.churn_probability(model, frame[spec.columns])
    metrics = evaluate.classification_metrics(frame[LABEL], probability)
    seen = frame["customer_token"].astype(str).isin(trained_on).to_numpy()
    for group, rows in (("seen", seen), ("unseen", ~seen)):
        labels = frame[LABEL].to_numpy()[rows]
        if np.unique(labels).size == 2:
            metrics[f"{group}_roc_auc"] = evaluate.classification_metrics(labels, probability[rows])["roc_auc"]
    mlflow.log_metrics({f"{split}_{key}": value for key, value in metrics.items() if not math.isnan(value)})
    title = f"{name} ({split})"
    confusion = evaluate.confusion_matrix_figure(frame[LABEL], probability, title)
    mlflow.log_figure(confusion, f"plots/{split}_confusion.png")
    mlflow.log_figure(evaluate.reliability_figure(frame[LABEL], probability, title), f"plots/{split}_reliability.png")
    for kind in ("roc", "pr"):
        figure = evaluate.curve_figure(kind, frame[LABEL], probability, title)
        if figure is not None:
            mlflow.log_figure(figure, f"plots/{split}_{kind}_curve.png")
    return metrics


def _train_one(
    name: str,
    estimator: BaseEstimator,
    splits: dict[str, pd.DataFrame],
    spec: FeatureSpec,
    config: TrainingConfig,
    lineage: dict[str, str],
    datasets: list[MetaDataset],
    parent_run_id: str,
) -> tuple[str, Pipeline, dict[str, float], str]:
    """Fit and log one model in a child run of ``parent_run_id``; return (run id, model, metrics, model URI)."""
    train = splits["train"]
    tags = {**lineage, "model_type": name, "parent_run_id": parent_run_id}
    # The parent's experiment, also when this runs in a process of its own (a pipeline task).
    experiment_id = mlflow.get_run(parent_run_id).info.experiment_id
    with mlflow.start_run(run_name=name, parent_run_id=parent_run_id, experiment_id=experiment_id, tags=tags) as run:
        for dataset in datasets:
            mlflow.log_input(dataset, context="training")
        mlflow.log_params({**config.as_params(), "seed": lineage["seed"], "estimator": type(estimator).__name__})
        mlflow.log_params({f"model_{k}": str(v) for k, v in sorted(estimator.get_params().items()) if v is not None})
        model = build_model(spec, estimator, config.select_percentile).fit(train[spec.columns], train[LABEL].to_numpy())
        metrics: dict[str, float] = {}
        trained_on = set(train["customer_token"].astype(str))
        for split in ("validation", "test"):
            result = _log_split_evaluation(model, name, split, splits[split], spec, trained_on)
            metrics.update({f"{split}_{key}": value for key, value in result.items()})
        importance = evaluate.feature_importance(model)
        mlflow.log_table(importance, "feature_importance.json")
        mlflow.log_figure(evaluate.importance_figure(importance, f"{name}: feature importance"), "plots/importance.png")
        mlflow.log_dict(spec.to_dict(), "feature_spec.json")
        example = input_example(spec)
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            signature=model_signature(spec, example, model.predict_proba(train[spec.columns].head(5))),
            input_example=example,
            pip_requirements=_model_requirements(),
            pyfunc_predict_fn="predict_proba",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
            code_paths=list(MODEL_CODE_PATHS),
            metadata={"data_commit": lineage["data_commit"]},
        )
        logger.info("trained %s: test ROC-AUC %.4f (run %s)", name, metrics["test_roc_auc"], run.info.run_id)
        return run.info.run_id, model, metrics, info.model_uri


def production_test_scores(
    client: mlflow.MlflowClient, model_name: str, test: pd.DataFrame, spec: FeatureSpec
) -> tuple[np.ndarray | None, str | None]:
    """The ``production`` model's churn probabilities on these test rows, and its version (None, None if none)."""
    version = registry.alias_holder(client, model_name, "production")
    if version is None:
        return None, None
    production = load_model(f"models:/{model_name}@production", client.tracking_uri).pipeline
    try:
        return evaluate.churn_probability(production, test[spec.columns]), version
    except (KeyError, ValueError) as exc:
        raise RegistryError(
            f"production version {version} cannot score this test set (different feature spec?): {exc}"
        ) from exc


def production_test_auc(
    client: mlflow.MlflowClient, model_name: str, test: pd.DataFrame, spec: FeatureSpec
) -> tuple[float | None, str | None]:
    """The ``production`` model's ROC-AUC on these test rows, and its version (None, None if none)."""
    scores, version = production_test_scores(client, model_name, test, spec)
    if scores is None:
        return None, None
    return evaluate.classification_metrics(test[LABEL], scores)["roc_auc"], version


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


@dataclass(frozen=True)
class FittedModel:
    """One fitted and logged model: its run, its logged model URI and its validation/test metrics."""

    name: str
    run_id: str
    model_uri: str
    metrics: dict[str, float]


def begin_training(  # pylint: disable=too-many-arguments  # the stage's inputs, plus the key id as a keyword
    settings: Settings,
    events: pd.DataFrame,
    subscriptions: pd.DataFrame,
    data_commit: str,
    seed: int = 42,
    config: TrainingConfig | None = None,
    schema_versions: str = "unknown",
    repo: DataRepository | None = None,
    *,
    tokenizer_key_id: str = "unknown",
) -> TrainingSetup:
    """Build the splits and open the parent run: lineage tags, dataset inputs, params, the feature matrices.

    The feature matrices are run artifacts; with ``repo``, they are also committed to its
    ``features`` branch (see :func:`publish_features`) and ``features_uri`` points there.
    """
    if not data_commit:
        raise ValueError("a data commit id is required: every run records the data it was trained on")
    config = config or TrainingConfig.from_settings(settings)
    spec = feature_spec(config.windows_h)
    splits = build_splits(events, subscriptions, config)
    registry.use_tracking(settings)
    mlflow.set_experiment(settings.mlflow_experiment)
    lineage = lineage_tags(settings, data_commit, seed, config, spec, schema_versions, tokenizer_key_id)
    with mlflow.start_run(run_name=f"train-{data_commit[:12]}", tags={**lineage, "run_kind": "training"}) as parent:
        for dataset in (
            _dataset(settings, data_commit, "events/", events),
            _dataset(settings, data_commit, "subscriptions/", subscriptions),
        ):
            mlflow.log_input(dataset, context="training")
        mlflow.log_params({**config.as_params(), "seed": str(seed)})
        mlflow.log_params({f"{name}_rows": str(len(frame)) for name, frame in splits.items()})
        features_uri = _record_features(settings, splits, spec, data_commit, parent.info.run_id, repo)
    return TrainingSetup(
        data_commit, parent.info.experiment_id, parent.info.run_id, splits, spec, lineage, features_uri, config
    )


def fit_model(
    settings: Settings,
    name: str,
    splits: dict[str, pd.DataFrame],
    spec: FeatureSpec,
    lineage: dict[str, str],
    parent_run_id: str,
    config: TrainingConfig | None = None,
) -> FittedModel:
    """Fit model ``name`` (``baseline`` or ``xgboost``) on the train split, in a child run of ``parent_run_id``.

    ``lineage`` holds the tags :func:`begin_training` set (``data_commit`` and ``seed`` among them).
    """
    config = config or TrainingConfig.from_settings(settings)
    seed = int(lineage["seed"])
    estimators = make_estimators(seed, splits["train"][LABEL], config.xgb_params)
    if name not in estimators:
        raise ValueError(f"unknown model {name!r}: use one of {sorted(estimators)}")
    registry.use_tracking(settings)
    data_commit = lineage["data_commit"]
    datasets = [_dataset(settings, data_commit, "events/"), _dataset(settings, data_commit, "subscriptions/")]
    run_id, _, metrics, model_uri = _train_one(
        name, estimators[name], splits, spec, config, lineage, datasets, parent_run_id
    )
    return FittedModel(name=name, run_id=run_id, model_uri=model_uri, metrics=metrics)


def gate_models(
    settings: Settings,
    parent_run_id: str,
    scores: dict[str, np.ndarray],
    test: pd.DataFrame,
    spec: FeatureSpec,
    lineage: dict[str, str],
    config: TrainingConfig,
) -> evaluate.GateDecision:
    """Pick the winner of challenger vs baseline and check it against the ``production`` model; record it.

    ``scores`` maps ``baseline`` and ``xgboost`` to their probabilities on ``test``, for the
    paired-bootstrap intervals (see :func:`churnops.training.evaluate.gate`). The margin, confidence
    and resamples come from ``config``, the bootstrap's seed is the training seed (``lineage``):
    the in-process training and the pipeline's evaluate task take the same decision on the same
    data. The decision goes to the parent run (``gate.json``, ``gate_*`` tags and interval metrics).
    """
    client = registry.use_tracking(settings)
    production_scores, production_version = production_test_scores(client, settings.registered_model, test, spec)
    labels = test[LABEL].to_numpy()
    auc = {name: evaluate.classification_metrics(labels, scores[name])["roc_auc"] for name in (BASELINE, CHALLENGER)}
    decision = evaluate.gate(
        auc[CHALLENGER],
        auc[BASELINE],
        None,
        config.gate_margin,
        production_version,
        labels=labels,
        challenger_scores=scores[CHALLENGER],
        baseline_scores=scores[BASELINE],
        production_scores=production_scores,
        confidence=config.gate_confidence,
        resamples=config.gate_resamples,
        seed=int(lineage["seed"]),
        challenger=CHALLENGER,
        baseline=BASELINE,
        groups=test["customer_token"].astype(str).to_numpy(),
        min_auc=config.gate_min_auc,
    )
    with registry.resume_run(parent_run_id):
        mlflow.log_dict(decision.to_dict(), "gate.json")
        mlflow.log_metrics(decision.metrics())
        mlflow.set_tags(
            {
                "gate_passed": str(decision.passed).lower(),
                "gate_reasons": "; ".join(decision.reasons),
                "gate_winner": decision.winner or "",
                "gate_summary": decision.summary[:5000],
            }
        )
        if decision.production_auc is not None and not math.isnan(decision.production_auc):
            mlflow.log_metric("production_test_roc_auc", decision.production_auc)
    if not decision.passed:
        logger.warning("gate refused the new model: %s", "; ".join(decision.reasons))
    return decision


def register_candidate(
    settings: Settings,
    parent_run_id: str,
    challenger: FittedModel,
    baseline_test_auc: float,
    lineage: dict[str, str],
) -> str:
    """Register the gate's winner (``challenger``: whichever model won) as a new version with the ``candidate`` alias.

    When a version with the same ``training_key`` exists (same data commit, code version, parameters
    and seed), nothing is registered and no alias moves: that version is returned, and the parent
    run is tagged ``reproduced_version``.
    """
    client = registry.use_tracking(settings)
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
    version = registry.register_version(
        settings.registered_model,
        challenger.model_uri,
        tags={
            **lineage,
            "run_id": challenger.run_id,
            "parent_run_id": parent_run_id,
            "model_type": challenger.name,
            "test_roc_auc": f"{challenger.metrics['test_roc_auc']:.6f}",
            "baseline_test_roc_auc": f"{baseline_test_auc:.6f}",
        },
    )
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
    logger.info("registered %s version %s (%s) as candidate", settings.registered_model, version, challenger.name)
    return version


def reproduced_version(settings: Settings, lineage: dict[str, str]) -> str | None:
    """The registered version with this lineage's ``training_key`` (None when there is none)."""
    if "training_key" not in lineage:
        return None
    client = registry.use_tracking(settings)
    return registry.find_version(client, settings.registered_model, {"training_key": lineage["training_key"]})


def train_on_frames(  # pylint: disable=too-many-arguments  # the stage's inputs, plus the key id as a keyword
    settings: Settings,
    events: pd.DataFrame,
    subscriptions: pd.DataFrame,
    data_commit: str,
    seed: int = 42,
    config: TrainingConfig | None = None,
    schema_versions: str = "unknown",
    repo: DataRepository | None = None,
    *,
    tokenizer_key_id: str = "unknown",
) -> TrainingResult:
    """Train, log, gate and (when the gate passes) register, from published-format frames of ``data_commit``.

    The steps the training pipeline runs as separate tasks, in one process and with the same
    arguments: :func:`begin_training`, :func:`fit_model` per model, :func:`evaluate_models` (the
    gate), :func:`register_candidate` (of the winner). ``config`` (default: from the settings) is
    the one configuration every step uses.
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
    )
    fitted = {
        name: fit_model(settings, name, setup.splits, setup.spec, setup.lineage, setup.parent_run_id, config)
        for name in (BASELINE, CHALLENGER)
    }
    report = evaluate_models(
        settings,
        setup.parent_run_id,
        {name: model.model_uri for name, model in fitted.items()},
        setup.splits["test"],
        setup.spec,
        setup.lineage,
        config,
    )
    decision = report.gate
    version = reproduced = None
    if decision.passed and decision.winner is not None:
        reproduced = reproduced_version(settings, setup.lineage)
        version = register_candidate(
            settings,
            setup.parent_run_id,
            fitted[decision.winner],
            fitted[BASELINE].metrics["test_roc_auc"],
            setup.lineage,
        )
        if reproduced is not None:
            version = None  # nothing registered: the existing version was returned
    return TrainingResult(
        data_commit=data_commit,
        experiment_id=setup.experiment_id,
        parent_run_id=setup.parent_run_id,
        run_ids={name: model.run_id for name, model in fitted.items()},
        metrics={name: model.metrics for name, model in fitted.items()},
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
) -> TrainingResult:
    """Train on the published tables at ``data_commit`` (a commit id or branch; None = latest ``main``)."""
    repo = repo or open_repository(settings)
    commit = repo.resolve(data_commit or DEFAULT_BRANCH)
    commit_metadata = repo.commit_info(commit).metadata
    events, subscriptions = load_tables(repo, commit)
    logger.info(
        "training on data commit %s (%d events, %d subscription records)", commit, len(events), len(subscriptions)
    )
    return train_on_frames(
        settings,
        events,
        subscriptions,
        commit,
        seed,
        config,
        commit_metadata.get("schema_versions", "unknown"),
        repo,
        tokenizer_key_id=commit_metadata.get("tokenizer_key_id", "unknown"),
    )


def test_probabilities(
    settings: Settings, model_uris: dict[str, str], test: pd.DataFrame, spec: FeatureSpec
) -> dict[str, np.ndarray]:
    """Each logged model (name -> model URI) loaded from MLflow and scored on the test split."""
    tracking = registry.use_tracking(settings).tracking_uri
    return {
        name: evaluate.churn_probability(load_model(uri, tracking).pipeline, test[spec.columns])
        for name, uri in model_uris.items()
    }


# --------------------------------------------------------------------------------------------
# The training pipeline's steps: what each task hands the next (files and artifact metadata)


def begin_training_at(
    settings: Settings,
    data_ref: str | None = None,
    seed: int = 42,
    repo: DataRepository | None = None,
    config: TrainingConfig | None = None,
) -> TrainingSetup:
    """:func:`begin_training` on the published tables at ``data_ref`` (a commit id or branch; None = ``main``)."""
    repo = repo or open_repository(settings)
    commit = repo.resolve(data_ref or DEFAULT_BRANCH)
    commit_metadata = repo.commit_info(commit).metadata
    events, subscriptions = load_tables(repo, commit)
    config = config or TrainingConfig.from_settings(settings)
    return begin_training(
        settings,
        events,
        subscriptions,
        commit,
        seed,
        config,
        commit_metadata.get("schema_versions", "unknown"),
        repo,
        tokenizer_key_id=commit_metadata.get("tokenizer_key_id", "unknown"),
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


def read_splits(
    paths: dict[str, str], artifact_metadata: dict[str, Any]
) -> tuple[dict[str, pd.DataFrame], FeatureSpec, TrainingConfig]:
    """Splits written by :func:`write_split` (name -> path), and the feature spec and training configuration
    from their artifact metadata: every task of a training uses the configuration the features task used."""
    for key in ("feature_spec", "training_config"):
        if key not in artifact_metadata:
            raise ValueError(f"the split's metadata holds no {key}: it was not written by the features step")
    frames = {name: pd.read_parquet(path) for name, path in paths.items()}
    return (
        frames,
        FeatureSpec.from_dict(artifact_metadata["feature_spec"]),
        TrainingConfig.from_json(str(artifact_metadata["training_config"])),
    )


def export_model(settings: Settings, fitted: FittedModel, path: str) -> None:
    """Copy the fitted model's MLflow model directory to ``path`` (the task's Model artifact)."""
    registry.use_tracking(settings)
    Path(path).mkdir(parents=True, exist_ok=True)
    mlflow.artifacts.download_artifacts(artifact_uri=fitted.model_uri, dst_path=path)


def model_metadata(fitted: FittedModel) -> dict[str, Any]:
    """What a Model artifact carries: the model's name, run, MLflow URI and metrics (NaN left out)."""
    return {
        "model_name": fitted.name,
        "run_id": fitted.run_id,
        "model_uri": fitted.model_uri,
        "metrics": {key: value for key, value in fitted.metrics.items() if not math.isnan(value)},
    }


def fitted_from_metadata(artifact_metadata: dict[str, Any]) -> FittedModel:
    """The inverse of :func:`model_metadata` (a metric missing there was NaN)."""
    metrics = {key: float(value) for key, value in dict(artifact_metadata.get("metrics", {})).items()}
    metrics.setdefault("test_roc_auc", math.nan)
    return FittedModel(
        name=str(artifact_metadata["model_name"]),
        run_id=str(artifact_metadata["run_id"]),
        model_uri=str(artifact_metadata["model_uri"]),
        metrics=metrics,
    )


@dataclass(frozen=True)
class EvaluationReport:
    """Both models on the test split: metrics, the challenger's curves, the gate decision."""

    metrics: dict[str, dict[str, float]]
    roc: dict[str, dict[str, list[float]]]
    confusion: dict[str, list[list[int]]]
    gate: evaluate.GateDecision

    def flat_metrics(self) -> dict[str, float]:
        """``<model>_test_<metric>`` -> value, NaN left out (KFP metrics must be numbers)."""
        return {
            f"{name}_test_{key}": value
            for name, values in self.metrics.items()
            for key, value in values.items()
            if not math.isnan(value)
        }


def evaluate_models(  # pylint: disable=too-many-arguments,too-many-positional-arguments  # one step's inputs
    settings: Settings,
    parent_run_id: str,
    model_uris: dict[str, str],
    test: pd.DataFrame,
    spec: FeatureSpec,
    lineage: dict[str, str],
    config: TrainingConfig,
) -> EvaluationReport:
    """Score each logged model (loaded from MLflow) on the test split, then :func:`gate_models`."""
    probabilities = test_probabilities(settings, model_uris, test, spec)
    labels = test[LABEL].to_numpy()
    metrics = {name: evaluate.classification_metrics(labels, p) for name, p in probabilities.items()}
    decision = gate_models(settings, parent_run_id, probabilities, test, spec, lineage, config)
    return EvaluationReport(
        metrics=metrics,
        roc={name: evaluate.roc_points(labels, p) for name, p in probabilities.items()},
        confusion={name: evaluate.confusion_counts(labels, p) for name, p in probabilities.items()},
        gate=decision,
    )
