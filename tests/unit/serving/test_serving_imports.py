"""The model server loads nothing of training's fitting stack, the transformer nothing of training, and
the serving image holds exactly the project packages serving imports: no training, CLI, local stack,
deployment, components or pipelines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import grimp

ROOT = Path(__file__).resolve().parents[3]
FITTING_STACK = ("churnops.training", "churnops.data", "matplotlib", "pandera", "pygit2", "components", "pipelines")
TRAINING = ("churnops.training", "matplotlib", "components", "pipelines")


def _loaded(modules: str, watched: tuple[str, ...]) -> str:
    """Which of ``watched`` a fresh interpreter has loaded after importing ``modules``."""
    probe = f"import sys; import {modules}; print(sorted(m for m in {watched!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_the_model_server_loads_no_training_code() -> None:
    assert _loaded("serving.__main__, serving.server, serving.predictor", FITTING_STACK) == "[]"


def test_importing_the_transformer_loads_no_training_code() -> None:
    assert _loaded("serving.transformer", TRAINING) == "[]"


SERVING_ENTRY_POINTS = ("serving.__main__", "serving.transformer")  # python -m serving / -m serving.transformer
FIRST_PARTY = ("churnops", "churnops_preprocessing", "components", "pipelines", "serving")
NOT_SERVING = ("churnops.training", "churnops.cli", "churnops.local", "churnops.deploy", "components", "pipelines")


def _imported_by_serving() -> set[str]:
    """Every project module the serving entry points import, directly or not (at module level or in a
    function), with the packages that hold them."""
    graph = grimp.build_graph(*FIRST_PARTY, include_external_packages=False)
    seen: set[str] = set()
    todo = list(SERVING_ENTRY_POINTS)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            parts = module.split(".")
            todo += [".".join(parts[:i]) for i in range(1, len(parts))]
            todo += graph.find_modules_directly_imported_by(module)
    return seen


def _build_stage(dockerfile: Path) -> list[str]:
    """The instructions of the first stage (where the wheel is built), continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    starts = [i for i, line in enumerate(instructions) if line.upper().startswith("FROM ")]
    return instructions[starts[0] : starts[1]]


def _shipped_modules(dockerfile: Path) -> set[str]:
    """The project modules the build stage copies from the build context, named by where they land
    (relative to its WORKDIR, where the wheel is built)."""
    shipped: set[str] = set()
    for line in _build_stage(dockerfile):
        words = line.split()
        if words[0].upper() != "COPY" or any(word.startswith("--") for word in words[1:]):
            continue
        *sources, target = words[1:]
        for source in sources:
            landed = (
                PurePosixPath(target) / PurePosixPath(source).name if target.endswith("/") else PurePosixPath(target)
            )
            files = [ROOT / source] if (ROOT / source).is_file() else sorted((ROOT / source).rglob("*.py"))
            for file in files:
                if file.suffix == ".py":
                    relative = (landed / file.relative_to(ROOT / source)) if file != ROOT / source else landed
                    parts = PurePosixPath(str(relative).removeprefix("./")).with_suffix("").parts
                    shipped.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return shipped


def test_the_serving_image_ships_every_module_serving_imports() -> None:
    missing = _imported_by_serving() - _shipped_modules(ROOT / "serving" / "Dockerfile")
    assert not missing, f"serving imports modules serving/Dockerfile does not copy: {sorted(missing)}"


def test_the_serving_image_ships_no_training_cli_local_stack_deployment_or_kfp_code() -> None:
    shipped = _shipped_modules(ROOT / "serving" / "Dockerfile")
    assert "serving.__main__" in shipped and "churnops.model.scoring" in shipped
    unwanted = sorted(m for m in shipped if any(m == p or m.startswith(p + ".") for p in NOT_SERVING))
    assert not unwanted, unwanted


def test_every_project_package_the_serving_image_ships_is_one_serving_imports() -> None:
    """Copied by package: each copied package (``churnops.data``, ``churnops.model``, ...) holds a module
    serving imports, so nothing is shipped for no reason."""
    imported = _imported_by_serving()
    shipped = _shipped_modules(ROOT / "serving" / "Dockerfile")
    packages = {".".join(m.split(".")[:2]) for m in shipped if m.startswith("churnops.")} | {
        m.split(".")[0] for m in shipped
    }
    unused = sorted(p for p in packages if not any(m == p or m.startswith(p + ".") for m in imported))
    assert unused == ["churnops_preprocessing"], unused  # loaded with the model (MLflow code_paths), not imported
