"""Reproduce a model: from a registered version (or a run) back to its data, code and parameters, and retrain.

:func:`reproduce` reads the lineage the training recorded on the model's run (data commit, seed,
parameters, code version, lock hash, image digest), checks that the data commit still resolves in
the lake, rebuilds the feature matrices from the lake at that commit, compares them with the ones
the training recorded, retrains the same estimator with the recorded parameters and seed in a new
run tagged ``reproduces=<run id>``, and compares every metric and the test predictions with the
original. It registers nothing and moves no alias.

Each comparison is ``identical`` (bit for bit), ``within tolerance`` (absolute difference at most
``tolerance``) or ``different``; the report names what differs between the original run and this
one (code version, lock hash, image, parameters, feature matrices), which is where a difference
can come from.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from churnops.data.contract import arrow_call
from churnops.data.purge import commit_map
from churnops.data.subjects import ERASURES_PREFIX, erasure_records
from churnops.data.versioning import DataRepository, NotFoundError, ObjectExpired, open_repository
from churnops.data.versioning.uri import locate
from churnops.errors import RegistryError
from churnops.model import registry
from churnops.model.scoring import load_model
from churnops.platform.settings import Settings
from churnops.training import evaluate
from churnops.training import train as training
from churnops.training.config import REFIT_TAG, TrainingConfig, settings_values, tuples_from_json
from churnops.training.estimators import BASELINE, CHALLENGER, MODEL_ARTIFACT
from churnops.training.featurefiles import feature_files
from churnops.training.features import SPLITS, Activity, HourlyActivity, feature_spec
from churnops.training.lineage import lineage_tags

logger = logging.getLogger(__name__)

IDENTICAL, WITHIN, DIFFERENT = "identical", "within tolerance", "different"
_ORDER = {IDENTICAL: 0, WITHIN: 1, DIFFERENT: 2}
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
# Recorded tags that name the environment a result came from: a difference in any of them can explain
# a difference in the results.
ENVIRONMENT_TAGS: dict[str, str] = {
    "git_sha": "code version",
    "lock_sha256": "lock hash (requirements.lock)",
    "image_digest": "image digest",
    "feature_spec_sha256": "feature spec",
}


@dataclass(frozen=True)
class Check:
    """One compared figure: the original value, the reproduced one and the verdict."""

    name: str
    original: float
    reproduced: float
    verdict: str

    @property
    def difference(self) -> float:
        """reproduced - original (0 when both are NaN)."""
        if math.isnan(self.original) and math.isnan(self.reproduced):
            return 0.0
        return self.reproduced - self.original


@dataclass(frozen=True)
class ReproductionReport:  # pylint: disable=too-many-instance-attributes  # one flat record, shown and logged
    """What a reproduction found."""

    target: str
    model_type: str
    version: str | None
    source_run_id: str
    data_commit: str
    run_id: str
    parent_run_id: str
    tolerance: float
    metrics: list[Check]
    predictions: Check
    features: str
    causes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """The worst verdict over metrics, predictions and feature matrices."""
        verdicts = [check.verdict for check in self.metrics] + [self.predictions.verdict, self.features]
        return max(verdicts, key=_ORDER.__getitem__)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (NaN becomes null)."""
        data = dataclasses.asdict(self)
        data["verdict"] = self.verdict
        view: dict[str, Any] = json.loads(json.dumps(data, default=str).replace("NaN", "null"))
        return view


def _verdict(original: float, reproduced: float, tolerance: float) -> str:
    if (math.isnan(original) and math.isnan(reproduced)) or original == reproduced:
        return IDENTICAL
    if not math.isnan(original) and not math.isnan(reproduced) and abs(reproduced - original) <= tolerance:
        return WITHIN
    return DIFFERENT


@dataclass(frozen=True)
class Target:
    """The model run a reference names, with its registered version when it has one."""

    run: Run
    version: str | None
    model_uri: str


def _get_run(client: mlflow.MlflowClient, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if isinstance(registry.domain_error(exc), registry.RegistryUnavailable):
            raise
        raise registry.RegistryNotFound(f"no run {run_id!r} on the tracking server") from exc


def _model_uri_of(run: Run) -> str:
    outputs = run.outputs.model_outputs if run.outputs else []
    if outputs:
        return f"models:/{outputs[0].model_id}"
    return f"runs:/{run.info.run_id}/{MODEL_ARTIFACT}"


def resolve_target(client: mlflow.MlflowClient, ref: str) -> Target:
    """``name@alias``, ``name@version``, ``models:/name@alias``, a model run id or a training (parent) run id
    (its winner's refit when there is one, else the winner's run)."""
    ref = ref.removeprefix("models:/").removeprefix("runs:/").strip("/")
    if "@" in ref or "/" in ref:
        name, _, which = ref.replace("/", "@", 1).partition("@")
        try:
            found = (
                client.get_model_version(name, which)
                if which.isdigit()
                else client.get_model_version_by_alias(name, which)
            )
        except MlflowException as exc:
            if isinstance(registry.domain_error(exc), registry.RegistryUnavailable):
                raise
            raise registry.RegistryNotFound(f"model {name!r} has no version or alias {which!r}") from exc
        return Target(
            run=_get_run(client, registry.run_id_of(found)),
            version=str(found.version),
            model_uri=f"models:/{name}/{found.version}",
        )
    if not _RUN_ID.match(ref):
        raise RegistryError(f"{ref!r} is neither <model>@<alias|version> nor a run id")
    run = _get_run(client, ref)
    if "model_type" not in run.data.tags:
        winner = run.data.tags.get("gate_winner") or CHALLENGER
        children = client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{ref}' and tags.model_type = '{winner}'",
        )
        if not children:
            raise RegistryError(f"run {ref} is neither a model run nor a training run with a {winner!r} model")
        # the registered model is the winner's refit on every labelled cutoff, when the gate passed
        refits = [child for child in children if child.data.tags.get(REFIT_TAG) == "true"]
        run = (refits or children)[0]
    return Target(run=run, version=run.data.tags.get("model_version"), model_uri=_model_uri_of(run))


def recorded_config(params: dict[str, str]) -> TrainingConfig:
    """The :class:`TrainingConfig` a run logged with :meth:`TrainingConfig.as_params`."""
    values: dict[str, Any] = {}
    xgb: dict[str, Any] = {}
    for spec_field in dataclasses.fields(TrainingConfig):
        if spec_field.name != "xgb_params" and spec_field.name in params:
            values[spec_field.name] = tuples_from_json(json.loads(params[spec_field.name]))
    for key, value in params.items():
        if key.startswith("xgb_"):
            xgb[key.removeprefix("xgb_")] = json.loads(value)
    missing = [f.name for f in dataclasses.fields(TrainingConfig) if f.name != "xgb_params" and f.name not in values]
    if missing or not xgb:
        raise RegistryError(f"the run does not record the training parameters {missing or ['xgb_*']}")
    return TrainingConfig(**values, xgb_params=xgb)


def _parameter_differences(recorded: TrainingConfig, used: TrainingConfig) -> list[str]:
    before, after = recorded.as_params(), used.as_params()
    return [
        f"parameter {key}: recorded {before.get(key)}, used {after.get(key)}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]


def later_erasures(repo: DataRepository, commit: str) -> list[dict[str, Any]]:
    """The erasure records on ``main`` that ``commit`` does not hold: erasures requested after it."""
    held = set(repo.list_paths(commit, f"{ERASURES_PREFIX}/"))
    return [record for record in erasure_records(repo) if f"{ERASURES_PREFIX}/{record['erasure_id']}.json" not in held]


def _without_erased(frame: pd.DataFrame, tokens: set[str]) -> pd.DataFrame:
    if not tokens or "customer_token" not in frame.columns:
        return frame
    return frame.loc[~frame["customer_token"].astype(object).isin(tokens)].reset_index(drop=True)


def _events_without_erased(events: Activity, tokens: set[str]) -> Activity:
    if not tokens or not isinstance(events, HourlyActivity):
        return _without_erased(events, tokens) if isinstance(events, pd.DataFrame) else events
    erased = arrow_call(
        "is_in",
        events.table.column("customer_token"),
        options=pc.SetLookupOptions(pa.array(sorted(tokens), pa.string())),
    )
    return HourlyActivity(events.table.filter(arrow_call("invert", erased)))


def _recorded_feature_files(
    settings: Settings, repo: DataRepository, parent: Run, rewritten: dict[str, str]
) -> dict[str, bytes]:
    """The feature files the original training recorded (in the lake, else as run artifacts)."""
    uri = parent.data.tags.get("features_uri", f"runs:/{parent.info.run_id}/features")
    files = {}
    for name in [f"{split}.parquet" for split in SPLITS] + ["schema.json"]:
        if uri.startswith("lakefs://"):
            location = locate(uri, settings.lakefs_repository)
            ref = rewritten.get(location.ref, location.ref)
            files[name] = repo.get_object(ref, f"{location.path.rstrip('/')}/{name}")
        else:
            with open(mlflow.artifacts.download_artifacts(f"{uri}/{name}"), "rb") as handle:
                files[name] = handle.read()
    return files


def _compare_features(rebuilt: dict[str, bytes], recorded: dict[str, bytes]) -> str:
    """IDENTICAL when the schema file and every split's rows and values are equal, else DIFFERENT."""
    if rebuilt.keys() != recorded.keys() or rebuilt["schema.json"] != recorded["schema.json"]:
        return DIFFERENT
    for name, content in rebuilt.items():
        if name.endswith(".parquet") and content != recorded[name]:
            if not pd.read_parquet(io.BytesIO(content)).equals(pd.read_parquet(io.BytesIO(recorded[name]))):
                return DIFFERENT
    return IDENTICAL


def _causes(original: dict[str, str], current: dict[str, str], parameters: list[str], features: str) -> list[str]:
    causes = []
    for tag, label in ENVIRONMENT_TAGS.items():
        if original.get(tag, "") != current.get(tag, ""):
            causes.append(f"{label}: recorded {original.get(tag) or '-'}, now {current.get(tag) or '-'}")
    causes.extend(parameters)
    if features != IDENTICAL:
        causes.append("feature matrices rebuilt from the data commit differ from the recorded ones")
    return causes


def _data_without_erased(
    repo: DataRepository, data_commit: str, rewritten: dict[str, str]
) -> tuple[str, Activity, pd.DataFrame, list[str]]:
    """The commit to retrain on, its tables without subjects erased since, and notes saying what that changed;
    the events read as training reads them (:func:`churnops.training.train.load_activity`).

    A commit rewritten by an erasure purge is replaced by its rewritten form; subjects erased after
    the commit are left out whether the purge has run yet or not (docs/security.md).
    """
    notes: list[str] = []
    if data_commit in rewritten:
        notes.append(
            f"data commit {data_commit} was rewritten by an erasure purge; "
            f"retrained on its rewritten form {rewritten[data_commit]}"
        )
    try:
        commit = repo.resolve(rewritten.get(data_commit, data_commit))
    except NotFoundError as exc:
        raise NotFoundError(f"data commit {data_commit} no longer resolves: {exc}") from exc
    try:
        events, subscriptions = training.load_activity(repo, commit)
    except ObjectExpired as exc:
        raise ObjectExpired(
            f"data commit {data_commit} cannot be read whole: an erasure purge deleted its objects that held erased "
            f"subjects ({exc}); reproduce a version trained after the erasure instead"
        ) from exc
    later = later_erasures(repo, commit)
    if later:
        tokens = {record["subject_token"] for record in later}
        events, subscriptions = _events_without_erased(events, tokens), _without_erased(subscriptions, tokens)
        notes.append(
            f"trained before {len(later)} erasure(s) "
            f"({', '.join(record['erasure_id'] for record in later)}): the erased subjects' rows "
            "are left out of the rebuilt data, so results may differ"
        )
    return commit, events, subscriptions, notes


def reproduce(  # pylint: disable=too-many-locals
    settings: Settings,
    ref: str,
    tolerance: float = 1e-9,
    current_settings: bool = False,
    repo: DataRepository | None = None,
) -> ReproductionReport:
    """Retrain the model ``ref`` names from its recorded lineage and compare the result with the original.

    With ``current_settings``, every settings-backed parameter (:func:`churnops.training.config.settings_values`:
    windows, horizon, cutoff step, minimum history, the gate's settings, calibration, decision rule and retention
    terms) comes from ``settings`` instead of the record, to see what a change of settings does; the report lists
    every parameter that differs.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    client = registry.use_tracking(settings)
    target = resolve_target(client, ref)
    original = target.run
    recorded_tags, params = original.data.tags, original.data.params
    model_type, data_commit = recorded_tags.get("model_type", ""), recorded_tags.get("data_commit", "")
    if model_type not in (BASELINE, CHALLENGER) or not data_commit or "seed" not in params:
        raise RegistryError(f"run {original.info.run_id} records no model type, data commit or seed to reproduce")
    seed = int(params["seed"])
    recorded = recorded_config(params)
    config = recorded
    if current_settings:
        config = dataclasses.replace(recorded, **settings_values(settings))

    repo = repo or open_repository(settings)
    rewritten = commit_map(repo)
    commit, events, subscriptions, erasure_notes = _data_without_erased(repo, data_commit, rewritten)
    metadata = repo.commit_info(commit).metadata
    splits = training.build_splits(events, subscriptions, config)
    spec = feature_spec(config.windows_h)
    parent = _get_run(client, recorded_tags["parent_run_id"]) if recorded_tags.get("parent_run_id") else None
    rebuilt = feature_files(splits, spec, commit)
    features = (
        _compare_features(rebuilt, _recorded_feature_files(settings, repo, parent, rewritten)) if parent else DIFFERENT
    )

    lineage = lineage_tags(
        settings,
        commit,
        seed,
        config,
        spec,
        metadata.get("schema_versions", "unknown"),
        metadata.get("tokenizer_key_id", "unknown"),
    )
    tags = {**lineage, "reproduces": original.info.run_id}
    with mlflow.start_run(
        experiment_id=original.info.experiment_id,
        run_name=f"reproduce-{original.info.run_id[:12]}",
        tags={**tags, "run_kind": "reproduction"},
    ) as run:
        mlflow.log_params({**config.as_params(), "seed": str(seed)})
    fitted = training.fit_model(settings, model_type, splits, spec, tags, run.info.run_id, config)
    models = training.load_models(settings, {model_type: fitted.model_uri})
    scored = training.score_splits(models, {"test": splits["test"]}, spec)
    tested = training.record_test({model_type: fitted}, scored["test"], splits, config)[model_type]
    # the behavioural checks on validation, as training ran them on the evaluated model
    behaviour = training.record_behaviour({model_type: fitted}, models, splits, spec, config, seed)[model_type]
    fitted = dataclasses.replace(
        fitted, metrics={**fitted.metrics, **{f"test_{k}": v for k, v in tested.items()}, **behaviour.metrics()}
    )
    reproduced = models[model_type]
    if recorded_tags.get(REFIT_TAG) == "true":  # the registered model was refit on every labelled cutoff
        fitted = training.refit_model(settings, fitted, splits, spec, tags, run.info.run_id, config)
        reproduced = load_model(fitted.model_uri, client.tracking_uri).pipeline
    checks = [
        Check(
            name,
            original.data.metrics.get(name, math.nan),
            value,
            _verdict(original.data.metrics.get(name, math.nan), value, tolerance),
        )
        for name, value in sorted(fitted.metrics.items())
    ]
    test = splits["test"][spec.columns]
    before = evaluate.churn_probability(load_model(target.model_uri, client.tracking_uri).pipeline, test)
    after = evaluate.churn_probability(reproduced, test)
    gap = float(np.max(np.abs(after - before))) if len(test) else 0.0
    prediction_verdict = IDENTICAL if np.array_equal(before, after) else _verdict(0.0, gap, tolerance)
    report = ReproductionReport(
        target=ref,
        model_type=model_type,
        version=target.version,
        source_run_id=original.info.run_id,
        data_commit=commit,
        run_id=fitted.run_id,
        parent_run_id=run.info.run_id,
        tolerance=tolerance,
        metrics=checks,
        predictions=Check(f"test predictions ({len(test)} rows, max |difference|)", 0.0, gap, prediction_verdict),
        features=features,
        causes=erasure_notes + _causes(original.data.tags, lineage, _parameter_differences(recorded, config), features),
    )
    with registry.resume_run(run.info.run_id):
        mlflow.log_dict(report.to_dict(), "reproduction.json")
        mlflow.set_tags({"reproduction_verdict": report.verdict})
    logger.info("reproduction of run %s: %s", original.info.run_id, report.verdict)
    return report
