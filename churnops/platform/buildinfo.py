"""Which code, which pinned environment and which image a process runs: recorded on lake commits and MLflow runs.

The code version comes from, first match wins:

1. the revision baked into a container image at build time (``CHURNOPS_CODE_VERSION`` or
   ``CHURNOPS_GIT_SHA``; ``CHURNOPS_GIT_DIRTY=true`` when the build context had uncommitted changes);
2. the git checkout this code runs from: ``HEAD`` plus a dirty flag when tracked files differ from it;
3. ``unknown``.

A dirty checkout's version names the changes too: ``<sha>-dirty.<first 12 hex of sha256 of the
diff against HEAD>``, so two runs on the same uncommitted edits share a version and two runs on
different edits do not. Untracked files are not part of the diff.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pygit2

from churnops.platform.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = PROJECT_ROOT / "requirements.lock"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class CodeVersion:
    """A code revision, whether the tree it ran from had uncommitted changes, and where that was read."""

    sha: str
    dirty: bool = False
    diff_sha256: str | None = None
    source: str = "git"  # "image", "git" or "unknown"

    def __str__(self) -> str:
        if not self.dirty:
            return self.sha
        return f"{self.sha}-dirty" + (f".{self.diff_sha256[:12]}" if self.diff_sha256 else "")


@lru_cache(maxsize=8)
def _checkout_version(root: Path) -> CodeVersion | None:
    """HEAD of the checkout holding ``root`` and its dirty state, or None outside a checkout."""
    try:
        found = pygit2.discover_repository(str(root))
        if not found:
            return None
        repo = pygit2.Repository(found)
        sha = str(repo.head.target)
        if repo.is_bare:
            return CodeVersion(sha=sha, source="git")
        patch = repo.diff("HEAD").patch or ""
    except pygit2.GitError:
        return None
    if not patch:
        return CodeVersion(sha=sha, source="git")
    return CodeVersion(sha=sha, dirty=True, diff_sha256=hashlib.sha256(patch.encode()).hexdigest(), source="git")


def code_version(settings: Settings, root: Path = PROJECT_ROOT) -> CodeVersion:
    """The version of the running code (see the module docstring for the order of sources)."""
    if settings.code_version:
        return CodeVersion(sha=settings.code_version, dirty=settings.code_dirty, source="image")
    found = _checkout_version(root)
    return found if found is not None else CodeVersion(sha=UNKNOWN, source=UNKNOWN)


def refresh() -> None:
    """Forget the cached checkout state (the diff is computed once per process otherwise)."""
    _checkout_version.cache_clear()


def git_sha(settings: Settings) -> str:
    """The code version as one string: ``<sha>``, ``<sha>-dirty.<diff hash>`` or ``unknown``."""
    return str(code_version(settings))


def lock_sha256(path: Path = LOCK_FILE) -> str:
    """sha256 of ``requirements.lock`` ("missing" when the file is not shipped)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"
