"""What several ``churnops`` commands share: the ``--model ALIAS|VERSION`` option and the exit status of a finding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

FINDING_EXIT = 3
"""A check ran and found what its caller must act on: drift fired (``drift check``), the model degraded
(``model performance``), a reproduction differs (``reproduce``), a canary held for too little traffic
(``canary analyze``). A result, not an error: errors exit 2 (docs/errors.md)."""

CommandFunction = TypeVar("CommandFunction", bound=Callable[..., Any])


def model_option(help_text: str) -> Callable[[CommandFunction], CommandFunction]:
    """``--model ALIAS|VERSION`` (default ``production``), passed to the command as ``model_ref``."""
    return click.option(
        "--model",
        "model_ref",
        default="production",
        show_default=True,
        metavar="ALIAS|VERSION",
        help=help_text,
    )
