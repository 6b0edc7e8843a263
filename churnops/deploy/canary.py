"""The production canary: start, analyse, promote, roll back, and the automatic loop over all four.

KServe runs the canary: with ``canaryTrafficPercent: P`` on the InferenceService, a new predictor
revision (tag ``latest``) takes P % of the traffic and the previously rolled-out one (tag ``prev``)
the rest. The operations are the documented KServe ones: *start* applies the production overlay with
the new model URI and ``canaryTrafficPercent: P``; *promote* removes ``canaryTrafficPercent`` (a merge
patch setting it to null), so the latest revision takes all traffic, and then moves the registry's
``production`` alias to the canary's model version; *rollback* sets ``canaryTrafficPercent: 0``, so the
previous revision takes all traffic again; the alias is left alone and an alert is raised.

The analysis compares the two revisions over the last window, from Prometheus:

* error rate: 5xx answers over requests, from Knative's queue-proxy (``revision_app_request_count``);
* p99 latency: ``histogram_quantile(0.99, ...)`` of ``revision_app_request_latencies`` (milliseconds);
* prediction shift: PSI (:func:`churnops.training.drift.psi`) of the canary's predicted-probability
  histogram against the stable revision's (the predictor's ``<probability_metric>_bucket``, scraped
  from the pods with their ``serving.knative.dev/revision`` label as ``serving_knative_dev_revision``).

Below ``canary_min_requests`` canary requests in the window there is no decision (*hold*).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import google.auth
import google.auth.exceptions
import requests
from google.auth.transport.requests import AuthorizedSession

from churnops.deploy import render as rendering
from churnops.deploy.kube import ISVC_API_VERSION, ISVC_KIND, Cluster
from churnops.deploy.release import apply_release
from churnops.errors import DeploymentError, ServiceUnavailable
from churnops.platform.alerts import Alert, AlertSink
from churnops.platform.settings import Settings
from churnops.training.drift import psi

logger = logging.getLogger(__name__)

Decision = Literal["healthy", "rollback", "hold"]
REQUESTS_METRIC = "revision_app_request_count"
LATENCY_METRIC = "revision_app_request_latencies"  # milliseconds
P99 = 0.99
# The pod label serving.knative.dev/revision as the usual kubernetes-pods scrape job's labelmap names it.
APP_REVISION_LABEL = "serving_knative_dev_revision"


@dataclass(frozen=True)
class Thresholds:
    """When a canary is rolled back, and how much traffic a decision needs."""

    min_requests: int
    max_error_rate: float
    max_p99_ratio: float
    max_p99_s: float
    max_psi: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "Thresholds":
        """The thresholds configured in settings (``canary_*``)."""
        return cls(
            min_requests=settings.canary_min_requests,
            max_error_rate=settings.canary_max_error_rate,
            max_p99_ratio=settings.canary_max_p99_ratio,
            max_p99_s=settings.canary_max_p99_s,
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


@dataclass(frozen=True)
class RevisionMetrics:
    """One revision's traffic over the analysis window (increases of the counters)."""

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


@dataclass(frozen=True)
class Verdict:
    """The analysis of one window."""

    decision: Decision
    reasons: tuple[str, ...]
    figures: dict[str, float]

    def line(self) -> str:
        """One line: decision, figures, reasons."""
        figures = " ".join(f"{key}={value:.4g}" for key, value in self.figures.items())
        return f"{self.decision}: {figures}" + (f" ({'; '.join(self.reasons)})" if self.reasons else "")


def judge(stable: RevisionMetrics, canary: RevisionMetrics, limits: Thresholds) -> Verdict:
    """Healthy, rollback (with every threshold crossed) or hold (too little traffic to decide)."""
    figures = {"canary_requests": canary.requests, "stable_requests": stable.requests}
    if canary.requests < limits.min_requests or stable.requests < limits.min_requests:
        return Verdict(
            "hold",
            (
                f"too little traffic to decide: canary {canary.requests:.0f} and stable {stable.requests:.0f} "
                f"requests in the window, each needs {limits.min_requests}",
            ),
            figures,
        )
    reasons = []
    figures["canary_error_rate"] = canary.error_rate
    figures["stable_error_rate"] = stable.error_rate
    if canary.error_rate > limits.max_error_rate:
        reasons.append(f"5xx rate {canary.error_rate:.2%} > {limits.max_error_rate:.2%}")
    canary_p99, stable_p99 = canary.p99_s, stable.p99_s
    figures["canary_p99_s"] = canary_p99
    figures["stable_p99_s"] = stable_p99
    if math.isnan(canary_p99):
        reasons.append("the canary reports no latency histogram")
    elif canary_p99 > limits.max_p99_s:
        reasons.append(f"p99 latency {canary_p99 * 1000:.0f} ms > {limits.max_p99_s * 1000:.0f} ms")
    elif not math.isnan(stable_p99) and stable_p99 > 0 and canary_p99 > stable_p99 * limits.max_p99_ratio:
        reasons.append(
            f"p99 latency {canary_p99 * 1000:.0f} ms > {limits.max_p99_ratio:g} x stable {stable_p99 * 1000:.0f} ms"
        )
    stable_bins, canary_bins = bin_counts(stable.probability), bin_counts(canary.probability)
    if sum(canary_bins) <= 0 or sum(stable_bins) <= 0:
        return Verdict("hold", (*reasons, "no predicted-probability observations to compare"), figures)
    if len(stable_bins) != len(canary_bins):
        raise DeploymentError("the revisions export probability histograms with different buckets")
    shift = psi(stable_bins, canary_bins)
    figures["psi"] = shift
    if shift > limits.max_psi:
        reasons.append(f"predicted-probability PSI {shift:.3f} > {limits.max_psi:g}")
    return Verdict("rollback" if reasons else "healthy", tuple(reasons), figures)


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
                raise ServiceUnavailable(f"no Google credentials to query Prometheus at {settings.prometheus_url}: "
                                         f"{exc}") from exc
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


def revision_metrics(settings: Settings, prometheus: Prometheus, namespace: str, revision: str) -> RevisionMetrics:
    """Requests, 5xx, latency and probability histograms of ``revision`` over ``canary_window``."""
    window = settings.canary_window
    sel = f'namespace_name="{namespace}",revision_name="{revision}"'
    app_sel = f'namespace="{namespace}",{APP_REVISION_LABEL}="{revision}"'
    return RevisionMetrics(
        revision=revision,
        requests=prometheus.scalar_sum(f"sum(increase({REQUESTS_METRIC}{{{sel}}}[{window}]))"),
        errors=prometheus.scalar_sum(f'sum(increase({REQUESTS_METRIC}{{{sel},response_code_class="5xx"}}[{window}]))'),
        latency_ms=prometheus.histogram(f"sum by (le) (increase({LATENCY_METRIC}_bucket{{{sel}}}[{window}]))"),
        probability=prometheus.histogram(
            f"sum by (le) (increase({settings.probability_metric}_bucket{{{app_sel}}}[{window}]))"
        ),
    )


@dataclass(frozen=True)
class CanaryState:
    """Which revision is stable, which is the canary, and the canary's share."""

    stable: str
    canary: str
    canary_percent: int
    model_version: str | None


def canary_state(isvc: dict[str, Any]) -> CanaryState:
    """Read the revisions from the InferenceService's traffic status; an error when no canary runs."""
    predictor = ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}
    tagged = {target.get("tag"): target for target in predictor.get("traffic") or []}
    if "prev" not in tagged or "latest" not in tagged:
        raise DeploymentError(
            "no canary in progress: the predictor's traffic has no 'prev' and 'latest' revisions "
            f"({[(t.get('tag'), t.get('percent')) for t in predictor.get('traffic') or []]})"
        )
    annotations = isvc.get("metadata", {}).get("annotations") or {}
    return CanaryState(
        stable=str(tagged["prev"]["revisionName"]),
        canary=str(tagged["latest"]["revisionName"]),
        canary_percent=int(tagged["latest"].get("percent") or 0),
        model_version=annotations.get(rendering.MODEL_VERSION_ANNOTATION),
    )


class Canary:
    """The canary operations on the production InferenceService."""

    def __init__(self, settings: Settings, cluster: Cluster, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.cluster = cluster
        self.namespace = rendering.NAMESPACES["production"]
        self.name = settings.deploy_service
        self.sleep = sleep

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
        """Merge patch ``spec.predictor.canaryTrafficPercent`` (None removes the field)."""
        patch = {"spec": {"predictor": {"canaryTrafficPercent": percent}}}
        return self.cluster.merge_patch(ISVC_API_VERSION, ISVC_KIND, self.name, self.namespace, patch)

    def start(
        self, percent: int, model_uri: str, model_version: str | None, image: str | None = None
    ) -> CanaryState:
        """Roll ``model_uri`` (and ``image``, default the live one) out to ``percent`` % of production traffic."""
        if not 0 < percent < 100:
            raise DeploymentError(f"a canary takes between 1 and 99 % of the traffic, not {percent}")
        containers = self.live()["spec"]["predictor"].get("containers") or [{}]
        image = image or containers[0].get("image")
        if not image:
            raise DeploymentError("the production predictor has no container image to keep")
        release = rendering.Release("production", image, model_uri, model_version, canary_percent=percent)
        _, generation = apply_release(self.settings, self.cluster, release)
        return canary_state(self._wait(generation))

    def analyze(self, prometheus: Prometheus, limits: Thresholds) -> tuple[CanaryState, Verdict]:
        """Judge the canary against the stable revision over the last window."""
        state = canary_state(self.live())
        stable = revision_metrics(self.settings, prometheus, self.namespace, state.stable)
        canary = revision_metrics(self.settings, prometheus, self.namespace, state.canary)
        return state, judge(stable, canary, limits)

    def promote(self, move_alias: Callable[[str, str], Any]) -> CanaryState:
        """All traffic to the canary, then ``move_alias(version, note)`` points ``production`` at its model version."""
        state = canary_state(self.live())
        if state.model_version is None:
            raise DeploymentError(
                f"the canary carries no {rendering.MODEL_VERSION_ANNOTATION} annotation: its model version is "
                "unknown, so the production alias cannot follow (start the canary with --model-version)"
            )
        patched = self._set_canary_percent(None)
        self._wait(int(patched["metadata"]["generation"]))
        move_alias(state.model_version, f"canary revision {state.canary} promoted")
        return state

    def rollback(self, alerts: AlertSink, reasons: tuple[str, ...] = ()) -> CanaryState:
        """All traffic back to the stable revision (``canaryTrafficPercent: 0``); raise an alert."""
        state = canary_state(self.live())
        patched = self._set_canary_percent(0)
        self._wait(int(patched["metadata"]["generation"]))
        why = "; ".join(reasons) or "rolled back by hand"
        alerts.emit(
            Alert(
                kind="canary_rolled_back",
                message=(
                    f"production canary {state.canary} (model version {state.model_version or 'unknown'}) rolled back "
                    f"to {state.stable}: {why}. The production alias is unchanged."
                ),
                objects=[state.canary, state.stable],
            )
        )
        return state


@dataclass(frozen=True)
class AutoOutcome:
    """How the automatic canary ended."""

    action: Literal["promoted", "rolled_back", "held"]
    verdicts: list[Verdict]
    message: str


def run_auto(
    canary: Canary,
    prometheus: Prometheus,
    limits: Thresholds,
    intervals: int,
    interval_s: float,
    move_alias: Callable[[str, str], Any],
    alerts: AlertSink,
) -> AutoOutcome:
    """Analyse every ``interval_s`` for ``intervals`` windows: roll back at the first failed window,
    promote when every window was healthy, otherwise hold (too little traffic) and say so."""
    verdicts: list[Verdict] = []
    for number in range(1, intervals + 1):
        canary.sleep(interval_s)
        _, verdict = canary.analyze(prometheus, limits)
        verdicts.append(verdict)
        logger.info("canary window %d/%d: %s", number, intervals, verdict.line())
        if verdict.decision == "rollback":
            canary.rollback(alerts, verdict.reasons)
            why = "; ".join(verdict.reasons)
            return AutoOutcome("rolled_back", verdicts, f"rolled back after window {number}: {why}")
    held = sum(1 for verdict in verdicts if verdict.decision == "hold")
    if held:
        return AutoOutcome(
            "held",
            verdicts,
            f"held: {held} of {intervals} windows had too little traffic to decide; the canary keeps its share",
        )
    state = canary.promote(move_alias)
    return AutoOutcome("promoted", verdicts, f"promoted {state.canary} (model version {state.model_version})")
