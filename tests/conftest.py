"""Fixtures shared by every test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from churnops.platform.settings import Settings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(name="settings")
def fixture_settings(tmp_path: Path) -> Iterator[Settings]:
    """Local-profile settings whose state lives in a fresh temporary folder (no services)."""
    yield Settings(state_dir=tmp_path / "state", gcs_port=free_port(), mlflow_port=free_port())
