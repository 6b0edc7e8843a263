"""What a lock installs: its package count and the size of those packages installed.

The images install ``requirements.runtime.lock`` into a virtual environment; where no Docker engine is
at hand the environment's size is measured from the packages already installed here (``.venv`` holds
``requirements.lock``, a superset at the same versions): the sum of the files each installed
distribution's ``RECORD`` lists, for every package the lock pins. A package of the lock that is not
installed here at its pinned version is reported, not guessed.

``python -m churnops.platform.lockreport LOCK...`` prints one line per lock (``make lock-report``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ \\\n]+)", flags=re.M)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class LockSize:
    """A lock's package count, the installed size of those found here, and those not found at their pin."""

    lock: str
    packages: int
    installed_bytes: int
    missing: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        line = f"{self.lock:<28} {self.packages} packages, {self.installed_bytes / 2**20:,.0f} MiB installed"
        return line + (
            f" (not installed here at the pinned version: {', '.join(self.missing)})" if self.missing else ""
        )


def pins(lock: Path) -> dict[str, str]:
    """Package name (normalised) -> pinned version."""
    return {_normal(name): version for name, version in PIN.findall(lock.read_text(encoding="utf-8"))}


def installed_size(lock: Path) -> LockSize:
    """The size of ``lock``'s packages as installed in this environment (from each distribution's RECORD)."""
    pinned = pins(lock)
    total, missing = 0, []
    for name, version in sorted(pinned.items()):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if dist.version != version:
            missing.append(f"{name}=={version}")
            continue
        for path in dist.files or ():
            located = Path(str(dist.locate_file(path)))
            if located.is_file():
                total += located.stat().st_size
    return LockSize(lock.name, len(pinned), total, tuple(missing))


def main(argv: list[str]) -> int:
    """Print one line per lock named in ``argv``."""
    for lock in argv:
        print(installed_size(Path(lock)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
