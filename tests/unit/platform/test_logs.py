"""The log scrubber masks PII wherever it hides in a record, before any handler formats it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from churnops.platform.logs import MASK, Scrubber, setup_logging
from churnops.platform.settings import Settings

PII = {
    "email": "jane.doe+churn@example.com",
    "phone_intl": "+1-555-123-4567",
    "phone_national": "(555) 123-4567",
    "ipv4": "203.0.113.42",
    "ipv6": "2001:db8::8a2e:370:7334",
    "card": "4111 1111 1111 1111",
    "card_plain": "4111111111111111",
    "customer": "CUST-0001234",
}


@pytest.fixture(name="captured")
def fixture_captured(tmp_path) -> Iterator[io.StringIO]:
    """Route logging through setup_logging into a buffer; restore the root logger afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    setup_logging(Settings(state_dir=tmp_path), stream=stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict]:
    """The JSON objects written so far."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


@pytest.mark.parametrize("kind", sorted(PII))
def test_scrubber_masks_each_kind(kind: str) -> None:
    text = Scrubber([r"\bCUST-\d+\b"]).text(f"value is {PII[kind]} ok")
    assert PII[kind] not in text
    assert MASK in text
    assert text.startswith("value is ") and text.endswith(" ok")


def test_scrubber_leaves_ordinary_text_alone() -> None:
    # Dates, times, counts and a long number that fails the Luhn check are not card-like.
    text = "ingested 1532 rows from hr=05 at 2026-11-01T05:00:00+00:00 generation 1700000000000002 in 0.25s"
    assert Scrubber().text(text) == text


def test_loopback_addresses_are_not_personal_data() -> None:
    text = "mlflow at http://127.0.0.1:5050, gcs at [::1]:4443, bound to 0.0.0.0"
    assert Scrubber().text(text) == text
    assert Scrubber().text("client 10.1.2.3") == f"client {MASK}"


def test_bare_digit_runs_are_masked_only_when_luhn_valid() -> None:
    assert Scrubber().text("n=1700000000000001") == f"n={MASK}"  # passes Luhn: could be a card
    assert Scrubber().text("n=1700000000000002") == "n=1700000000000002"


def test_message_and_args_are_scrubbed(captured: io.StringIO) -> None:
    logging.getLogger("churnops.test").warning("contact %s from %s", PII["email"], PII["ipv4"])
    record = lines(captured)[-1]
    assert record["severity"] == "WARNING"
    assert record["logger"] == "churnops.test"
    assert PII["email"] not in record["message"] and PII["ipv4"] not in record["message"]
    assert record["message"] == f"contact {MASK} from {MASK}"


def test_extra_fields_are_scrubbed(captured: io.StringIO) -> None:
    logging.getLogger("churnops.test").info(
        "row rejected", extra={"customer": PII["customer"], "detail": {"phone": PII["phone_intl"]}, "rows": 3}
    )
    record = lines(captured)[-1]
    assert record["customer"] == MASK
    assert record["detail"] == {"phone": MASK}
    assert record["rows"] == 3
    assert PII["customer"] not in json.dumps(record)


def test_exception_text_is_scrubbed(captured: io.StringIO) -> None:
    try:
        raise ValueError(f"bad card {PII['card']} for {PII['email']}")
    except ValueError:
        logging.getLogger("churnops.test").exception("failed")
    output = captured.getvalue()
    assert "ValueError" in output
    assert PII["card"] not in output and PII["email"] not in output


def test_library_handlers_get_the_scrubber_and_the_json_format(tmp_path) -> None:
    stream = io.StringIO()
    library = logging.getLogger("some.library")
    library.propagate = False
    library.addHandler(logging.StreamHandler(stream))
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(Settings(state_dir=tmp_path), stream=io.StringIO())
        library.warning("peer %s", PII["ipv6"])
        assert PII["ipv6"] not in stream.getvalue()
        line = json.loads(stream.getvalue())
        assert line["message"] == f"peer {MASK}" and line["severity"] == "WARNING"
    finally:
        library.handlers.clear()
        library.propagate = True
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_mlflow_follows_the_configured_level(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow  # pylint: disable=import-outside-toplevel  # configures its own logger on import
    from mlflow.environment_variables import (  # pylint: disable=import-outside-toplevel
        MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT,
    )

    assert mlflow.get_tracking_uri() is not None
    mlflow_logger = logging.getLogger("mlflow")
    for name in ("MLFLOW_LOGGING_LEVEL", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        monkeypatch.setenv(name, "")  # restored after the test
    monkeypatch.setattr(mlflow_logger, "level", mlflow_logger.level)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(Settings(state_dir=tmp_path, log_level="WARNING"), stream=io.StringIO())
        logging.getLogger("mlflow.tracking.fluent").info("Experiment with name 'x' does not exist")
        assert "Experiment" not in capsys.readouterr().err
        assert MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.get(), "no 'View run' links at WARNING"
        setup_logging(Settings(state_dir=tmp_path, log_level="INFO"), stream=io.StringIO())
        logging.getLogger("mlflow.tracking.fluent").info("Experiment with name 'y' does not exist")
        assert "Experiment with name 'y'" in capsys.readouterr().err
        assert not MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.get()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
