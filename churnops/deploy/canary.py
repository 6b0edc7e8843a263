"""The production canary: start, analyse, promote, roll back, and the automatic loop over all four.

KServe runs the canary: with ``canaryTrafficPercent: P`` on a component of the InferenceService, a new
revision of it (tag ``latest``) takes P % of that component's traffic and the previously rolled-out one
(tag ``prev``) the rest. The predictor and the transformer (same image, released together) always move
together: every operation sets or clears ``canaryTrafficPercent`` on both in one merge patch.

* *start* applies the production overlay with the new model URI and image and ``canaryTrafficPercent: P``
  on both components, waits for Ready and smoke-tests both new revisions through the Kubernetes API
  server's service proxy (:mod:`churnops.deploy.release`); when any of that fails, the canary is rolled
  back at once and an alert says why.
* *promote* is one step with compensation: the registry's ``production`` alias moves to the canary's model
  version, then both components' ``canaryTrafficPercent`` is removed (all traffic to the new revisions);
  when the traffic change fails, the alias is moved back, the canary is rolled back and an alert raised.
* *rollback* sets ``canaryTrafficPercent: 0`` on both components (all traffic on the stable revisions),
  leaves the alias alone and raises an alert. When the rollback itself fails, the alert says so loudly:
  production may still send the canary its share.

The analysis compares the canary with the stable revision of each component, over the traffic since the
canary started (the increases of Knative's queue-proxy counters, summed over the analysis windows):

* 5xx rate and slow-request rate (latency above ``canary_slow_ms``, a bucket bound of the queue-proxy's
  histogram) are each two binomial proportions. With Jeffreys priors, Beta(1/2, 1/2) (a uniform
  prior would pull the small canary arm's rate towards 1/2, i.e. towards "worse"), the posteriors are
  Beta distributions; the canary is worse when ``P(p_canary - p_stable > margin) >= canary_confidence``
  (a Monte Carlo estimate with a fixed seed, so a decision is reproducible).
* Below ``canary_min_requests`` requests on either arm there is no decision (*hold*).
* The predicted-probability PSI (:func:`churnops.training.drift.psi`) of the canary against the stable
  revision is reported, never a rollback reason on its own: a retrained model moves it by design.

``benchmarks/canary.py`` measures the rule's false-rollback rate (the same model on both arms) and its
missed-regression rate by simulation; docs/deployment.md states them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import google.auth
import google.auth.exceptions
import numpy as np
import requests
from google.auth.transport.requests import AuthorizedSession

from churnops.deploy import render as rendering
from churnops.deploy.kube import ISVC_API_VERSION, ISVC_KIND, Cluster
from churnops.deploy.release import apply_release, newest_revisions, smoke_test_revisions
from churnops.errors import ChurnopsError, ConfigurationError, DeploymentError, ServiceUnavailable
from churnops.platform import declaration as platform
from churnops.platform.alerts import Alert, AlertSink
from churnops.platform.settings import Settings
from churnops.training.drift import psi

logger = logging.getLogger(__name__)

Decision = Literal["healthy", "rollback", "hold"]
# Knative Serving's queue-proxy metrics, from the platform declaration (checked against the pinned
# release's source by tests/unit/deploy/test_knative_contract.py): the exporter's component "revision"
# prefixes the view names; namespace and revision are resource labels, the answer's class a tag.
REQUESTS_METRIC = platform.KNATIVE_REQUESTS_METRIC
LATENCY_METRIC = platform.KNATIVE_LATENCY_METRIC  # milliseconds
NAMESPACE_LABEL = platform.KNATIVE_NAMESPACE_LABEL
REVISION_LABEL = platform.KNATIVE_REVISION_LABEL
CODE_CLASS_LABEL = platform.KNATIVE_CODE_CLASS_LABEL
SERVER_ERROR_CLASS = "5xx"
LATENCY_BUCKETS_MS = platform.KNATIVE_LATENCY_BUCKETS_MS
P99 = 0.99
# The pod label serving.knative.dev/revision as the usual kubernetes-pods scrape job's labelmap names it.
APP_REVISION_LABEL = "serving_knative_dev_revision"
COMPONENTS = ("predictor", "transformer")
PRIOR = 0.5  # Jeffreys: Beta(1/2, 1/2)
POSTERIOR_DRAWS = 4000
POSTERIOR_SEED = 20261206


@dataclass(frozen=True)
class Thresholds:
    """When a canary is rolled back, and how much traffic a decision needs."""

    min_requests: int
    error_margin: float
    slow_ms: float
    slow_margin: float
    confidence: float
    max_psi: float

    def __post_init__(self) -> None:
        if self.slow_ms not in LATENCY_BUCKETS_MS:
            raise ConfigurationError(
                f"canary_slow_ms must be a bucket bound of Knative's latency histogram "
                f"{list(LATENCY_BUCKETS_MS)}, not {self.slow_ms:g}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> "Thresholds":
        """The thresholds configured in settings (``canary_*``)."""
        return cls(
            min_requests=settings.canary_min_requests,
            error_margin=settings.canary_error_margin,
            slow_ms=settings.canary_slow_ms,
            slow_margin=settings.canary_slow_margin,
            confidence=settings.canary_confidence,
            max_psi=settings.canary_max_psi,
        )


def _buckets(raw: dict[float, float]) -> list[tuple[float, float]]:
    return sorted((float(le), float(count)) for le, count in raw.items())


def histogram_quantile(q: float, cumulative: dict[float, float]) -> float:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket holding rank ``q``.

    ``cumulative`` maps each upper bound ``le`` (``inf`` included) to the count at or below it.
    NaN when the histogram is empty; the highest finite bound when the rank falls in ``+Inf``.
    """
    buckets = _buckets(cumulative)
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower_bound
            if count == lower_count:
                return upper
            return lower_bound + (upper - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = upper, count
    return lower_bound


def bin_counts(cumulative: dict[float, float]) -> list[float]:
    """Per-bucket (not cumulative) counts, in bucket order."""
    counts, previous = [], 0.0
    for _, count in _buckets(cumulative):
        counts.append(max(count - previous, 0.0))
        previous = count
    return counts


def _add(left: dict[float, float], right: dict[float, float]) -> dict[float, float]:
    return {le: left.get(le, 0.0) + right.get(le, 0.0) for le in set(left) | set(right)}


@dataclass(frozen=True)
class RevisionMetrics:
    """One revision's traffic over the analysed time (increases of the counters)."""

    revision: str
    requests: float
    errors: float
    latency_ms: dict[float, float] = field(default_factory=dict)
    probability: dict[float, float] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        """Share of 5xx answers (0 without requests)."""
        return self.errors / self.requests if self.requests > 0 else 0.0

    @property
    def p99_s(self) -> float:
        """99th-percentile latency in seconds (NaN without observations)."""
        return histogram_quantile(P99, self.latency_ms) / 1000.0

    def slow(self, bound_ms: float) -> float:
        """Requests slower than ``bound_ms`` (a bucket bound): all observations minus those at or below it."""
        buckets = dict(_buckets(self.latency_ms))
        if not buckets:
            return 0.0
        if float(bound_ms) not in buckets:
            raise DeploymentError(
                f"revision {self.revision}'s latency histogram has no bucket at {bound_ms:g} ms "
                f"(its bounds: {sorted(buckets)[:8]}...)"
            )
        return max(max(buckets.values()) - buckets[float(bound_ms)], 0.0)

    def plus(self, later: "RevisionMetrics") -> "RevisionMetrics":
        """This revision's traffic followed by ``later`` (the same revision's next window)."""
        return RevisionMetrics(
            self.revision,
            self.requests + later.requests,
            self.errors + later.errors,
            _add(self.latency_ms, later.latency_ms),
            _add(self.probability, later.probability),
        )


def prob_worse(
    canary_events: float, canary_total: float, stable_events: float, stable_total: float, margin: float
) -> float:
    """``P(p_canary - p_stable > margin)`` under Beta(1/2 + events, 1/2 + total - events) posteriors."""
    rng = np.random.default_rng(POSTERIOR_SEED)
    canary = rng.beta(PRIOR + canary_events, PRIOR + max(canary_total - canary_events, 0.0), POSTERIOR_DRAWS)
    stable = rng.beta(PRIOR + stable_events, PRIOR + max(stable_total - stable_events, 0.0), POSTERIOR_DRAWS)
    return float(np.mean(canary - stable > margin))


@dataclass(frozen=True)
class Verdict:
    """The analysis of the canary so far."""

    decision: Decision
    reasons: tuple[str, ...]
    figures: dict[str, float]
    notes: tuple[str, ...] = ()

    def line(self) -> str:
        """One line: decision, figures, reasons, notes."""
        figures = " ".join(f"{key}={value:.4g}" for key, value in self.figures.items())
        said = [*self.reasons, *(f"note: {note}" for note in self.notes)]
        return f"{self.decision}: {figures}" + (f" ({'; '.join(said)})" if said else "")


def judge(
    stable: RevisionMetrics, canary: RevisionMetrics, limits: Thresholds, component: str = "predictor"
) -> Verdict:
    """Rollback (every rate the canary is confidently worse at), healthy, or hold (too little traffic)."""
    prefix = "" if component == "predictor" else f"{component}_"
    figures = {f"{prefix}canary_requests": canary.requests, f"{prefix}stable_requests": stable.requests}
    if canary.requests < limits.min_requests or stable.requests < limits.min_requests:
        return Verdict(
            "hold",
            (
                f"too little traffic to decide on the {component}: canary {canary.requests:.0f} and stable "
                f"{stable.requests:.0f} requests so far, each needs {limits.min_requests}",
            ),
            figures,
        )
    reasons, notes = [], []
    figures[f"{prefix}canary_error_rate"] = canary.error_rate
    figures[f"{prefix}stable_error_rate"] = stable.error_rate
    worse = prob_worse(canary.errors, canary.requests, stable.errors, stable.requests, limits.error_margin)
    figures[f"{prefix}p_error_worse"] = worse
    if worse >= limits.confidence:
        reasons.append(
            f"{component} 5xx rate {canary.error_rate:.2%} vs stable {stable.error_rate:.2%}: "
            f"P(worse by more than {limits.error_margin:.2%}) = {worse:.3f}"
        )
    if not canary.latency_ms:
        reasons.append(f"the {component} canary reports no latency histogram")
    else:
        slow_canary, slow_stable = canary.slow(limits.slow_ms), stable.slow(limits.slow_ms)
        slow_worse = prob_worse(slow_canary, canary.requests, slow_stable, stable.requests, limits.slow_margin)
        figures[f"{prefix}canary_slow_rate"] = slow_canary / canary.requests
        figures[f"{prefix}stable_slow_rate"] = slow_stable / stable.requests
        figures[f"{prefix}p_slow_worse"] = slow_worse
        figures[f"{prefix}canary_p99_s"] = canary.p99_s
        figures[f"{prefix}stable_p99_s"] = stable.p99_s
        if slow_worse >= limits.confidence:
            reasons.append(
                f"{component} requests over {limits.slow_ms:g} ms {slow_canary / canary.requests:.2%} vs stable "
                f"{slow_stable / stable.requests:.2%}: P(worse by more than {limits.slow_margin:.2%}) = "
                f"{slow_worse:.3f}"
            )
    stable_bins, canary_bins = bin_counts(stable.probability), bin_counts(canary.probability)
    if sum(canary_bins) > 0 and sum(stable_bins) > 0 and len(stable_bins) == len(canary_bins):
        shift = psi(stable_bins, canary_bins)
        figures[f"{prefix}psi"] = shift
        if shift > limits.max_psi:
            notes.append(
                f"predicted-probability PSI {shift:.3f} > {limits.max_psi:g} (reported; a retrained "
                "model moves its outputs by design, so this alone rolls nothing back)"
            )
    return Verdict("rollback" if reasons else "healthy", tuple(reasons), figures, tuple(notes))


def combine(verdicts: list[Verdict]) -> Verdict:
    """One verdict for the components: rollback if any says so, healthy only when all do, else hold."""
    figures: dict[str, float] = {}
    for verdict in verdicts:
        figures.update(verdict.figures)
    decisions = {verdict.decision for verdict in verdicts}
    decision: Decision = "rollback" if "rollback" in decisions else "hold" if "hold" in decisions else "healthy"
    reasons = tuple(r for v in verdicts if v.decision == decision for r in v.reasons)
    return Verdict(decision, reasons, figures, tuple(n for v in verdicts for n in v.notes))


MONITORING_READ = "https://www.googleapis.com/auth/monitoring.read"


class Prometheus:
    """The Prometheus HTTP API (``/api/v1/query``), instant vectors only."""

    @classmethod
    def from_settings(cls, settings: Settings) -> "Prometheus":
        """``prometheus_url``; with ``prometheus_auth: google`` (GKE), Managed Service for Prometheus's API
        called with Application Default Credentials (the build's or the pod's account, ``monitoring.viewer``)."""
        assert settings.prometheus_url is not None  # derived by Settings
        if settings.prometheus_auth == "google":
            try:
                credentials, _ = google.auth.default(scopes=[MONITORING_READ])
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise ServiceUnavailable(
                    f"no Google credentials to query Prometheus at {settings.prometheus_url}: {exc}"
                ) from exc
            return cls(settings.prometheus_url, session=AuthorizedSession(credentials))
        return cls(settings.prometheus_url)

    def __init__(self, url: str, session: requests.Session | None = None, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._session = session or requests.Session()
        self._timeout = timeout_s

    def vector(self, query: str) -> list[tuple[dict[str, str], float]]:
        """The samples (labels, value) of an instant query."""
        try:
            answer = self._session.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=self._timeout)
        except requests.RequestException as exc:
            raise ServiceUnavailable(f"Prometheus at {self.url} unreachable ({type(exc).__name__})") from exc
        try:
            body = answer.json()
        except ValueError as exc:
            raise DeploymentError(f"Prometheus answered HTTP {answer.status_code} without JSON") from exc
        if answer.status_code != 200 or body.get("status") != "success":
            raise DeploymentError(f"Prometheus refused the query: {body.get('errorType')}: {body.get('error')}")
        data = body.get("data") or {}
        if data.get("resultType") != "vector":
            raise DeploymentError(f"Prometheus answered a {data.get('resultType')}, expected a vector")
        return [(item.get("metric") or {}, float(item["value"][1])) for item in data.get("result") or []]

    def scalar_sum(self, query: str) -> float:
        """The value of a ``sum(...)`` query (0 when there is no sample)."""
        samples = self.vector(query)
        value = sum(v for _, v in samples)
        return 0.0 if math.isnan(value) else value

    def histogram(self, query: str) -> dict[float, float]:
        """A ``sum by (le)`` query as {upper bound: cumulative count}."""
        return {float(labels["le"]): value for labels, value in self.vector(query) if "le" in labels}


def revision_metrics(
    settings: Settings, prometheus: Prometheus, namespace: str, revision: str, window: str | None = None
) -> RevisionMetrics:
    """Requests, 5xx, latency and probability histograms of ``revision`` over ``window`` (``canary_window``)."""
    window = window or settings.canary_window
    sel = f'{NAMESPACE_LABEL}="{namespace}",{REVISION_LABEL}="{revision}"'
    app_sel = f'namespace="{namespace}",{APP_REVISION_LABEL}="{revision}"'
    errors = f'{sel},{CODE_CLASS_LABEL}="{SERVER_ERROR_CLASS}"'
    return RevisionMetrics(
        revision=revision,
        requests=prometheus.scalar_sum(f"sum(increase({REQUESTS_METRIC}{{{sel}}}[{window}]))"),
        errors=prometheus.scalar_sum(f"sum(increase({REQUESTS_METRIC}{{{errors}}}[{window}]))"),
        latency_ms=prometheus.histogram(f"sum by (le) (increase({LATENCY_METRIC}_bucket{{{sel}}}[{window}]))"),
        probability=prometheus.histogram(
            f"sum by (le) (increase({settings.probability_metric}_bucket{{{app_sel}}}[{window}]))"
        ),
    )


@dataclass(frozen=True)
class CanaryState:
    """Which revision is stable and which the canary, per component; the canary's share and model version."""

    revisions: dict[str, tuple[str, str]]  # component -> (stable, canary)
    canary_percent: int
    model_version: str | None
    first: bool = False  # the first production release: no stable revision, the new one serves everything

    @property
    def stable(self) -> str:
        """The stable revision of the predictor (of the transformer when only it has a canary)."""
        return next(iter(self.revisions.values()))[0]

    @property
    def canary(self) -> str:
        """The canary revision of the predictor (of the transformer when only it has a canary)."""
        return next(iter(self.revisions.values()))[1]

    def names(self) -> list[str]:
        """Every revision involved, canaries first."""
        return [pair[1] for pair in self.revisions.values()] + [pair[0] for pair in self.revisions.values()]


def canary_state(isvc: dict[str, Any]) -> CanaryState:
    """Read the revisions from the InferenceService's traffic status; an error when no canary runs.

    A component whose template did not change (a new model on the same image leaves the transformer as it
    was) has no new revision and takes no part; at least one component must be split ``prev``/``latest``.
    """
    components = (isvc.get("status") or {}).get("components") or {}
    revisions: dict[str, tuple[str, str]] = {}
    percent = 0
    seen = []
    for component in COMPONENTS:
        if component not in (isvc.get("spec") or {}):
            continue
        traffic = (components.get(component) or {}).get("traffic") or []
        seen.append((component, [(t.get("tag"), t.get("percent")) for t in traffic]))
        tagged = {target.get("tag"): target for target in traffic}
        if "prev" in tagged and "latest" in tagged:
            revisions[component] = (str(tagged["prev"]["revisionName"]), str(tagged["latest"]["revisionName"]))
            percent = max(percent, int(tagged["latest"].get("percent") or 0))
    if "predictor" not in revisions and "transformer" not in revisions:
        raise DeploymentError(f"no canary in progress: no component's traffic has 'prev' and 'latest' revisions {seen}")
    annotations = isvc.get("metadata", {}).get("annotations") or {}
    return CanaryState(revisions, percent, annotations.get(rendering.MODEL_VERSION_ANNOTATION))


class AliasMover(Protocol):
    """The registry's ``production`` alias, as promotion moves it."""

    def promote(self, version: str, note: str) -> None:
        """Point ``production`` at ``version``."""

    def undo(self, version: str, note: str) -> None:
        """Give ``production`` back to the version that held it before ``version`` (none: remove it)."""


class Canary:
    """The canary operations on the production InferenceService."""

    def __init__(
        self,
        settings: Settings,
        cluster: Cluster,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.namespace = rendering.NAMESPACES["production"]
        self.name = settings.deploy_service
        self.sleep = sleep
        self.clock = clock

    def live(self) -> dict[str, Any]:
        """The production InferenceService as the cluster has it."""
        return self.cluster.inference_service(self.name, self.namespace)

    def _wait(self, generation: int) -> dict[str, Any]:
        return self.cluster.wait_ready(
            self.name,
            self.namespace,
            generation,
            self.settings.deploy_ready_timeout_s,
            self.settings.deploy_poll_interval_s,
            sleep=self.sleep,
        )

    def _set_canary_percent(self, percent: int | None) -> dict[str, Any]:
        """One merge patch of ``canaryTrafficPercent`` on every component (None removes the field)."""
        spec = self.live().get("spec") or {}
        patch = {"spec": {c: {"canaryTrafficPercent": percent} for c in COMPONENTS if c in spec}}
        patched = self.cluster.merge_patch(ISVC_API_VERSION, ISVC_KIND, self.name, self.namespace, patch)
        return self._wait(int(patched["metadata"]["generation"]))

    def start(  # pylint: disable=too-many-arguments
        self,
        percent: int,
        model_uri: str,
        model_version: str | None,
        alerts: AlertSink,
        image: str | None = None,
        aliases: AliasMover | None = None,
    ) -> CanaryState:
        """Roll ``model_uri`` (and ``image``, default the live one) out to ``percent`` % of production traffic,
        on the predictor and the transformer; smoke-test both new revisions. Any failure rolls back.

        The first production release (no InferenceService in production yet) has no stable revision to
        compare with: :meth:`first_release` serves it whole once its smoke tests pass and moves the
        ``production`` alias to it (``aliases``)."""
        if not 0 < percent < 100:
            raise DeploymentError(f"a canary takes between 1 and 99 % of the traffic, not {percent}")
        if self.cluster.get(ISVC_API_VERSION, ISVC_KIND, self.name, self.namespace) is None:
            if aliases is None:
                raise DeploymentError("the first production release moves the production alias: give the registry")
            return self.first_release(model_uri, model_version, alerts, image, aliases)
        if image is None:
            containers = self.live()["spec"]["predictor"].get("containers") or [{}]
            image = containers[0].get("image")
            if not image:
                raise DeploymentError("the production predictor has no container image to keep")
        release = rendering.Release("production", image, model_uri, model_version, canary_percent=percent)
        try:
            _, generation = apply_release(self.settings, self.cluster, release)
            isvc = self._wait(generation)
            smoke_test_revisions(self.settings, self.namespace, isvc, release.model_version)
        except ChurnopsError as failure:
            self.abort(alerts, f"the canary failed to start: {failure}", kind="canary_start_failed")
            raise DeploymentError(
                f"canary of model version {model_version or '-'} not started and rolled back: {failure}"
            ) from failure
        try:
            return canary_state(isvc)
        except DeploymentError as unchanged:
            raise DeploymentError(
                f"the release changes neither the predictor nor the transformer (same image and model): "
                f"no new revision to compare ({unchanged})"
            ) from unchanged

    def first_release(
        self, model_uri: str, model_version: str | None, alerts: AlertSink, image: str | None, aliases: AliasMover
    ) -> CanaryState:
        """The first production release: nothing runs in production, so there is no stable revision to split
        traffic with or compare against. The new predictor and transformer take all traffic once both pass
        their smoke tests (the only gate there can be), then the ``production`` alias moves to the version.
        A failure leaves no stable revision to return to: it is alerted loudly, saying so."""
        if image is None or model_version is None:
            raise DeploymentError(
                "the first production release needs --image (no production image to keep) and the model's "
                "registry version (the production alias moves to it)"
            )
        # 100: all traffic on the new revisions (the production overlay's canary share has nothing to split with)
        release = rendering.Release("production", image, model_uri, model_version, canary_percent=100)
        where = f"{self.namespace}/{self.name}"
        try:
            _, generation = apply_release(self.settings, self.cluster, release)
            isvc = self._wait(generation)
            smoke_test_revisions(self.settings, self.namespace, isvc, model_version)
            revisions = newest_revisions(isvc)
        except ChurnopsError as failure:
            alerts.emit(
                Alert(
                    kind="first_release_failed",
                    message=(
                        f"THE FIRST PRODUCTION RELEASE FAILED and there is no stable revision to return to: "
                        f"{where} (model version {model_version}) {failure}. Production serves nothing reliable; "
                        "the production alias is not set. Fix the release and run `churnops canary start` again, "
                        f"or remove it (kubectl delete inferenceservice -n {self.namespace} {self.name})."
                    ),
                    objects=[where],
                )
            )
            raise DeploymentError(f"first production release of model version {model_version} failed: {failure}") from (
                failure
            )
        try:
            aliases.promote(model_version, "first production release: no stable revision to compare with")
        except ChurnopsError as failure:
            alerts.emit(
                Alert(
                    kind="first_release_alias_failed",
                    message=(
                        f"PRODUCTION SERVES MODEL VERSION {model_version} ({where}) BUT THE PRODUCTION ALIAS DOES "
                        f"NOT NAME IT: moving the alias failed ({failure}). Move it by hand "
                        f"(`churnops model promote --to production` while staging holds version {model_version})."
                    ),
                    objects=[where],
                )
            )
            raise
        return CanaryState({c: (r, r) for c, r in revisions.items()}, 100, model_version, first=True)

    def analyze(
        self,
        prometheus: Prometheus,
        limits: Thresholds,
        window: str | None = None,
        so_far: dict[str, RevisionMetrics] | None = None,
    ) -> tuple[CanaryState, Verdict, dict[str, RevisionMetrics]]:
        """Judge each component's canary against its stable revision over ``window``, added to ``so_far``
        (the earlier windows' traffic, by revision); the state, the verdict and the traffic so far."""
        state = canary_state(self.live())
        totals = dict(so_far or {})
        verdicts = []
        for component, (stable_name, canary_name) in state.revisions.items():
            for revision in (stable_name, canary_name):
                now = revision_metrics(self.settings, prometheus, self.namespace, revision, window)
                totals[revision] = totals[revision].plus(now) if revision in totals else now
            verdicts.append(judge(totals[stable_name], totals[canary_name], limits, component))
        return state, combine(verdicts), totals

    def promote(self, aliases: AliasMover, alerts: AlertSink) -> CanaryState:
        """One step: the ``production`` alias moves to the canary's model version, then all traffic goes to
        the canary revisions. When the traffic change fails, the alias moves back and the canary is rolled
        back, with an alert."""
        state = canary_state(self.live())
        version = state.model_version
        if version is None:
            raise DeploymentError(
                f"the canary carries no {rendering.MODEL_VERSION_ANNOTATION} annotation: its model version is "
                "unknown, so the production alias cannot follow (start the canary with --model-version)"
            )
        aliases.promote(version, f"canary revision {state.canary} promoted")
        try:
            self._set_canary_percent(None)
        except ChurnopsError as failure:
            undone = "the production alias was moved back"
            try:
                aliases.undo(version, f"promotion of canary revision {state.canary} failed")
            except ChurnopsError as again:
                undone = f"moving the production alias back failed too ({again}): it points at version {version}"
            self.abort(alerts, f"promotion failed: {failure}; {undone}", kind="canary_promotion_failed")
            raise DeploymentError(f"promotion of {state.canary} failed and was undone: {failure}") from failure
        return state

    def rollback(self, alerts: AlertSink, reasons: tuple[str, ...] = ()) -> CanaryState:
        """All traffic back to the stable revisions (``canaryTrafficPercent: 0``); raise an alert."""
        state = canary_state(self.live())
        why = "; ".join(reasons) or "rolled back by hand"
        self.abort(alerts, why, state=state)
        return state

    def abort(
        self, alerts: AlertSink, why: str, kind: str = "canary_rolled_back", state: CanaryState | None = None
    ) -> None:
        """Put all traffic back on the stable revisions and alert; if that fails, alert that production may
        still send the canary its share (and re-raise)."""
        described = ""
        if state is not None:
            described = (
                f"production canary {state.canary} (model version {state.model_version or 'unknown'}) "
                f"rolled back to {state.stable}: "
            )
        try:
            self._set_canary_percent(0)
        except ChurnopsError as failure:
            alerts.emit(
                Alert(
                    kind="canary_rollback_failed",
                    message=(
                        f"PRODUCTION MAY STILL SEND TRAFFIC TO THE CANARY: rolling it back failed ({failure}) "
                        f"after: {why}. Run `churnops canary rollback` or set canaryTrafficPercent: 0 on "
                        f"{self.namespace}/{self.name} by hand."
                    ),
                    objects=state.names() if state else [f"{self.namespace}/{self.name}"],
                )
            )
            raise
        alerts.emit(
            Alert(
                kind=kind,
                message=f"{described}{why}. All traffic is on the stable revisions; the production alias is unchanged.",
                objects=state.names() if state else [f"{self.namespace}/{self.name}"],
            )
        )


@dataclass(frozen=True)
class AutoOutcome:
    """How the automatic canary ended."""

    action: Literal["promoted", "rolled_back", "none"]  # none: no canary in progress (e.g. after a first release)
    verdicts: list[Verdict]
    message: str


Step = Literal["rollback", "promote", "expire", "continue"]


def next_step(verdict: Verdict, windows: int, min_windows: int, elapsed_s: float, deadline_s: float) -> Step:
    """What the automatic canary does after ``windows`` analysed windows ending with ``verdict``."""
    if verdict.decision == "rollback":
        return "rollback"
    if verdict.decision == "healthy" and windows >= min_windows:
        return "promote"
    if elapsed_s >= deadline_s:
        return "expire"
    return "continue"


def run_auto(  # pylint: disable=too-many-arguments
    canary: Canary,
    prometheus: Prometheus,
    limits: Thresholds,
    min_windows: int,
    interval_s: float,
    deadline_s: float,
    aliases: AliasMover,
    alerts: AlertSink,
) -> AutoOutcome:
    """Analyse the traffic since the start every ``interval_s``: roll back as soon as the canary is worse;
    promote once at least ``min_windows`` windows passed and the traffic so far is healthy; roll back (with
    an alert) when ``deadline_s`` passes without a decision. Every exit leaves production on one revision."""
    try:
        canary_state(canary.live())
    except DeploymentError as nothing:
        return AutoOutcome("none", [], f"nothing to analyse: {nothing}")
    verdicts: list[Verdict] = []
    started = canary.clock()
    so_far: dict[str, RevisionMetrics] = {}
    window = f"{max(int(math.ceil(interval_s)), 1)}s"
    while True:
        canary.sleep(interval_s)
        try:
            _, verdict, so_far = canary.analyze(prometheus, limits, window, so_far)
        except ChurnopsError as failure:
            canary.abort(alerts, f"the canary analysis failed: {failure}")
            return AutoOutcome("rolled_back", verdicts, f"rolled back: the analysis failed ({failure})")
        verdicts.append(verdict)
        number = len(verdicts)
        logger.info("canary window %d: %s", number, verdict.line())
        step = next_step(verdict, number, min_windows, canary.clock() - started, deadline_s)
        if step == "promote":
            state = canary.promote(aliases, alerts)
            return AutoOutcome(
                "promoted",
                verdicts,
                f"promoted {state.canary} (model version {state.model_version}) after {number} windows",
            )
        if step == "continue":
            continue
        if step == "rollback":
            why, kind, said = "; ".join(verdict.reasons), "canary_rolled_back", f"rolled back after window {number}"
        else:
            why = f"no decision within the deadline of {deadline_s:g} s ({number} windows): " + (
                "; ".join(verdict.reasons) or "fewer healthy windows than required"
            )
            kind, said = "canary_expired", "rolled back"
        canary.abort(alerts, why, kind=kind, state=canary_state(canary.live()))
        return AutoOutcome("rolled_back", verdicts, f"{said}: {why}")
