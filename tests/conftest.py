"""Fixtures shared by every test."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from churnops.platform.settings import Settings, get_settings

MLFLOW_LOGGING_VARIABLES = ("MLFLOW_LOGGING_LEVEL", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT")


TESTS = Path(__file__).resolve().parent


def pytest_itemcollected(item: pytest.Item) -> None:
    """Each test's ``xdist_group`` for ``make test`` (``--dist loadgroup``): an integration test runs with its
    folder (the folder's session fixtures, a trained model or a model server, are built once), any other
    test with its file. Set as each test is collected, before xdist reads the groups."""
    parts = item.path.resolve().relative_to(TESTS).parts
    group = "/".join(parts[:2]) if parts[0] == "integration" and len(parts) > 2 else "/".join(parts)
    # A module whose tests share one module-scoped world per backend names that fixture: each world is its own
    # group, so the worlds are built on both workers at once.
    by_param = getattr(getattr(item, "module", None), "XDIST_GROUP_BY_PARAM", None)
    callspec = getattr(item, "callspec", None)
    if by_param and callspec is not None and by_param in callspec.params:
        group += f"[{callspec.params[by_param]}]"
    item.add_marker(pytest.mark.xdist_group(group))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(name="settings")
def fixture_settings(tmp_path: Path) -> Iterator[Settings]:
    """Local-profile settings whose state lives in a fresh temporary folder (no services)."""
    yield Settings(state_dir=tmp_path / "state", gcs_port=free_port(), mlflow_port=free_port())


@pytest.fixture(autouse=True)
def _settings_read_afresh() -> Iterator[None]:
    """Each test reads the process-wide settings from its own environment: ``get_settings`` caches the first
    read, and which test ran before it in this process must not decide what a test sees."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _ours(handler: logging.Handler) -> bool:
    """Whether a root handler is the process's own (pytest's capture handlers come and go with each phase)."""
    return not type(handler).__module__.startswith("_pytest")


@pytest.fixture(autouse=True)
def _logging_as_before() -> Iterator[None]:
    """Each test leaves logging as it found it: ``setup_logging`` (which the CLI, servers and some
    tests call) sets the process's root handler and level, MLflow's level and two environment
    variables, and a later test's output must not depend on which test ran before it."""
    root, mlflow_logger = logging.getLogger(), logging.getLogger("mlflow")
    handlers = [handler for handler in root.handlers if _ours(handler)]
    levels = (root.level, mlflow_logger.level)
    variables = {name: os.environ.get(name) for name in MLFLOW_LOGGING_VARIABLES}
    yield
    for handler in [handler for handler in root.handlers if _ours(handler)]:
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(levels[0])
    mlflow_logger.setLevel(levels[1])
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
