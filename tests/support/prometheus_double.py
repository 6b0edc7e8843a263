"""A Prometheus HTTP API double (``/api/v1/query``) that replays stored canary metric series.

A series file (``tests/support/canary_series/*.json``) holds, per analysis window, each role's
(``stable``, ``canary``) counter increases: requests, 5xx answers, and the cumulative buckets of the
latency (ms, at the bounds of Knative's queue-proxy histogram) and predicted-probability histograms.
The double maps roles to revision names, reads the revision, metric and ``response_code_class`` from
each query's label matchers and answers an instant vector in Prometheus' JSON format; :meth:`advance`
moves to the next window.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.support.wsgi_double import WsgiDouble

SERIES_DIR = Path(__file__).resolve().parent / "canary_series"
_REVISION = re.compile(r'(?:revision_name|serving_knative_dev_revision)="([^"]+)"')


def load_series(name: str) -> list[dict[str, Any]]:
    """The windows of a stored series."""
    return json.loads((SERIES_DIR / f"{name}.json").read_text(encoding="utf-8"))["intervals"]


class PrometheusDouble(WsgiDouble):
    """Answers instant queries from a series; ``revisions`` maps revision name -> role."""

    name = "prometheus-double"

    def __init__(self, series: list[dict[str, Any]], probability_metric: str) -> None:
        super().__init__()
        self.series = series
        self.window = 0
        self.revisions: dict[str, str] = {}
        self.queries: list[str] = []
        self._probability = f"{probability_metric}_bucket"

    def advance(self, _seconds: float = 0.0) -> None:
        """Next window (usable as the canary's sleep function)."""
        self.window = min(self.window + 1, len(self.series) - 1)

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        request = Request(environ)
        if request.path != "/api/v1/query" or "query" not in request.args:
            body = {"status": "error", "errorType": "bad_data", "error": "unknown endpoint or no query"}
            return Response(json.dumps(body), status=400, content_type="application/json")(environ, start_response)
        query = request.args["query"]
        self.queries.append(query)
        body = {"status": "success", "data": {"resultType": "vector", "result": self._result(query)}}
        return Response(json.dumps(body), content_type="application/json")(environ, start_response)

    def _result(self, query: str) -> list[dict[str, Any]]:
        found = _REVISION.search(query)
        role = self.revisions.get(found.group(1)) if found else None
        if role is None:
            return []
        data = self.series[self.window][role]
        if "revision_app_request_latencies_bucket" in query:
            return _buckets(data["latency_ms"])
        if self._probability in query:
            return _buckets(data["probability"])
        if "revision_app_request_count" in query:
            key = "errors_5xx" if 'response_code_class="5xx"' in query else "requests"
            return [{"metric": {}, "value": [1_700_000_000.0, str(float(data[key]))]}]
        return []


def _buckets(cumulative: dict[str, float]) -> list[dict[str, Any]]:
    return [{"metric": {"le": le}, "value": [1_700_000_000.0, str(float(count))]} for le, count in cumulative.items()]
