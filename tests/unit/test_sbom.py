"""`make sbom` lists every locked package, with its version, in a CycloneDX document (trivy, offline)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1].parent


def test_the_sbom_lists_every_locked_package(tmp_path: Path) -> None:
    subprocess.run(
        ["make", "-s", "sbom", f"SBOM_DIR={tmp_path}"], cwd=ROOT, check=True, capture_output=True, timeout=120
    )
    document = json.loads((tmp_path / "requirements.cdx.json").read_text(encoding="utf-8"))
    assert document["bomFormat"] == "CycloneDX"
    listed = {c["purl"] for c in document["components"] if c.get("purl", "").startswith("pkg:pypi/")}
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    locked = {
        f"pkg:pypi/{name.lower().replace('_', '-')}@{version}"
        for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==([^ \\\n]+)", lock, flags=re.M)
    }
    assert len(locked) > 100 and listed == locked
