"""Failure classes of a pipeline step, and where each is retried.

A step fails for one of three reasons, and each is handled in one place:

- **transient**: a service that did not answer or answered 429/5xx (the lake, MLflow, GCS, Secret
  Manager), a timeout. Retried inside the step with exponential backoff (:func:`run_step`, google-api-core's
  :class:`~google.api_core.retry.Retry`) for up to ``step_retry_seconds``; still failing then, the step fails
  and the pipeline's own retry (a new pod) takes over.
- **refusal**: the data or the request is wrong (a data-contract error, too little data, an hour that cannot
  be known or parsed, a missing model, a merge conflict): the same input fails the same way, so it is never
  retried. Every step ends normally with the refusal as its ``refused`` output (its output artifacts left empty,
  :func:`leave_empty`), and the gate task after it (which has no retry) fails the run with it.
- **anything else** (a bug, a lost pod): the step fails as it is, and the pipeline retries it.

The KFP 2.17.0 backend cannot tell these apart: it compiles a task's retry policy into an Argo
``retryStrategy`` with a limit and a backoff but no ``retryPolicy`` or ``expression``
(``backend/src/v2/compiler/argocompiler/container.go``), so Argo v4.0.5 applies its default,
``OnFailure``: every failed main container is retried whatever its exit code, including a pod
preempted with a message (``workflow/controller/operator.go``). Hence the split above: a refusal never
fails the step's own task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import requests
import urllib3
from google.api_core import exceptions as google_exceptions
from google.api_core.retry import Retry

from churnops.errors import ChurnopsError, ServiceUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT: tuple[type[BaseException], ...] = (
    ServiceUnavailable,  # what every client boundary maps an unreachable lake, registry, bucket or secret store to
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.RetryError,  # MLflow's REST client after its own retries of 429/5xx
    urllib3.exceptions.HTTPError,  # lakefs-sdk's transport
    google_exceptions.TooManyRequests,
    google_exceptions.ServerError,  # 5xx: InternalServerError, BadGateway, ServiceUnavailable, GatewayTimeout
    google_exceptions.DeadlineExceeded,
    google_exceptions.RetryError,
    TimeoutError,
    ConnectionError,
)
"""Exceptions (anywhere in the chain of causes) that make a failure transient."""


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or during, innermost last."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        yield seen
        seen = seen.__cause__ or seen.__context__


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure to reach a service (retry it), judged by its type and its causes."""
    return any(isinstance(cause, TRANSIENT) for cause in chain(exc))


def is_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` says the input is wrong (a domain error or a ``ValueError``) and is not transient."""
    return isinstance(exc, (ChurnopsError, ValueError)) and not is_transient(exc)


@dataclass(frozen=True)
class StepOutcome(Generic[T]):
    """What a step returned, or why it refused (``refused`` is then ``"<error class>: <message>"``)."""

    value: T | None = None
    refused: str = ""


def run_step(step: str, func: Callable[[], T], retry_seconds: float, initial_backoff: float = 1.0) -> StepOutcome[T]:
    """Run ``func`` (the body of pipeline step ``step``), retrying transient failures for up to ``retry_seconds``.

    A refusal (:func:`is_refusal`) is returned, not raised, and never retried. A transient failure that outlasts
    the retries, and any other exception, is raised (the task fails; the pipeline retries it). ``func`` must be
    idempotent: it may run several times.
    """

    def on_error(exc: Exception) -> None:
        logger.warning("%s: transient failure, retrying: %s: %s", step, type(exc).__name__, exc)

    retrying = Retry(
        predicate=is_transient,
        initial=initial_backoff,
        maximum=max(initial_backoff, 60.0),
        multiplier=2.0,
        timeout=retry_seconds,
        on_error=on_error,
    )
    try:
        return StepOutcome(value=retrying(func)())
    except (ChurnopsError, ValueError) as exc:
        if not is_refusal(exc):
            raise
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        logger.error("%s refused (not retried): %s", step, reason)
        return StepOutcome(refused=reason)


def leave_empty(*paths: str) -> None:
    """Create each output artifact file ``paths`` names, empty, where the step did not write it: a step that refused
    ends normally, and the backend uploads every output artifact of a task that ended normally (never read: the
    gate after the step fails the run)."""
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()


class StepRefused(ChurnopsError):
    """A pipeline step refused its input (raised by the pipeline's gate task, which is never retried)."""


def check_refusal(step: str, refused: str) -> None:
    """Raise :class:`StepRefused` naming ``step`` when it refused (``refused`` non-empty)."""
    if refused:
        raise StepRefused(f"{step} refused: {refused}")
