"""The attestation build (cloudbuild.attest.yaml) and how the CI build asks for it and waits.

The attestor signs; the CI build, which runs third-party code, cannot. These tests run the steps' own
shell scripts (as Cloud Build substitutes them) against a stand-in ``gcloud`` that keeps Pub/Sub
messages and Cloud Storage objects in a folder: the CI build's message is what the attestation build
checks, its record is what the CI build waits for, a refusal stops the CI build, and the message's
values can never become shell commands in the attestor's build.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from churnops.platform import declaration as platform

ROOT = Path(__file__).resolve().parents[2]
PROJECT, REGION, COMMIT = "acme-churn", "europe-west1", "0123456789abcdef0123456789abcdef01234567"
BUILD_ID = "5a1f0c3e-2b7d-4e9a-8c61-0f3d2e4b6a80"
REGISTRY = f"{REGION}-docker.pkg.dev/{PROJECT}/{platform.REGISTRY_REPOSITORY}"
DIGESTS = {"churnops-components": "a" * 64, "churnops-serving": "b" * 64}
_SUBSTITUTION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")

# gcloud, for the commands these steps run: topics publish, storage cat and cp (to and from "-").
FAKE_GCLOUD = """#!{python}
import json, os, pathlib, shutil, sys

root = pathlib.Path(os.environ["FAKE_CLOUD"])
args = sys.argv[1:]


def local(uri):
    assert uri.startswith("gs://"), uri
    return root / "gcs" / uri.removeprefix("gs://")


if args[:3] == ["pubsub", "topics", "publish"]:
    message = next(a.split("=", 1)[1] for a in args if a.startswith("--message="))
    (root / "published").write_text(json.dumps({{"topic": args[3], "message": message}}))
elif args[:2] == ["storage", "cat"]:
    path = local(args[2])
    if not path.is_file():
        sys.exit(f"ERROR: (gcloud.storage.cat) The following URLs matched no objects or files: {{args[2]}}")
    sys.stdout.write(path.read_text())
elif args[:2] == ["storage", "cp"]:
    *sources, destination = [a for a in args[2:] if not a.startswith("--")]
    for source in sources:
        target = local(destination)
        if destination.endswith("/"):
            target = target / pathlib.Path(source).name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source == "-":
            target.write_text(sys.stdin.read())
        else:
            shutil.copyfile(source, target)
else:
    sys.exit(f"unexpected gcloud {{args}}")
"""


def load(name: str) -> dict[str, Any]:
    """A build config, parsed."""
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def substitutions(name: str, **values: str) -> dict[str, str]:
    """The values Cloud Build substitutes in ``name``: built-ins, the config's defaults, then ``values``."""
    resolved = {
        "PROJECT_ID": PROJECT,
        "COMMIT_SHA": COMMIT,
        "BUILD_ID": BUILD_ID,
        **load(name)["substitutions"],
        **values,
    }
    for _ in range(3):  # dynamic substitutions refer to other substitutions
        resolved = {key: substitute(str(value), resolved) for key, value in resolved.items()}
    return resolved


def substitute(text: str, values: dict[str, str]) -> str:
    """``text`` as Cloud Build hands it to the step: substitutions put in, then ``$$`` as ``$``."""
    return _SUBSTITUTION.sub(lambda m: str(values.get(m.group(1) or m.group(2), m.group(0))), text).replace("$$", "$")


def step(name: str, step_id: str) -> dict[str, Any]:
    """One step of a config."""
    (found,) = [s for s in load(name)["steps"] if s["id"] == step_id]
    return found


class Cloud:
    """A working directory (the build's /workspace) and the folder the stand-in gcloud keeps state in."""

    def __init__(self, tmp_path: Path) -> None:
        self.workspace = tmp_path / "workspace"
        self.workspace.mkdir(parents=True)
        (self.workspace / ".trivyignore").write_text("")  # the checkout's waivers: none here
        self.state = tmp_path / "cloud"
        self.state.mkdir(parents=True)
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(parents=True)
        gcloud = bin_dir / "gcloud"
        gcloud.write_text(FAKE_GCLOUD.format(python=sys.executable))
        gcloud.chmod(0o755)
        python3 = bin_dir / "python3"  # the SDK image's python3, with the checkout on its path
        python3.symlink_to(sys.executable)
        self.env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_CLOUD": str(self.state),
            "PYTHONPATH": str(ROOT),
            "HOME": str(tmp_path),
        }

    def run(self, name: str, step_id: str, **values: str) -> subprocess.CompletedProcess[str]:
        """Run one bash step of ``name`` as Cloud Build would, with its ``env`` entries substituted."""
        found = step(name, step_id)
        assert found["entrypoint"] == "bash" and found["args"][0] == "-ceu"
        resolved = substitutions(name, **values)
        env = dict(self.env)
        for entry in found.get("env", []):
            key, value = entry.split("=", 1)
            env[key] = substitute(value, resolved)
        # the CI build polls every 20 s, 90 times; here without the wait, 3 times
        script = substitute(found["args"][1], resolved).replace("sleep 20", "sleep 0").replace("seq 1 90", "seq 1 3")
        return subprocess.run(
            ["bash", "-ceu", script], cwd=self.workspace, env=env, capture_output=True, text=True, check=False
        )

    def object(self, uri: str) -> Path:
        """Where the stand-in keeps ``gs://...``."""
        return self.state / "gcs" / uri.removeprefix("gs://")


def pushed(cloud: Cloud) -> dict[str, str]:
    """What push-images leaves: build/digests/<image> with the pushed reference."""
    digests = cloud.workspace / "build" / "digests"
    digests.mkdir(parents=True)
    references = {name: f"{REGISTRY}/{name}@sha256:{digest}" for name, digest in DIGESTS.items()}
    for name, reference in references.items():
        (digests / name).write_text(reference + "\n")
    return references


def attest_values(message: dict[str, str]) -> dict[str, str]:
    """The attestation trigger's substitutions for ``message`` (Cloud Build's payload binding)."""
    return {"_REGION": REGION, **{key: message[field] for key, field in platform.ATTEST_MESSAGE_FIELDS.items()}}


def valid_message(request: str = BUILD_ID) -> dict[str, str]:
    """A message as the CI build of :data:`COMMIT` publishes it."""
    images = {name.removeprefix("churnops-"): f"{REGISTRY}/{name}@sha256:{d}" for name, d in DIGESTS.items()}
    return {"request": request, "commit": COMMIT, **images}


def test_the_ci_builds_message_is_what_the_attestation_build_accepts(tmp_path: Path) -> None:
    ci = Cloud(tmp_path / "ci")
    references = pushed(ci)
    done = ci.run(platform.BUILD_CI, "request-attestation")
    assert done.returncode == 0, done.stderr
    published = json.loads((ci.state / "published").read_text())
    assert published["topic"] == f"projects/{PROJECT}/topics/{platform.ATTEST_TOPIC}"
    message = json.loads(published["message"])
    assert set(message) == set(platform.ATTEST_MESSAGE_FIELDS.values())
    assert message == {
        "request": BUILD_ID,
        "commit": COMMIT,
        "components": references["churnops-components"],
        "serving": references["churnops-serving"],
    }

    attestor = Cloud(tmp_path / "attestor")
    done = attestor.run(platform.BUILD_ATTEST, "check-request", **attest_values(message))
    assert done.returncode == 0, done.stderr
    for name, reference in references.items():
        assert (attestor.workspace / "build" / "digests" / name).read_text() == reference + "\n"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("components", f"{REGISTRY}/churnops-components:latest"),  # a tag, not a digest
        ("components", f"{REGISTRY}/churnops-components@sha256:{'a' * 63}"),
        ("serving", f"docker.io/someone/churnops-serving@sha256:{'b' * 64}"),  # not the project's registry
        ("serving", f"{REGISTRY}/churnops-components@sha256:{'b' * 64}"),  # the other image
        ("serving", f"{REGISTRY}/churnops-serving@sha256:{'b' * 64}\nx"),
        ("commit", "main"),
        ("commit", ""),
        ("request", "../../other"),
        ("request", ""),
    ],
)
def test_the_attestation_build_refuses_anything_but_the_projects_images_by_digest(
    tmp_path: Path, field: str, value: str
) -> None:
    message = valid_message()
    attestor = Cloud(tmp_path)
    assert attestor.run(platform.BUILD_ATTEST, "check-request", **attest_values(message)).returncode == 0
    done = attestor.run(platform.BUILD_ATTEST, "check-request", **attest_values({**message, field: value}))
    assert done.returncode == 1 and "refused" in done.stderr


@pytest.mark.parametrize("field", sorted(platform.ATTEST_MESSAGE_FIELDS.values()))
def test_a_message_cannot_make_the_attestor_run_a_command(tmp_path: Path, field: str) -> None:
    """Whoever may publish on the topic (the CI build, which runs third-party code) controls the
    message: its values reach the attestor's steps as environment variables, never as shell text."""
    marker = tmp_path / "pwned"
    attestor = Cloud(tmp_path)
    for payload in (f"$(touch {marker})", f"`touch {marker}`", f'"; touch {marker}; echo "', f"'; touch {marker}; '"):
        message = {**valid_message(), field: payload}
        for step_id in ("check-request", "vulnerability-gate", "record"):
            attestor.run(platform.BUILD_ATTEST, step_id, **attest_values(message))
        assert not marker.exists(), payload
    for config_step in load(platform.BUILD_ATTEST)["steps"]:
        script = json.dumps(config_step.get("args", []))
        assert not [key for key in platform.ATTEST_MESSAGE_FIELDS if key in script], config_step["id"]


def test_the_ci_build_waits_for_the_attestors_record_and_stops_on_its_refusal(tmp_path: Path) -> None:
    ci = Cloud(tmp_path / "ci")
    pushed(ci)
    attestor = Cloud(tmp_path / "attestor")
    attestor.state = ci.state  # one project: the same bucket
    attestor.env["FAKE_CLOUD"] = str(ci.state)
    values = attest_values(valid_message())
    assert attestor.run(platform.BUILD_ATTEST, "check-request", **values).returncode == 0
    reports, sboms = attestor.workspace / "build" / "reports", attestor.workspace / "build" / "sbom"
    reports.mkdir()
    sboms.mkdir()
    for name in DIGESTS:
        (reports / f"{name}.json").write_text(json.dumps(trivy_report(critical=name == "churnops-serving")))
        (sboms / f"{name}.cdx.json").write_text("{}")

    record = f"gs://{PROJECT}-churnops-build/{platform.ATTESTATIONS_PREFIX}/{COMMIT}/{BUILD_ID}"
    gate = attestor.run(platform.BUILD_ATTEST, "vulnerability-gate", **values)
    assert gate.returncode == 1 and "CVE-2099-0001" in gate.stdout + gate.stderr
    assert attestor.object(f"{record}/refused").exists() and not attestor.object(f"{record}/attested").exists()
    waited = ci.run(platform.BUILD_CI, "await-attestation")
    assert waited.returncode == 1 and "refused these images" in waited.stderr

    # Another CI build of the commit (say, after a waiver was reviewed on main) asks again: it waits for
    # its own request's record, which the earlier refusal is not.
    again = "0b9e7d6c-5a4f-4e3d-9c2b-1a0f9e8d7c6b"
    values = attest_values(valid_message(again))
    (reports / "churnops-serving.json").write_text(json.dumps(trivy_report(critical=False)))
    waited = ci.run(platform.BUILD_CI, "await-attestation", BUILD_ID=again)
    assert waited.returncode == 1 and "no attestation after 30 minutes" in waited.stderr  # not yet signed
    assert attestor.run(platform.BUILD_ATTEST, "vulnerability-gate", **values).returncode == 0
    assert attestor.run(platform.BUILD_ATTEST, "record", **values).returncode == 0
    record = f"gs://{PROJECT}-churnops-build/{platform.ATTESTATIONS_PREFIX}/{COMMIT}/{again}"
    assert attestor.object(f"{record}/churnops-serving.cdx.json").exists()
    waited = ci.run(platform.BUILD_CI, "await-attestation", BUILD_ID=again)
    assert waited.returncode == 0, waited.stderr
    assert f"{REGISTRY}/churnops-serving@sha256:{DIGESTS['churnops-serving']}" in waited.stdout

    # A record of other digests under the request is not this build's attestation.
    attestor.object(f"{record}/attested").write_text(f"{REGISTRY}/churnops-components@sha256:{'c' * 64}\n")
    assert "seq 1 90" in (ROOT / platform.BUILD_CI).read_text(encoding="utf-8")  # 90 polls, 20 s apart
    waited = ci.run(platform.BUILD_CI, "await-attestation", BUILD_ID=again)
    assert waited.returncode == 1 and "no attestation after 30 minutes" in waited.stderr


def trivy_report(critical: bool) -> dict[str, Any]:
    """A Trivy JSON report of one scanned target, with one CRITICAL vulnerability or none."""
    vulnerabilities = (
        [
            {
                "VulnerabilityID": "CVE-2099-0001",
                "PkgName": "openssl",
                "InstalledVersion": "3.0.0",
                "FixedVersion": "3.0.1",
                "Severity": "CRITICAL",
            }
        ]
        if critical
        else []
    )
    return {
        "SchemaVersion": 2,
        "ArtifactName": "image.tar",
        "Results": [{"Target": "image.tar (debian 12.11)", "Class": "os-pkgs", "Vulnerabilities": vulnerabilities}],
    }


def test_the_attestation_build_runs_no_third_party_code() -> None:
    """No `make`, no package installer, no virtualenv: only gcloud, docker and trivy (the tools whose
    images it names) and the gate, whose module imports nothing outside the standard library."""
    config = load(platform.BUILD_ATTEST)
    values = config["substitutions"]
    assert {s["name"] for s in config["steps"]} == {"${_SDK_IMAGE}", "${_DOCKER_IMAGE}", "${_TRIVY_IMAGE}"}
    assert {values[key] for key in ("_SDK_IMAGE", "_DOCKER_IMAGE", "_TRIVY_IMAGE")} == {
        load(platform.BUILD_CI)["substitutions"][key] for key in ("_SDK_IMAGE", "_DOCKER_IMAGE", "_TRIVY_IMAGE")
    }
    scripts = "\n".join(arg for s in config["steps"] for arg in s["args"])
    for word in ("make ", "pip", "uv ", ".venv", "npm", "docker run", "docker build"):
        assert word not in scripts, word
    assert re.findall(r"python3? -m ([\w.]+)", scripts) == ["churnops.platform.vulngate"]
    for module in ("churnops/platform/vulngate.py", "churnops/errors.py"):
        tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {str(n.module) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
        outside = {m for m in imported if m.split(".")[0] not in sys.stdlib_module_names}
        assert outside <= {"churnops.errors"}, (module, outside)


def test_the_attestor_signs_each_digest_and_attaches_its_sbom_with_the_attestor_key() -> None:
    sign = " ".join(step(platform.BUILD_ATTEST, "attest")["args"])
    assert "sign-and-create" in sign and '--artifact-url="$$(cat build/digests/$$name)"' in sign
    assert "--attestor=${_ATTESTOR} --keyversion=${_ATTESTOR_KEY}" in sign
    sbom = " ".join(step(platform.BUILD_ATTEST, "attest-sbom")["args"])
    assert "--source=build/sbom/$$name.cdx.json" in sbom and '--uri="$$(cat build/digests/$$name)"' in sbom
    assert "--kms-key-version=${_ATTESTOR_KEY}" in sbom
    ids = [s["id"] for s in load(platform.BUILD_ATTEST)["steps"]]
    assert ids == [
        *(f"version-{image.tool}" for image in platform.BUILD_TOOLS[platform.BUILD_ATTEST]),  # each tool's version
        "check-request",
        "pull-images",
        "scan-images",
        "vulnerability-gate",
        "attest",
        "attest-sbom",
        "record",
    ]
    assert "--ignorefile /dev/null" in " ".join(step(platform.BUILD_ATTEST, "scan-images")["args"])
