"""The registered artifact loads where this repository cannot be imported, and scores the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from churnops.training.features import FEATURE_SPEC
from tests.integration.serving.conftest import REPO, Registered, feature_rows

# Runs in a fresh interpreter (-I: no PYTHONPATH, no user site, no script directory on sys.path).
# It removes this checkout from the import system (editable-install finders and path entries),
# proves that none of the repository's packages can be imported, then loads the model by its alias.
PROBE = """
import importlib.util, json, sys
repo = sys.argv[1]
editable = lambda hook: str(getattr(hook, "__module__", "")).startswith("__editable__")
sys.meta_path[:] = [f for f in sys.meta_path if not editable(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if not editable(h)]
sys.path[:] = [p for p in sys.path if p and p.rstrip("/") != repo]
sys.path_importer_cache.clear()
for name in ("churnops", "churnops_preprocessing", "serving", "components", "pipelines"):
    assert importlib.util.find_spec(name) is None, f"{name} is importable"
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[2]); mlflow.set_registry_uri(sys.argv[2])
rows = pd.read_json(sys.stdin, orient="split")
model = mlflow.pyfunc.load_model(sys.argv[3])
proba = model.predict(rows)
print(json.dumps({"proba": [list(map(float, r)) for r in proba],
                  "preprocessing": sys.modules["churnops_preprocessing"].__file__}))
"""


def test_registered_model_loads_without_this_repository(registered: Registered, tmp_path: Path) -> None:
    rows = feature_rows(20, seed=5)
    rows.loc[0, "plan"] = "unseen-plan"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(REPO), registered.tracking_uri, registered.uri],
        input=rows.to_json(orient="split"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert not result["preprocessing"].startswith(str(REPO))  # it came with the model
    expected = registered.pipeline.predict_proba(rows[FEATURE_SPEC.columns])
    np.testing.assert_allclose(np.asarray(result["proba"]), expected, rtol=0, atol=1e-9)
