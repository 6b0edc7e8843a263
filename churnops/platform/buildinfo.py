"""Which code and which pinned environment a process runs: recorded on lake commits and MLflow runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pygit2

from churnops.platform.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = PROJECT_ROOT / "requirements.lock"


def git_sha(settings: Settings) -> str:
    """HEAD of the source checkout this code runs from, else ``settings.code_version`` (set in images)."""
    try:
        found = pygit2.discover_repository(str(PROJECT_ROOT))
        if found:
            return str(pygit2.Repository(found).head.target)
    except pygit2.GitError:
        pass
    return settings.code_version


def lock_sha256(path: Path = LOCK_FILE) -> str:
    """sha256 of ``requirements.lock`` ("missing" when the file is not shipped)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"
