"""Alerts: one structured WARNING log line, a Slack-compatible webhook POST, and failures never raised."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from churnops.platform.alerts import Alert, AlertSink, alert_on_pipeline_failure
from churnops.platform.logs import PiiScrubber, Scrubber, cloud_logging_formatter
from churnops.platform.settings import Settings
from tests.conftest import free_port

ALERT = Alert(
    kind="quarantined_rows",
    message="3 rows failed the events:v1 contract and were quarantined",
    counts={"rows_in": 100, "rows_quarantined": 3},
    objects=["gs://churnops-raw/activity/events/dt=2025-01-01/hr=05/web-0001.jsonl.gz"],
    run_id="run-42",
)


class Webhook(ThreadingHTTPServer):
    """A local HTTP server that records the JSON bodies POSTed to it and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = status
        super().__init__(("127.0.0.1", 0), _WebhookHandler)

    @property
    def url(self) -> str:
        """The webhook URL, with a path that plays the part of the secret."""
        return f"http://127.0.0.1:{self.server_port}/services/T000/B000/webhook-secret-part"


class _WebhookHandler(BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:  # pylint: disable=invalid-name  # name required by http.server
        """Record the JSON body and answer with the configured status."""
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        self.server.paths.append(self.path)
        self.send_response(self.server.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        """No access log on stderr."""


@pytest.fixture(name="log_lines")
def log_lines_fixture() -> Iterator[io.StringIO]:
    """Captures the alerts logger's output as Cloud Logging JSON lines, scrubbed as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(cloud_logging_formatter())
    handler.addFilter(PiiScrubber(Scrubber()))
    alerts_logger = logging.getLogger("churnops.platform.alerts")
    alerts_logger.addHandler(handler)
    old_level = alerts_logger.level
    alerts_logger.setLevel(logging.INFO)
    yield stream
    alerts_logger.removeHandler(handler)
    alerts_logger.setLevel(old_level)


def with_webhook(settings: Settings, url: str) -> Settings:
    """``settings`` with the alert webhook set (validated like an environment value)."""
    return Settings(**{**settings.model_dump(), "alert_webhook_url": url})


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    """The JSON log lines written so far."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture(name="webhook")
def webhook_fixture(request: pytest.FixtureRequest) -> Iterator[Webhook]:
    """A running :class:`Webhook`; parametrize indirectly with an HTTP status to change its answer."""
    server = Webhook(getattr(request, "param", 200))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_emit_logs_one_structured_warning(settings: Settings, log_lines: io.StringIO) -> None:
    """One WARNING line carries the alert fields as structured JSON."""
    sink = AlertSink(settings)
    sink.emit(ALERT)
    [line] = records(log_lines)
    assert line["severity"] == "WARNING"
    assert line["logger"] == "churnops.platform.alerts"
    assert line["message"] == f"quarantined_rows: {ALERT.message}"
    assert line["alert"] is True
    assert line["alert_kind"] == "quarantined_rows"
    assert line["counts"] == {"rows_in": 100, "rows_quarantined": 3}
    assert line["objects"] == ALERT.objects
    assert line["run_id"] == "run-42"
    assert sink.emitted == [ALERT]


def test_webhook_receives_slack_message(settings: Settings, webhook: Webhook, log_lines: io.StringIO) -> None:
    """Each alert is POSTed to the webhook as a Slack-compatible message."""
    sink = AlertSink(with_webhook(settings, webhook.url))
    sink.emit(ALERT)
    sink.emit(Alert(kind="schema_drift", message="new column 'referrer' in events", counts={}, objects=[]))
    assert webhook.paths == ["/services/T000/B000/webhook-secret-part"] * 2
    first, second = webhook.bodies
    assert first["text"] == f"churnops alert: quarantined_rows: {ALERT.message}"
    block_text = json.dumps(first["blocks"])
    assert "rows_quarantined" in block_text and "run-42" in block_text and "web-0001.jsonl.gz" in block_text
    assert {block["type"] for block in first["blocks"]} <= {"header", "section", "context"}
    assert second["text"] == "churnops alert: schema_drift: new column 'referrer' in events"
    assert len(records(log_lines)) == 2  # only the alerts themselves: delivery succeeded


def test_webhook_message_is_scrubbed(settings: Settings, webhook: Webhook) -> None:
    """An e-mail address slipped into a message does not reach the chat channel."""
    sink = AlertSink(with_webhook(settings, webhook.url))
    sink.emit(Alert(kind="unreadable_object", message="bad line near ann@example.com", counts={}, objects=[]))
    assert "ann@example.com" not in json.dumps(webhook.bodies)


def test_many_objects_are_summarised(settings: Settings) -> None:
    """Only the first ten objects are listed; the rest are counted."""
    objects = [f"gs://raw/activity/events/dt=2025-01-01/hr=05/web-{i:04d}.jsonl.gz" for i in range(25)]
    body = AlertSink(settings).webhook_body(Alert(kind="unreadable_object", message="m", objects=objects))
    text = json.dumps(body)
    assert "web-0009" in text and "web-0010" not in text and "and 15 more" in text


def test_webhook_down_is_logged_without_url(settings: Settings, log_lines: io.StringIO) -> None:
    """A refused connection is logged (without the secret URL) and not raised."""
    url = f"http://127.0.0.1:{free_port()}/services/T000/B000/webhook-secret-part"
    sink = AlertSink(with_webhook(settings, url))
    sink.emit(ALERT)
    alert_line, failure = records(log_lines)
    assert alert_line["alert"] is True
    assert failure["severity"] == "WARNING"
    assert "ConnectionError" in failure["message"]
    assert "webhook-secret-part" not in log_lines.getvalue()
    assert sink.emitted == [ALERT]


@pytest.mark.parametrize("webhook", [500], indirect=True)
def test_webhook_error_status_is_logged(settings: Settings, webhook: Webhook, log_lines: io.StringIO) -> None:
    """An HTTP error answer is logged (without the secret URL) and not raised."""
    AlertSink(with_webhook(settings, webhook.url)).emit(ALERT)
    assert len(webhook.bodies) == 1
    assert "HTTP 500" in records(log_lines)[-1]["message"]
    assert "webhook-secret-part" not in log_lines.getvalue()


def test_empty_webhook_url_means_no_webhook(settings: Settings, log_lines: io.StringIO) -> None:
    """An empty webhook setting sends nothing and logs no delivery failure."""
    sink = AlertSink(with_webhook(settings, ""))
    sink.emit(ALERT)
    assert len(records(log_lines)) == 1
    assert "webhook=unset" in repr(sink)


def test_alert_counts_must_be_integers() -> None:
    """Malformed alerts are refused when built."""
    with pytest.raises(TypeError, match="rows"):
        Alert(kind="quarantined_rows", message="m", counts={"rows": 1.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        Alert(kind="", message="m")


def test_a_failed_pipeline_raises_one_alert_and_a_succeeded_one_none(settings: Settings) -> None:
    sink = AlertSink(settings)
    assert alert_on_pipeline_failure(settings, "ingest", "SUCCEEDED", "run-1", sink=sink) is None
    alert = alert_on_pipeline_failure(
        settings, "ingest", "FAILED", "run-2", "ingest", "Task ingest failed.\ntrace", sink=sink
    )
    assert alert is not None and sink.emitted == [alert]
    assert alert.kind == "pipeline_failed"
    assert alert.message == "pipeline ingest ended FAILED in task ingest: Task ingest failed."
    assert alert.objects == ["ingest"] and alert.run_id == "run-2"
    named = alert_on_pipeline_failure(
        settings,
        "ingest",
        "FAILED",
        "9f0c",
        "ingest-gate",
        "ingest refused: ValueError: hour 'x' is not a time",
        sink=sink,
        run_name="churnops-ingest hourly",
    )
    assert named is not None and named.message == (
        "pipeline ingest ended FAILED in task ingest-gate: ingest refused: ValueError: hour 'x' is not a time "
        "(run churnops-ingest hourly)"
    )
    assert named.objects == ["ingest-gate"] and named.run_id == "9f0c"
