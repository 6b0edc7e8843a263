"""The canary queries the metrics Knative Serving 1.18's queue-proxy exports, read from the vendored source of
the pinned release (tests/specs/knative-serving-v1.18.2), not restated from memory."""

from __future__ import annotations

import re
from pathlib import Path

from churnops.deploy import canary
from churnops.platform import declaration
from churnops.platform.settings import Settings

KNATIVE = Path(__file__).resolve().parents[2] / "specs" / "knative-serving-v1.18.2"


def _source(path: str) -> str:
    return (KNATIVE / path).read_text(encoding="utf-8")


def _go_string(source: str, name: str) -> str:
    match = re.search(rf'\b{name}\s*=\s*"([^"]+)"', source)
    assert match is not None, name
    return match.group(1)


def test_the_installed_release_is_the_vendored_one() -> None:
    # the Knative Serving minor version the platform installs (its one declaration, which infra/pulumi reads)
    assert KNATIVE.name.startswith(f"knative-serving-v{declaration.KNATIVE_SERVING}.")


def test_metric_names_are_the_exporter_component_and_the_queue_proxy_views() -> None:
    component = re.search(r'Component:\s*"(\w+)"', _source("pkg/queue/sharedmain/main.go"))
    assert component is not None
    request_metric = _source("pkg/queue/request_metric.go")
    count = re.search(r'appRequestCountM = stats\.Int64\(\s*"(\w+)"', request_metric)
    latencies = re.search(r'appResponseTimeInMsecM = stats\.Float64\(\s*"(\w+)"', request_metric)
    assert count is not None and latencies is not None
    assert canary.REQUESTS_METRIC == f"{component.group(1)}_{count.group(1)}"
    assert canary.LATENCY_METRIC == f"{component.group(1)}_{latencies.group(1)}"
    assert "stats.UnitMilliseconds" in request_metric[latencies.end() : latencies.end() + 200]  # milliseconds


def test_the_latency_buckets_are_the_queue_proxys() -> None:
    request_metric = _source("pkg/queue/request_metric.go")
    found = re.search(r"defaultLatencyDistribution = view\.Distribution\(([^)]*)\)", request_metric)
    assert found is not None
    bounds = tuple(int(value) for value in re.findall(r"\d+", found.group(1)))
    assert canary.LATENCY_BUCKETS_MS == bounds
    assert canary.Thresholds.from_settings(Settings()).slow_ms in bounds


def test_the_label_names_and_the_5xx_class_value() -> None:
    keys = _source("vendor/knative.dev/pkg/metrics/metricskey/constants.go")
    serving_keys = _source("pkg/metrics/key.go")
    assert canary.NAMESPACE_LABEL == _go_string(keys, "LabelNamespaceName")
    assert canary.REVISION_LABEL == _go_string(serving_keys, "LabelRevisionName")
    assert canary.CODE_CLASS_LABEL == _go_string(keys, "LabelResponseCodeClass")
    # the app request views carry the response code class tag
    app_views = _source("pkg/queue/request_metric.go").split("func NewAppRequestMetricsHandler", 1)[1]
    assert "metrics.ResponseCodeClassKey" in app_views.split("RegisterResourceView", 1)[0]
    utils = _source("vendor/knative.dev/pkg/metrics/utils.go")
    assert 'strconv.Itoa(responseCode/100) + "xx"' in utils  # 503 -> "5xx"
    assert canary.SERVER_ERROR_CLASS == f"{503 // 100}xx"
