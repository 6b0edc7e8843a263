"""Failure classes of a pipeline step: transient failures retried inside the step, refusals returned, never retried."""

from __future__ import annotations

import socket

import pytest
import requests
from google.api_core import exceptions as google_exceptions

from churnops.data.contract import AccountingError
from churnops.data.ingest import scheduled_hour
from churnops.data.versioning.base import LakeUnavailable, MergeConflict
from churnops.platform.retry import StepRefused, check_refusal, is_refusal, is_transient, run_step
from churnops.training.features import InsufficientData


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unreachable() -> None:
    """A real call to a service that is not there (a closed port on loopback)."""
    requests.get(f"http://127.0.0.1:{_closed_port()}/health", timeout=2)


def test_a_transient_failure_is_retried_inside_the_step_until_it_succeeds() -> None:
    calls: list[int] = []

    def step() -> str:
        calls.append(1)
        if len(calls) < 3:
            _unreachable()
        return "published"

    outcome = run_step("ingest", step, retry_seconds=30, initial_backoff=0.01)
    assert outcome.value == "published" and not outcome.refused
    assert len(calls) == 3


def test_a_transient_failure_that_outlasts_the_retries_fails_the_step() -> None:
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        _unreachable()

    with pytest.raises(Exception) as raised:
        run_step("ingest", step, retry_seconds=0.3, initial_backoff=0.01)
    assert is_transient(raised.value)  # the task fails, and the pipeline's retry runs it in a new pod
    assert len(calls) > 1


def test_a_refused_input_is_returned_not_raised_and_never_retried() -> None:
    calls: list[int] = []

    def step() -> object:
        calls.append(1)
        return scheduled_hour("not-an-hour", "", "")

    outcome = run_step("ingest", step, retry_seconds=30, initial_backoff=0.01)
    assert outcome.value is None
    assert outcome.refused.startswith("ValueError: ") and "not-an-hour" in outcome.refused
    assert len(calls) == 1
    with pytest.raises(StepRefused, match="^ingest refused: ValueError: "):  # what the gate after the step does
        check_refusal("ingest", outcome.refused)


def test_any_other_failure_is_raised_once_as_it_is() -> None:
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_step("score", step, retry_seconds=30, initial_backoff=0.01)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "error",
    [
        LakeUnavailable("lakeFS answered 503 4 time(s)"),
        google_exceptions.ServiceUnavailable("Secret Manager"),
        google_exceptions.TooManyRequests("quota"),
        google_exceptions.DeadlineExceeded("slow"),
        requests.Timeout("read timed out"),
        TimeoutError("timed out"),
    ],
)
def test_unavailable_services_and_timeouts_are_transient(error: Exception) -> None:
    assert is_transient(error) and not is_refusal(error)


def test_a_domain_error_caused_by_an_unreachable_service_is_transient() -> None:
    try:
        try:
            _unreachable()
        except requests.ConnectionError as exc:
            raise MergeConflict("could not merge") from exc
    except MergeConflict as wrapped:
        assert is_transient(wrapped) and not is_refusal(wrapped)


@pytest.mark.parametrize(
    "error",
    [
        InsufficientData("no customer has enough history"),
        AccountingError("row accounting does not balance"),
        MergeConflict("main moved"),
        ValueError("hour 2026 is not a time"),
    ],
)
def test_data_and_contract_errors_are_refusals(error: Exception) -> None:
    assert is_refusal(error) and not is_transient(error)
