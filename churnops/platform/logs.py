"""One logging setup for every churnops entry point.

Lines are JSON in Cloud Logging's structured format (``severity``, ``message``, ``time``,
``logger`` and any ``extra`` fields), written by python-json-logger. Before any handler formats
a record, :class:`PiiScrubber` masks e-mail addresses, phone numbers, IPv4/IPv6 addresses (not
loopback ones), card-like numbers and configured raw identifiers in the message, its arguments,
the extra fields and the exception text.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterable
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from churnops.platform.settings import Settings

MASK = "[REDACTED]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(?\d{1,4}\)?[ .-]?){2,4}\d{2,4}"
    r"|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4})\b"
)
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])")
_IPV6_CANDIDATE = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(?![0-9A-Fa-f:])")

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char)
        if i % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    grouped = bool(re.search(r"[ -]", text))
    return MASK if grouped or _luhn_ok(digits) else text


def _mask_ip(match: re.Match[str]) -> str:
    """Mask an IP address, except loopback and unspecified ones (a machine's own, never a person's)."""
    text = match.group(0)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    return text if address.is_loopback or address.is_unspecified else MASK


class Scrubber:
    """Masks PII in text. ``identifiers`` are extra regular expressions (e.g. raw customer ids)."""

    def __init__(self, identifiers: Iterable[str] = ()) -> None:
        self._identifiers = [re.compile(pattern) for pattern in identifiers]

    def text(self, value: str) -> str:
        """Return ``value`` with every PII match replaced by ``[REDACTED]``."""
        value = _EMAIL.sub(MASK, value)
        value = _IPV6_CANDIDATE.sub(_mask_ip, value)
        value = _IPV4.sub(_mask_ip, value)
        value = _CARD.sub(_mask_card, value)
        value = _PHONE.sub(MASK, value)
        for pattern in self._identifiers:
            value = pattern.sub(MASK, value)
        return value

    def value(self, value: Any) -> Any:
        """Scrub strings inside ``value`` (dicts, lists and tuples are walked)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, (list, tuple, set)):
            return [self.value(item) for item in value]
        return value


class PiiScrubber(logging.Filter):
    """A logging filter that rewrites a record so that no handler ever sees PII."""

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_churnops_scrubbed", False):
            return True
        record.msg = self.scrubber.text(record.getMessage())
        record.args = None
        for key in [key for key in vars(record) if key not in _STANDARD_ATTRS]:
            setattr(record, key, self.scrubber.value(getattr(record, key)))
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = self.scrubber.text(text.rstrip("\n"))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.scrubber.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrubber.text(record.stack_info)
        record._churnops_scrubbed = True  # pylint: disable=protected-access
        return True


def cloud_logging_formatter() -> JsonFormatter:
    """JSON formatter whose keys match Cloud Logging's structured-logging fields."""
    return JsonFormatter(
        "{levelname}{message}{name}{asctime}",
        style="{",
        rename_fields={"levelname": "severity", "name": "logger", "asctime": "time"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def setup_logging(settings: Settings, stream: Any = None) -> PiiScrubber:
    """Route every log record through the scrubber and one handler on the root logger.

    Handlers that other libraries attached to their own loggers get the scrubber too, and (in JSON
    format) the same formatter, so every line a process logs has one shape.
    Returns the filter so callers (and tests) can reuse it.
    """
    scrubber = PiiScrubber(Scrubber(settings.log_scrub_identifiers))
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(cloud_logging_formatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(scrubber)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            for other in logger.handlers:
                if scrubber not in other.filters:
                    other.addFilter(scrubber)
                if settings.log_format == "json" and isinstance(other, logging.StreamHandler):
                    other.setFormatter(handler.formatter)  # e.g. MLflow's own handler: same JSON lines
    logging.captureWarnings(True)
    _quiet_mlflow(root.level)
    return scrubber


def _quiet_mlflow(level: int) -> None:
    """Make MLflow follow the configured level: its own logger and its printed run links.

    MLflow configures the ``mlflow`` logger at import (level from ``MLFLOW_LOGGING_LEVEL``, INFO by
    default, its own handler, no propagation) and prints "View run ... at" links to stdout when a
    run ends. Both are set here; the environment variables cover an ``mlflow`` imported later.
    """
    name = logging.getLevelName(level)
    os.environ["MLFLOW_LOGGING_LEVEL"] = name if isinstance(name, str) else "WARNING"
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "false" if level <= logging.INFO else "true"
    logging.getLogger("mlflow").setLevel(level)
