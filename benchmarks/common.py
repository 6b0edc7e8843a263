"""What the benchmark scripts share: the machine's load, a free local port, and a process's own peak memory."""

from __future__ import annotations

import os
import socket
from pathlib import Path


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
