"""Structured alerts: one JSON log line each, and optionally a Slack-compatible webhook message.

An alert says what happened (``kind``), in words (``message``), how much (``counts``) and to
which objects; it never carries record values, so it holds no PII. The webhook URL is a secret
(whoever has it can post to the channel): it is never logged, and a failed delivery is logged
and otherwise ignored, so alerting never breaks the run that raised the alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import requests

from churnops.platform.logs import Scrubber
from churnops.platform.settings import Settings

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 5.0
MAX_LISTED_OBJECTS = 10


@dataclass(frozen=True)
class Alert:
    """Something an operator should look at."""

    kind: str
    message: str
    counts: dict[str, int] = field(default_factory=dict)
    objects: list[str] = field(default_factory=list)
    run_id: str | None = None

    def __post_init__(self) -> None:
        if not self.kind:
            raise ValueError("an alert needs a kind")
        bad = sorted(key for key, value in self.counts.items() if isinstance(value, bool) or not isinstance(value, int))
        if bad:
            raise TypeError(f"alert counts must be integers; not for {bad}")


class AlertSink:
    """Emits alerts to the log and, when ``settings.alert_webhook_url`` is set, to a chat webhook."""

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        url = settings.alert_webhook_url
        self._webhook_url = url if url is not None and url.get_secret_value() else None  # empty means unset
        self._session = session if session is not None else requests.Session()
        self._scrubber = Scrubber(settings.log_scrub_identifiers)
        self.emitted: list[Alert] = []

    def __repr__(self) -> str:
        return f"AlertSink(webhook={'set' if self._webhook_url else 'unset'}, emitted={len(self.emitted)})"

    def emit(self, alert: Alert) -> None:
        """Log ``alert`` as one WARNING line, then post it to the webhook if one is configured."""
        logger.warning(
            "%s: %s",
            alert.kind,
            alert.message,
            extra={
                "alert": True,
                "alert_kind": alert.kind,
                "counts": dict(alert.counts),
                "objects": list(alert.objects),
                "run_id": alert.run_id,
            },
        )
        self.emitted.append(alert)
        if self._webhook_url is not None:
            self._post(self._webhook_url.get_secret_value(), alert)

    def _post(self, url: str, alert: Alert) -> None:
        try:
            response = self._session.post(url, json=self.webhook_body(alert), timeout=WEBHOOK_TIMEOUT_S)
        except requests.RequestException as error:
            # The exception text contains the URL: log only its type.
            logger.warning("alert webhook delivery failed (%s) for alert %s", type(error).__name__, alert.kind)
            return
        if not response.ok:
            logger.warning("alert webhook answered HTTP %d for alert %s", response.status_code, alert.kind)

    def webhook_body(self, alert: Alert) -> dict[str, Any]:
        """The Slack-compatible message for ``alert``: plain ``text`` plus ``blocks`` for richer clients."""
        headline = f"churnops alert: {alert.kind}"
        message = self._scrubber.text(alert.message)
        details = [f"*{key}*: {value:,}" for key, value in sorted(alert.counts.items())]
        if alert.run_id:
            details.append(f"*run*: `{alert.run_id}`")
        listed = [f"`{name}`" for name in alert.objects[:MAX_LISTED_OBJECTS]]
        if len(alert.objects) > MAX_LISTED_OBJECTS:
            listed.append(f"and {len(alert.objects) - MAX_LISTED_OBJECTS} more")
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": headline[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": message[:3000] or "(no message)"}},
        ]
        if details:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(details)[:3000]}})
        if listed:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": ", ".join(listed)[:3000]}]})
        return {"text": f"{headline}: {message}", "blocks": blocks}


def alert_on_pipeline_failure(
    settings: Settings,
    pipeline: str,
    state: str,
    job: str,
    failed_task: str = "",
    error: str = "",
    sink: AlertSink | None = None,
    run_name: str = "",
) -> Alert | None:
    """Raise a ``pipeline_failed`` alert when a pipeline run did not succeed; None (and no alert) when it did.

    ``state`` is KFP's final state of the run's body (``SUCCEEDED``, ``FAILED``, ``CANCELLED``...);
    ``job`` the run's id, ``run_name`` its name; ``failed_task`` the task that failed and ``error`` its
    error, kept to its first line. The message names each that is known.
    """
    if state.upper() == "SUCCEEDED":
        return None
    first_line = error.strip().splitlines()[0] if error.strip() else ""
    message = f"pipeline {pipeline} ended {state}"
    if failed_task:
        message += f" in task {failed_task}"
    if first_line:
        message += f": {first_line}"
    if run_name:
        message += f" (run {run_name})"
    alert = Alert("pipeline_failed", message, {}, [failed_task] if failed_task else [], job or None)
    (sink or AlertSink(settings)).emit(alert)
    return alert
