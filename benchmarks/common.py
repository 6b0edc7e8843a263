"""What the benchmark scripts share: the machine's load, a free local port, a process's own peak memory, and a
local fake-gcs-server with a raw bucket."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from churnops.local.localstack import LocalStack
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket, storage_client


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, as printed beside every figure."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_memory() -> int:
    """This process's peak resident memory in bytes (``VmHWM``, Linux).

    Not ``getrusage``'s ``ru_maxrss``: a process started by fork and exec (as multiprocessing's ``spawn``
    starts one) inherits the peak of the process that started it there, so a child would report at least
    its parent's size.
    """
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status: the peak memory figures need Linux")


@contextlib.contextmanager
def raw_bucket(state: Path, key: bytes) -> Iterator[Settings]:
    """Settings whose raw bucket (created) is in a local fake-gcs-server that runs until the block ends, with
    ``state`` as state directory and ``key`` as tokenization key."""
    settings = Settings(state_dir=state, gcs_port=free_port(), raw_bucket="bench-raw", tokenization_key=key.decode())
    stack = LocalStack(settings, only=("fake-gcs-server",))
    stack.up()
    try:
        ensure_bucket(storage_client(settings), settings.raw_bucket)
        yield settings
    finally:
        stack.down()
