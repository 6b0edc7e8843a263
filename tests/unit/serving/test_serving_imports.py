"""The model server loads nothing of training's fitting stack, the transformer nothing of training, and
the serving image holds no KFP code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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


def test_the_serving_image_copies_no_components_or_pipelines() -> None:
    copied = re.findall(
        r"^COPY\s+(?!--from)(\S+)", (ROOT / "serving" / "Dockerfile").read_text(encoding="utf-8"), flags=re.M
    )
    assert "churnops" in copied and "serving" in copied
    assert not {"components", "pipelines"} & set(copied)
