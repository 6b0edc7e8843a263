"""gRPC statuses for refused requests repeat nothing the client sent (kserve's own mapping would)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from grpc import StatusCode
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady

from serving.protocol import BadRequest
from serving.server import NOT_IMPLEMENTED, NOT_READY, NOT_SERVED, NOT_V2, ClientSafeStatusInterceptor

CUSTOMER = "CUST-0042917"


class Aborted(Exception):
    """What ``context.abort`` raises in grpc.aio."""


class Context:
    """The part of a grpc.aio ServicerContext the interceptor uses."""

    def __init__(self) -> None:
        self.status: tuple[StatusCode, str] | None = None

    async def abort(self, code: StatusCode, details: str) -> None:
        """Record the status, then end the call as grpc.aio does."""
        self.status = (code, details)
        raise Aborted


def status_for(error: Exception) -> tuple[StatusCode, str]:
    """The status the interceptor sends for ``error`` raised while handling a request."""
    context = Context()
    with pytest.raises(Aborted):
        asyncio.run(ClientSafeStatusInterceptor().handle_exception(error, None, context, "/inference/ModelInfer"))
    assert context.status is not None
    return context.status


def refused(message: str) -> InvalidInput:
    """The predictor's refusal: kserve's InvalidInput caused by the project's BadRequest."""
    try:
        try:
            raise BadRequest(message)
        except BadRequest as exc:
            raise InvalidInput(str(exc)) from exc
    except InvalidInput as error:
        return error


def test_kserve_errors_that_repeat_the_request_get_fixed_messages(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        assert status_for(ModelNotFound(CUSTOMER)) == (StatusCode.NOT_FOUND, NOT_SERVED)
        assert status_for(InvalidInput(f"invalid datatype {CUSTOMER} in the input")) == (
            StatusCode.INVALID_ARGUMENT,
            NOT_V2,
        )
    assert CUSTOMER not in caplog.text


def test_the_projects_own_refusal_is_passed_on() -> None:
    message = "input 'tenure_h': the value at position 0 is text, not a number (or null)"
    assert status_for(refused(message)) == (StatusCode.INVALID_ARGUMENT, message)


def test_a_scoring_failure_is_internal_with_a_fixed_message_and_only_its_type_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        code, details = status_for(ValueError(f"Found unknown categories ['{CUSTOMER}'] during transform"))
    assert code == StatusCode.INTERNAL and CUSTOMER not in details and "failed to score" in details
    assert "inference failed: ValueError" in caplog.text and CUSTOMER not in caplog.text


def test_not_ready_is_unavailable_without_the_name_asked_for() -> None:
    assert status_for(ModelNotReady(CUSTOMER)) == (StatusCode.UNAVAILABLE, NOT_READY)


def test_not_implemented_is_unimplemented() -> None:  # kserve's own handler fails on it (no ``reason``)
    assert status_for(NotImplementedError(CUSTOMER)) == (StatusCode.UNIMPLEMENTED, NOT_IMPLEMENTED)
