"""Drift monitoring: live features and scores against the training reference of a model version.

The *reference* is the latest labelled cutoffs the version was fitted on: the ``test`` split its
training run committed to the lake (found through the run's ``features_uri`` tag; the registered
model is refit on every labelled cutoff, test included). The *current* sample is the latest online
feature snapshot (:mod:`churnops.model.online`). The latest cutoffs are the reference, not the
earliest, because several features depend on how much history a cutoff has: at the first training
cutoffs the 24-hour window covers the whole history, so ``relative_activity_24h`` is 1 for every
customer, and unshifted data would read as a major shift. For every feature, and for the
probability the model predicts on each sample, the population stability index
(:func:`churnops.training.drift.psi`) says how far the current distribution moved:

- numeric features: ``drift_bins`` bins at the reference's quantiles (deciles by default), plus
  one bin for missing values;
- categorical features: one bin per category seen in the reference, one for categories the
  reference never saw, one for missing values;
- the predicted probability: ``drift_bins`` equal-width bins on [0, 1].

A quantity counts as drifted when its PSI reaches its *bar*: the larger of ``drift_psi_threshold``
(0.25, the usual "major shift" reading, by default: a shift that matters) and the PSI that sampling
noise alone reaches with probability ``drift_false_alarm_rate / features``
(:func:`churnops.training.drift.psi_noise_bound`; the reference's size is its number of customers,
each of whom appears at every reference cutoff). The check *fires* when any feature is drifted: a
price change moves only the charges and the subscription-change features, an engagement drop only
activity features, and a share-of-features rule would dilute both. Dividing the false-alarm rate by
the number of features (Bonferroni) keeps the chance that unshifted data fire the check by sampling
noise at most about ``drift_false_alarm_rate`` (0.01 by default; the chi-squared law is asymptotic).
The prediction is reported and flagged against the same bar but does not decide the verdict. The
report is committed to the lake and logged to MLflow either way; a firing check raises a ``drift``
alert and, when asked, retrains.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import matplotlib
import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from churnops.data.versioning import DataRepository, open_repository
from churnops.data.versioning.base import FEATURES_BRANCH
from churnops.errors import RegistryError
from churnops.model import registry
from churnops.model.online import OnlineSnapshot, load_snapshot
from churnops.model.scoring import load_model
from churnops.model.spec import FeatureSpec
from churnops.platform.alerts import Alert, AlertSink
from churnops.platform.settings import Settings
from churnops.training import drift, evaluate
from churnops.training.resolve import resolve_model
from churnops.training.train import TrainingResult, train_from_commit

matplotlib.use("Agg")
logger = logging.getLogger(__name__)

PREDICTION = "predicted_probability"
MISSING_BIN = "(missing)"
OTHER_BIN = "(other)"
REPORT_PREFIX = "monitoring/drift"
REFERENCE_SPLIT = "test"  # the latest labelled cutoffs of the version's training features


@dataclass(frozen=True)
class Distribution:
    """One quantity's PSI between the reference and the current sample, with the bins it was judged on."""

    name: str
    kind: str  # numeric | categorical | prediction
    psi: float
    bins: list[str]
    reference_share: list[float]
    current_share: list[float]
    reference_size: int  # independent units: the reference's customers (each at several cutoffs)
    current_size: int

    @property
    def occupied_bins(self) -> int:
        """Bins holding a value of either sample: the degrees of freedom of the PSI's noise, plus one."""
        return sum(r > 0 or c > 0 for r, c in zip(self.reference_share, self.current_share))


@dataclass(frozen=True)
class DriftRule:
    """When a quantity counts as drifted, and when the check fires (see the module docstring)."""

    threshold: float
    false_alarm_rate: float

    @classmethod
    def from_settings(cls, settings: Settings) -> DriftRule:
        """The rule the settings configure (``drift_psi_threshold``, ``drift_false_alarm_rate``)."""
        return cls(settings.drift_psi_threshold, settings.drift_false_alarm_rate)

    def psi_bar(self, distribution: Distribution, features: int) -> float:
        """The PSI ``distribution`` must reach to count as drifted, among ``features`` features tested."""
        if distribution.occupied_bins < 2:
            return self.threshold
        noise = drift.psi_noise_bound(
            distribution.occupied_bins,
            distribution.reference_size,
            distribution.current_size,
            self.false_alarm_rate / max(features, 1),
        )
        return max(self.threshold, noise)

    def psi_bars(self, distributions: list[Distribution]) -> dict[str, float]:
        """Each quantity's bar, the features counted for the Bonferroni correction."""
        features = sum(d.kind != "prediction" for d in distributions)
        return {d.name: self.psi_bar(d, features) for d in distributions}

    def drifted(self, distributions: list[Distribution]) -> list[str]:
        """Names (features and the prediction) whose PSI reaches their bar, worst first."""
        bars = self.psi_bars(distributions)
        worst = sorted(distributions, key=lambda d: d.psi, reverse=True)
        return [d.name for d in worst if d.psi >= bars[d.name]]

    def fires(self, distributions: list[Distribution]) -> bool:
        """Whether any feature (the prediction aside) is drifted."""
        drifted = set(self.drifted(distributions))
        return any(d.name in drifted for d in distributions if d.kind != "prediction")


@dataclass
class DriftReport:
    """The outcome of one drift check."""

    model: str
    version: str
    reference_uri: str
    snapshot_commit: str
    data_commit: str
    cutoff: str
    threshold: float
    false_alarm_rate: float
    distributions: list[Distribution]
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    lake_uri: str | None = None
    mlflow_run_id: str | None = None

    @property
    def rule(self) -> DriftRule:
        """The rule this report was judged by."""
        return DriftRule(self.threshold, self.false_alarm_rate)

    @property
    def drifted(self) -> list[str]:
        """Names whose PSI reaches their bar, worst first."""
        return self.rule.drifted(self.distributions)

    @property
    def drifted_feature_share(self) -> float:
        """The share of features (the prediction excluded) whose PSI reaches their bar (for reading only)."""
        drifted = set(self.drifted)
        features = [d for d in self.distributions if d.kind != "prediction"]
        return sum(d.name in drifted for d in features) / max(len(features), 1)

    @property
    def fired(self) -> bool:
        """Whether any feature is drifted."""
        return self.rule.fires(self.distributions)

    def table(self) -> pd.DataFrame:
        """One row per feature and the prediction: name, kind, PSI, bar, drifted; worst first."""
        bars = self.rule.psi_bars(self.distributions)
        rows = [
            {"name": d.name, "kind": d.kind, "psi": d.psi, "bar": bars[d.name], "drifted": d.psi >= bars[d.name]}
            for d in self.distributions
        ]
        return pd.DataFrame(rows).sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the verdict."""
        data = asdict(self)
        data["fired"] = self.fired
        data["drifted"] = self.drifted
        data["drifted_feature_share"] = self.drifted_feature_share
        return data


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [float(c) / total if total else 0.0 for c in counts]


def sample_size(frame: pd.DataFrame) -> int:
    """A sample's independent units: its customers when it has a ``customer_token`` column (a customer appears at
    every cutoff of a training split, and rows of one customer are nearly alike), else its rows."""
    if "customer_token" in frame.columns:
        return int(frame["customer_token"].nunique())
    return len(frame)


def numeric_distribution(
    name: str, reference: pd.Series, current: pd.Series, bins: int, sizes: tuple[int, int] | None = None
) -> Distribution:
    """PSI over the reference's quantile bins plus a missing-value bin; ``sizes`` (default: the lengths) are
    the samples' independent units."""
    ref = pd.to_numeric(reference, errors="coerce").to_numpy(dtype=float)
    cur = pd.to_numeric(current, errors="coerce").to_numpy(dtype=float)
    finite = ref[np.isfinite(ref)]
    edges = drift.quantile_edges(finite, bins) if finite.size else np.array([])
    ref_counts = np.append(drift.bin_counts(ref, edges), np.count_nonzero(~np.isfinite(ref)))
    cur_counts = np.append(drift.bin_counts(cur, edges), np.count_nonzero(~np.isfinite(cur)))
    labels = [f"<= {e:.4g}" for e in edges] + [f"> {edges[-1]:.4g}" if len(edges) else "all", MISSING_BIN]
    return Distribution(
        name,
        "numeric",
        drift.psi(ref_counts, cur_counts),
        labels,
        _shares(ref_counts),
        _shares(cur_counts),
        *(sizes or (len(reference), len(current))),
    )


def categorical_distribution(
    name: str, reference: pd.Series, current: pd.Series, sizes: tuple[int, int] | None = None
) -> Distribution:
    """PSI over the reference's categories, plus bins for unseen categories and for missing values."""
    ref = reference.astype(object).where(reference.notna(), None)
    cur = current.astype(object).where(current.notna(), None)
    categories = sorted({str(v) for v in ref if v is not None})

    def counts(values: pd.Series) -> np.ndarray:
        text = values.dropna().astype(str)
        seen = text.value_counts().reindex(categories, fill_value=0).to_numpy()
        return np.concatenate([seen, [int((~text.isin(categories)).sum()), int(values.isna().sum())]])

    ref_counts, cur_counts = counts(ref), counts(cur)
    return Distribution(
        name,
        "categorical",
        drift.psi(ref_counts, cur_counts),
        [*categories, OTHER_BIN, MISSING_BIN],
        _shares(ref_counts),
        _shares(cur_counts),
        *(sizes or (len(reference), len(current))),
    )


def prediction_distribution(
    reference: np.ndarray, current: np.ndarray, bins: int, sizes: tuple[int, int] | None = None
) -> Distribution:
    """PSI of predicted probabilities over ``bins`` equal-width bins on [0, 1]."""
    edges = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    ref_counts, cur_counts = drift.bin_counts(reference, edges), drift.bin_counts(current, edges)
    labels = [f"<= {e:.2f}" for e in edges] + [f"> {edges[-1]:.2f}"]
    return Distribution(
        PREDICTION,
        "prediction",
        drift.psi(ref_counts, cur_counts),
        labels,
        _shares(ref_counts),
        _shares(cur_counts),
        *(sizes or (len(reference), len(current))),
    )


def compare(reference: pd.DataFrame, current: pd.DataFrame, spec: FeatureSpec, bins: int) -> list[Distribution]:
    """One :class:`Distribution` per feature of ``spec``, in spec order (sizes by :func:`sample_size`)."""
    sizes = (sample_size(reference), sample_size(current))
    result = [numeric_distribution(name, reference[name], current[name], bins, sizes) for name in spec.numeric]
    result += [categorical_distribution(name, reference[name], current[name], sizes) for name in spec.categorical]
    return result


def _parse_lake_uri(uri: str) -> tuple[str, str]:
    """``lakefs://<repo>/<commit>/<path>`` -> (commit, path)."""
    if not uri.startswith("lakefs://"):
        raise RegistryError(f"the training run's features are not in the lake ({uri!r}): no drift reference")
    _, _, rest = uri.removeprefix("lakefs://").partition("/")
    commit, _, path = rest.partition("/")
    return commit, path


def reference_features(
    client: mlflow.MlflowClient, model: str, version: str, repo: DataRepository
) -> tuple[pd.DataFrame, FeatureSpec, str]:
    """The reference split (:data:`REFERENCE_SPLIT`) of a model version's training features, its feature spec
    and where it was read from."""
    run = client.get_run(registry.run_id_of(registry.model_version(client, model, version)))
    parent_id = run.data.tags.get("parent_run_id") or run.info.run_id
    uri = client.get_run(parent_id).data.tags.get("features_uri", "")
    commit, prefix = _parse_lake_uri(uri)
    schema = json.loads(repo.get_object(commit, f"{prefix}/schema.json"))
    path = f"{REFERENCE_SPLIT}.parquet"
    frame = pd.read_parquet(io.BytesIO(repo.get_object(commit, f"{prefix}/{path}")))
    return frame, FeatureSpec.from_dict(schema["spec"]), f"{uri}/{path}"


def _figure(report: DriftReport) -> Figure:
    table = report.table()
    figure = Figure(figsize=(8, max(3, 0.22 * len(table))))
    axes = figure.add_subplot()
    colors = ["tab:red" if d else "tab:blue" for d in table["drifted"]]
    axes.barh(table["name"][::-1], table["psi"][::-1], color=colors[::-1])
    axes.scatter(table["bar"][::-1], table["name"][::-1], marker="|", color="black", label="bar (threshold or noise)")
    axes.axvline(report.threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {report.threshold}")
    axes.set_xlabel("PSI (current snapshot vs training reference)")
    axes.set_title(f"Drift of {report.model} v{report.version} at {report.cutoff}")
    axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


def _publish(repo: DataRepository, report: DriftReport, repository: str) -> str:
    """Commit the report (JSON and the per-feature table) to the ``features`` branch; return its lake URI."""
    stamp = report.created_at.replace(":", "").replace("+0000", "Z")
    prefix = f"{REPORT_PREFIX}/{stamp}-v{report.version}"
    table = io.BytesIO()
    report.table().to_parquet(table, index=False)
    branch = f"drift-{stamp.replace('-', '').replace('+', '')[:15].lower()}-{report.version}"
    repo.create_branch(branch, source=FEATURES_BRANCH)
    try:
        repo.put_objects(
            branch,
            {
                f"{prefix}/report.json": json.dumps(report.to_dict(), indent=2).encode(),
                f"{prefix}/psi.parquet": table.getvalue(),
            },
        )
        metadata = {"kind": "drift", "model_version": report.version, "fired": str(report.fired).lower()}
        repo.commit(branch, f"drift report of {report.model} v{report.version}", metadata)
        commit = repo.merge(branch, into=FEATURES_BRANCH, message="drift report", metadata=metadata)
    finally:
        repo.delete_branch(branch)
    return f"lakefs://{repository}/{commit}/{prefix}/report.json"


def _log_to_mlflow(settings: Settings, report: DriftReport) -> str:
    registry.use_tracking(settings)
    mlflow.set_experiment(f"{settings.mlflow_experiment}-monitoring")
    tags = {
        "run_kind": "drift",
        "model": report.model,
        "model_version": report.version,
        "data_commit": report.data_commit,
        "snapshot_commit": report.snapshot_commit,
        "drift_fired": str(report.fired).lower(),
        "drift_report": report.lake_uri or "",
    }
    with mlflow.start_run(run_name=f"drift-v{report.version}-{report.cutoff[:13]}", tags=tags) as run:
        mlflow.log_params({"threshold": report.threshold, "false_alarm_rate": report.false_alarm_rate})
        mlflow.log_metrics({f"psi.{d.name}": d.psi for d in report.distributions})
        mlflow.log_metric("psi_max", max(d.psi for d in report.distributions))
        mlflow.log_metric("drifted_feature_share", report.drifted_feature_share)
        mlflow.log_table(report.table(), "drift/psi.json")
        mlflow.log_dict(report.to_dict(), "drift/report.json")
        mlflow.log_figure(_figure(report), "drift/psi.png")
    return str(run.info.run_id)  # mlflow's RunInfo.run_id is an unannotated property


def check_drift(
    settings: Settings,
    model_ref: str = "production",
    repo: DataRepository | None = None,
    alerts: AlertSink | None = None,
    snapshot: OnlineSnapshot | None = None,
) -> DriftReport:
    """Compare the latest snapshot with ``model_ref``'s training reference; record, alert when it fires."""
    repo = repo or open_repository(settings)
    client = registry.client_for(settings)
    model = settings.registered_model
    version = resolve_model(settings, model_ref).version
    reference, spec, reference_uri = reference_features(client, model, version, repo)
    snapshot = snapshot or load_snapshot(repo)
    current = snapshot.features.reindex(columns=spec.columns)
    bins = settings.drift_bins
    distributions = compare(reference, current, spec, bins)
    fitted = load_model(f"models:/{model}/{version}", client.tracking_uri).pipeline
    distributions.append(
        prediction_distribution(
            evaluate.churn_probability(fitted, reference[spec.columns]),
            evaluate.churn_probability(fitted, current[spec.columns]),
            bins,
            (sample_size(reference), len(current)),
        )
    )
    report = DriftReport(
        model,
        version,
        reference_uri,
        snapshot.commit_id,
        snapshot.data_commit,
        snapshot.cutoff.isoformat(),
        settings.drift_psi_threshold,
        settings.drift_false_alarm_rate,
        distributions,
    )
    report.lake_uri = _publish(repo, report, settings.lakefs_repository)
    report.mlflow_run_id = _log_to_mlflow(settings, report)
    if report.fired:
        (alerts or AlertSink(settings)).emit(
            Alert(
                kind="drift",
                message=f"{model} v{version}: features past their PSI bar (at least {report.threshold}): "
                + ", ".join(report.drifted[:10]),
                counts={"drifted": len(report.drifted)},
                run_id=report.mlflow_run_id,
            )
        )
    logger.info(
        "drift check of %s v%s: %s (%.0f%% of features drifted, max PSI %.3f)",
        model,
        version,
        "fired" if report.fired else "quiet",
        100 * report.drifted_feature_share,
        max(d.psi for d in distributions),
    )
    return report


def retrain_reason(report: DriftReport) -> dict[str, str]:
    """The tags a training started by ``report`` carries on its training run: the drift check's report, run and
    drifted features."""
    return {
        "trigger": "drift",
        "trigger_report": report.lake_uri or "",
        "trigger_drift_run": report.mlflow_run_id or "",
        "trigger_drifted": ", ".join(report.drifted[:20]),
    }


def retrain_for(settings: Settings, report: DriftReport, repo: DataRepository | None = None) -> TrainingResult:
    """Train on the head of ``main`` with the drift report as the training run's reason (:func:`retrain_reason`)."""
    return train_from_commit(settings, None, repo=repo, reason=retrain_reason(report))
