"""The Cloud Build configs, read as Cloud Build reads them, plus the rules the API cannot check.

Each config parses strictly (unknown fields are errors) into the ``Build`` message of the real Cloud
Build client library; then: the dedicated service account, secrets only through availableSecrets,
every substitution declared and used, the offline steps in the order of ``make ci``, images
scanned and gated before the push and referenced by digest after it, and every tool image a step runs
pinned by digest, its tool's version checked before any step uses it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud.devtools import cloudbuild_v1

from churnops.model.registry import Actor, resolve_actor
from churnops.platform import cluster_proxy, mlflow_users
from churnops.platform import declaration as platform
from churnops.platform.settings import Settings
from tests.support import image_reference

ROOT = Path(__file__).resolve().parents[2]
# The deployer's builds (they reach the cluster), and the attestor's (it signs; tests/unit/test_attest_build.py).
DEPLOYER_CONFIGS = ["cloudbuild.yaml", "cloudbuild.training.yaml", "cloudbuild.production.yaml"]
CONFIGS = [*DEPLOYER_CONFIGS, platform.BUILD_ATTEST]
SERVICE_ACCOUNT = "projects/$PROJECT_ID/serviceAccounts/churnops-deployer@$PROJECT_ID.iam.gserviceaccount.com"
BUILT_IN = {"PROJECT_ID", "COMMIT_SHA", "SHORT_SHA", "BUILD_ID", "BRANCH_NAME", "REPO_NAME", "LOCATION"}
# $VAR or ${VAR}, not the $$ escape that hands a literal $ to the shell.
_SUBSTITUTION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
# Make targets of cloudbuild.yaml that other parts of the project provide and that do not exist yet:
# Cloud Build runs them, `make ci` cannot until they do (docs/cicd.md says which).
PENDING_TARGETS: set[str] = set()
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|WEBHOOK", re.I)


def load(name: str) -> tuple[str, dict[str, Any]]:
    """The text of a config and its parsed YAML."""
    text = (ROOT / name).read_text(encoding="utf-8")
    return text, yaml.safe_load(text)


def defined_targets() -> set[str]:
    """Targets the Makefile defines."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, flags=re.M))


def make_targets(recipe_of: str) -> list[str]:
    """The ``$(MAKE) X`` lines of one Makefile target's recipe, in order."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{recipe_of}:"))
    targets = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        if match := re.match(r"\t\$\(MAKE\) ([\w-]+)", line):
            targets.append(match.group(1))
    return targets


@pytest.mark.parametrize("name", CONFIGS)
def test_each_config_is_a_valid_cloud_build_resource(name: str) -> None:
    _, config = load(name)
    build = cloudbuild_v1.Build.from_json(json.dumps(config), ignore_unknown_fields=False)
    steps = list(build.steps)
    assert steps and all(step.name and step.id for step in steps)
    with pytest.raises(Exception, match="stepz"):  # the strict parse really rejects unknown fields
        cloudbuild_v1.Build.from_json(json.dumps({**config, "stepz": []}), ignore_unknown_fields=False)


@pytest.mark.parametrize("name", CONFIGS)
def test_runs_as_the_dedicated_service_account_in_the_private_pool(name: str) -> None:
    _, config = load(name)
    assert config["serviceAccount"] == (
        SERVICE_ACCOUNT if name in DEPLOYER_CONFIGS else platform.build_service_account(name)
    )
    assert config["options"]["logging"] == "CLOUD_LOGGING_ONLY"
    assert config["options"]["pool"]["name"].endswith("/workerPools/churnops")


@pytest.mark.parametrize("name", CONFIGS)
def test_secrets_come_only_from_secret_manager(name: str) -> None:
    text, config = load(name)
    assert "secrets" not in config  # no KMS-encrypted values in the file
    available = config.get("availableSecrets", {}).get("secretManager", [])
    declared = {s["env"] for s in available}
    used = {env for step in config["steps"] for env in step.get("secretEnv", [])}
    assert used == declared
    for secret in available:
        assert re.fullmatch(r"projects/\$PROJECT_ID/secrets/[\w-]+/versions/latest", secret["versionName"])
    plain = [*config["options"].get("env", []), *(e for step in config["steps"] for e in step.get("env", []))]
    assert not [e for e in plain if _SECRET_NAME.search(e.split("=", 1)[0])], "a secret passed as plain env"
    assert not [v for v in config.get("substitutions", {}).values() if _SECRET_NAME.search(v)]
    assert "secretmanager" not in text.split("\nsteps:", 1)[1]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_substitution_is_declared_and_every_declared_one_used(name: str) -> None:
    text, config = load(name)
    declared = set(config.get("substitutions", {}))
    head, block = text.split("\nsubstitutions:", 1)
    after = re.search(r"\n(?=[A-Za-z])", block)  # the next top-level key ends the substitutions block
    assert after is not None
    body = head + block[after.end() :]
    referenced = {a or b for a, b in _SUBSTITUTION.findall(text)}
    assert {r for r in referenced if r.startswith("_")} <= declared
    assert {r for r in referenced if not r.startswith("_")} <= BUILT_IN
    in_body = {a or b for a, b in _SUBSTITUTION.findall(body)}
    in_values = {a or b for v in config["substitutions"].values() for a, b in _SUBSTITUTION.findall(v)}
    assert declared <= in_body | in_values  # MUST_MATCH fails a build on an unused substitution


@pytest.mark.parametrize("name", CONFIGS)
def test_step_ids_are_unique(name: str) -> None:
    _, config = load(name)
    ids = [step["id"] for step in config["steps"]]
    assert len(ids) == len(set(ids))
    for step in config["steps"]:
        assert set(step.get("waitFor", [])) <= set(ids) | {"-"}


def test_the_offline_steps_are_make_ci_in_the_same_order() -> None:
    _, config = load("cloudbuild.yaml")
    make_steps = [step["args"][1] for step in config["steps"] if step.get("args", [None])[0] == "make"]
    assert make_steps[0] == "setup"
    defined = defined_targets()
    assert set(make_steps) - defined == PENDING_TARGETS - defined
    assert [target for target in make_steps[1:] if target in defined] == make_targets("ci")


def test_images_are_gated_before_the_push_and_named_by_digest_after_it() -> None:
    _, config = load("cloudbuild.yaml")
    ids = [step["id"] for step in config["steps"]]
    order = [
        ids.index(i)
        for i in (
            "test",
            "build-images",
            "scan-images",
            "vulnerability-gate",
            "push-images",
            "request-attestation",
            "await-attestation",
            "deploy-staging",
            "badge-passing",
        )
    ]
    started = [i for i in ids if not i.startswith("version-")]  # after the tools' version checks
    assert order == sorted(order) and ids[-1] == "badge-passing" and started[0] == "badge-pending"
    gate = config["steps"][ids.index("vulnerability-gate")]
    assert gate["args"][:3] == ["python", "-m", "churnops.platform.vulngate"] and ".trivyignore" in gate["args"]
    scan = "\n".join(config["steps"][ids.index("scan-images")]["args"])
    assert "--ignorefile /dev/null" in scan and "--format cyclonedx" in scan  # the gate alone applies waivers
    for step in config["steps"][ids.index("push-images") + 1 :]:
        script = "\n".join(step.get("args", []))
        assert ":$COMMIT_SHA" not in script  # no image by tag
        if "churnops-serving" in script or "churnops-components" in script:
            assert "build/digests/" in script
    assert "build/digests/*" in config["artifacts"]["objects"]["paths"]


def test_the_build_that_runs_the_tests_signs_nothing() -> None:
    """Signing is the attestation build's (cloudbuild.attest.yaml, as churnops-attestor): the CI build
    names no key, no attestor and no signing command."""
    text, config = load("cloudbuild.yaml")
    for word in ("sign-and-create", "--keyversion", "--kms-key-version", "cryptoKeyVersions", "_ATTESTOR"):
        assert word not in text, word
    assert config["substitutions"]["_ATTEST_TOPIC"] == f"projects/${{PROJECT_ID}}/topics/{platform.ATTEST_TOPIC}"


def test_the_images_revision_label_is_the_built_commit() -> None:
    """Every build argument the build passes is declared in the final stage of the Dockerfile it builds,
    and the OCI revision label reads it: the build passes the commit."""
    _, config = load("cloudbuild.yaml")
    script = "\n".join(config["steps"][[s["id"] for s in config["steps"]].index("build-images")]["args"])
    passed = dict(re.findall(r"--build-arg ([A-Z_]+)=(\S+)", script))
    assert passed == {"CODE_VERSION": "$COMMIT_SHA"}
    for dockerfile in ("serving/Dockerfile", "components/Dockerfile"):
        final = (ROOT / dockerfile).read_text(encoding="utf-8").rsplit("\nFROM ", 1)[1]
        declared = set(re.findall(r"^ARG ([A-Z_]+)", final, re.M))
        assert set(passed) <= declared, dockerfile
        assert 'org.opencontainers.image.revision="${CODE_VERSION}"' in final, dockerfile


@pytest.mark.parametrize("name", ["cloudbuild.training.yaml", "cloudbuild.production.yaml"])
def test_later_configs_use_the_digest_the_main_build_recorded(name: str) -> None:
    text, _ = load(name)
    assert "gs://${_ARTIFACT_BUCKET}/builds/$COMMIT_SHA/churnops-" in text
    assert "$$(cat build/digests/churnops-" in text and ":$COMMIT_SHA" not in text


def infra_bucket_purposes() -> tuple[str, ...]:
    """The buckets the Pulumi program creates: the platform declaration's, which it reads."""
    return platform.BUCKET_PURPOSES


@pytest.mark.parametrize("name", CONFIGS)
def test_builds_write_to_the_buckets_the_infrastructure_grants_them(name: str) -> None:
    _, config = load(name)
    buckets = {key: value for key, value in config["substitutions"].items() if key.endswith("_BUCKET")}
    expected = {"_ARTIFACT_BUCKET": "${PROJECT_ID}-churnops-build", "_BADGE_BUCKET": "${PROJECT_ID}-churnops-badges"}
    assert buckets and all(expected[key] == value for key, value in buckets.items())
    assert {"build", "badges"} <= set(infra_bucket_purposes())  # infra/pulumi creates both, with the build's grant
    if "artifacts" in config:
        assert config["artifacts"]["objects"]["location"] == "gs://${_ARTIFACT_BUCKET}/builds/$COMMIT_SHA/"


@pytest.mark.parametrize("name", DEPLOYER_CONFIGS)
def test_steps_that_act_on_the_platform_name_the_build_as_the_actor(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _, config = load(name)
    acting = [step for step in config["steps"] if "CHURNOPS_PROFILE=gke" in step.get("env", [])]
    assert acting
    for step in config["steps"]:
        env = dict(item.split("=", 1) for item in step.get("env", []))
        if step not in acting:  # lint and tests run without them (the tests check the OS-user fallback)
            assert "CHURNOPS_CI_BUILD_ID" not in env and "CHURNOPS_SERVICE_ACCOUNT" not in env
            continue
        assert env["CHURNOPS_CI_BUILD_ID"] == "$BUILD_ID"
        assert env["CHURNOPS_SERVICE_ACCOUNT"] == SERVICE_ACCOUNT.rsplit("/", 1)[-1]  # the build's own account
        if "CHURNOPS_MLFLOW_TRACKING_URI" in env:  # it logs in to MLflow as the user whose password it may read
            user = mlflow_users.user_of(platform.BUILD_IDENTITY[name])
            assert user is not None and env["CHURNOPS_MLFLOW_USERNAME"] == user.name
        for key, value in env.items():  # as Cloud Build substitutes them
            monkeypatch.setenv(key, value.replace("$BUILD_ID", "b-123").replace("$PROJECT_ID", "acme"))
        settings = Settings()
        assert resolve_actor(settings) == Actor("ci:b-123", "ci")
        assert settings.service_account == "churnops-deployer@acme.iam.gserviceaccount.com"
    assert not any(
        item.startswith(("CHURNOPS_CI_BUILD_ID", "CHURNOPS_SERVICE_ACCOUNT"))
        for item in config["options"].get("env", [])
    )


@pytest.mark.parametrize("name", DEPLOYER_CONFIGS)
def test_steps_that_reach_in_cluster_services_use_the_kubeconfig_written_before_them(name: str) -> None:
    _, config = load(name)
    substitutions = config["substitutions"]
    proxied = {key for key, value in substitutions.items() if str(value).startswith("k8s://")}
    assert proxied == {key for key in ("_KFP_HOST", "_MLFLOW_URI") if key in substitutions}  # no cluster DNS name
    ids = [step["id"] for step in config["steps"]]
    (credentials,) = [step for step in config["steps"] if step["id"] == "cluster-credentials"]
    assert ".ci/kubeconfig" in credentials["args"]
    for position, step in enumerate(config["steps"]):
        if any(f"${{{key}}}" in json.dumps(step) for key in proxied):
            assert "KUBECONFIG=build/kube/config" in step.get("env", []), step["id"]
            assert ids.index("cluster-credentials") < position, step["id"]


def stack_config(stack: str) -> dict[str, Any]:
    """The ``config`` of one Pulumi stack file (``infra/pulumi/Pulumi.<stack>.yaml``)."""
    return yaml.safe_load((ROOT / "infra" / "pulumi" / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))["config"]


# gcloud as the build's Cloud SDK image runs it, for one cluster: ``describe`` answers only for the
# cluster's own location, under --location or the flag of its kind (--zone for a zone, --region for a
# region); a zone under --region is "not found", as gcloud says. The private endpoint is an address of
# the cluster's VPC (which a private pool cannot reach across the peering); the DNS endpoint a name.
FAKE_GCLOUD = """#!/usr/bin/env bash
set -u
location="" format=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --location|--region|--zone) flag=${args[i]}; location=${args[i+1]} ;;
    --location=*|--region=*|--zone=*) flag=${args[i]%%=*}; location=${args[i]#*=} ;;
    --format=*) format=${args[i]#*=} ;;
  esac
done
case "$1 $2" in
  "auth print-access-token") echo ya29.short-lived; exit 0 ;;
  "container clusters") ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
zonal=0; [[ "$CLUSTER_LOCATION" =~ -[a-z]$ ]] && zonal=1
if [[ "$3" != describe || "$4" != "$CLUSTER_NAME" || "$location" != "$CLUSTER_LOCATION" ]] \
   || [[ "$flag" == --region && $zonal == 1 ]] || [[ "$flag" == --zone && $zonal == 0 ]]; then
  echo "ERROR: (gcloud.container.clusters.describe) ResponseError: code=404, message=Not found: $4 in $location" >&2
  exit 1
fi
case "$format" in
  *privateClusterConfig.privateEndpoint*) echo 10.8.0.2 ;;
  *masterAuth.clusterCaCertificate*) echo "$(printf 'not a real certificate' | base64)" ;;
  *controlPlaneEndpointsConfig.dnsEndpointConfig.endpoint*) echo "$DNS_ENDPOINT" ;;
  *) echo "unexpected format: $format" >&2; exit 2 ;;
esac
"""


def _fake_gcloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, location: str, dns_endpoint: str) -> None:
    gcloud = tmp_path / "bin" / "gcloud"
    gcloud.parent.mkdir()
    gcloud.write_text(FAKE_GCLOUD)
    gcloud.chmod(0o755)
    monkeypatch.setenv("PATH", f"{gcloud.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("CLUSTER_NAME", "churnops")
    monkeypatch.setenv("CLUSTER_LOCATION", location)
    monkeypatch.setenv("DNS_ENDPOINT", dns_endpoint)


def _credentials_location(name: str, stack: str) -> str:
    """The location the cluster-credentials step of ``name`` passes, with the trigger's substitutions of ``stack``
    (``_REGION`` and ``_CLUSTER_LOCATION``, as infra/pulumi sets them) over the config's own defaults."""
    _, config = load(name)
    (step,) = [step for step in config["steps"] if step["id"] == "cluster-credentials"]
    settings = stack_config(stack)
    values = {
        **config["substitutions"],
        "_REGION": settings["gcp:region"],
        "_CLUSTER_LOCATION": settings["churnops:cluster"]["location"],
    }
    argument = step["args"][2]
    for _ in range(3):  # dynamic substitutions may refer to other substitutions
        argument = _SUBSTITUTION.sub(lambda m: str(values.get(m.group(1) or m.group(2), m.group(0))), argument)
    return argument


@pytest.mark.parametrize("stack", ["staging", "prod"])
@pytest.mark.parametrize("name", DEPLOYER_CONFIGS)
def test_the_kubeconfig_reaches_the_dns_endpoint_of_the_zonal_and_the_regional_cluster(
    name: str, stack: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = stack_config(stack)["churnops:cluster"]["location"]
    endpoint = f"gke-0123456789abcdef-{stack}.{location}.gke.goog"
    _fake_gcloud(tmp_path, monkeypatch, location, endpoint)
    argument = _credentials_location(name, stack)
    done = subprocess.run(
        ["bash", str(ROOT / ".ci" / "kubeconfig"), "churnops", argument],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    kubeconfig = tmp_path / "build" / "kube" / "config"
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    service = cluster_proxy.resolve("k8s://kubeflow/ml-pipeline:8888", kubeconfig)
    assert service.url == f"https://{endpoint}/api/v1/namespaces/kubeflow/services/ml-pipeline:8888/proxy"
    assert service.token == "ya29.short-lived"
    assert service.ca_cert is None and service.verify_ssl  # a publicly trusted certificate, verified
    assert "ya29" not in done.stdout + done.stderr  # the token is written to the file only


def test_the_kubeconfig_script_says_when_the_cluster_has_no_dns_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_gcloud(tmp_path, monkeypatch, "europe-west1-b", "")
    done = subprocess.run(
        ["bash", str(ROOT / ".ci" / "kubeconfig"), "churnops", "europe-west1-b"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "has no DNS-based control-plane endpoint" in done.stderr
    assert not (tmp_path / "build" / "kube" / "config").exists()


# A path a shell step writes: docker save -o P, trivy --output P, or a redirection > P. The badge
# command creates its own folder (tested below), as .ci/kubeconfig does.
_WRITTEN = re.compile(r"(?:\s-o\s+|--output[ =]|\s>\s*)(?P<path>build/[^\s;|&]+)")
_MADE = re.compile(r"mkdir -p ((?:build/[^\s;|&]+\s*)+)")


@pytest.mark.parametrize("name", CONFIGS)
def test_every_folder_a_step_writes_to_is_created_before(name: str) -> None:
    _, config = load(name)
    made: set[str] = set()
    for step in config["steps"]:
        script = " ".join(str(arg) for arg in step.get("args", []))
        if step.get("entrypoint") in ("bash", "sh") or script.startswith("-c"):
            lines = [line for line in script.splitlines() if "churnops.platform.badge" not in line]
            script = "\n".join(lines)
            events = sorted(
                [(m.start(), "made", folder) for m in _MADE.finditer(script) for folder in m.group(1).split()]
                + [(m.start(), "written", m.group("path")) for m in _WRITTEN.finditer(script)]
            )
        elif step["args"][:1] == [".ci/kubeconfig"]:
            events = [(0, "made", "build/kube")]  # the script creates its own folder
        else:
            continue
        for _, event, path in events:
            if event == "made":
                made.add(path.rstrip("/"))
            else:
                folder = str(Path(path).parent)
                assert any(folder == m or folder.startswith(f"{m}/") for m in made), (step["id"], path)


def test_the_badge_command_creates_its_folder(tmp_path: Path) -> None:
    output = tmp_path / "build" / "badge.svg"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "churnops.platform.badge",
            "--status",
            "passing",
            "--commit",
            "abc1234",
            "--output",
            str(output),
        ],
        check=True,
        cwd=ROOT,
    )
    assert output.read_text(encoding="utf-8").startswith("<svg")


def test_the_readme_shows_the_build_badge_the_main_build_publishes() -> None:
    _, config = load("cloudbuild.yaml")
    project = stack_config("staging")["gcp:project"]  # the build of main deploys to staging there
    bucket = config["substitutions"]["_BADGE_BUCKET"].replace("${PROJECT_ID}", project)
    steps = {step["id"]: " ".join(step["args"]) for step in config["steps"]}
    assert "gs://${_BADGE_BUCKET}/main.svg" in steps["badge-pending"]
    assert "gs://${_BADGE_BUCKET}/main.svg" in steps["badge-passing"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    badge = re.search(r"!\[[^\]]*\]\((?P<url>[^)]+)\)", readme.split("\n## ", 1)[0])
    assert badge is not None, "the README's opening shows no image"
    assert badge["url"] == f"https://storage.googleapis.com/{bucket}/main.svg"


# ---- build tool images: pinned by digest, their tools' versions checked at run time ----
# docs/cicd.md records where each digest was seen and how to re-verify it.

_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")


def step_images(name: str) -> set[str]:
    """Every step image of config ``name``, its substitutions resolved."""
    _, config = load(name)
    values: dict[str, str] = config.get("substitutions", {})
    return {_resolved(step["name"], values) for step in config["steps"]}


def _resolved(text: str, values: dict[str, str]) -> str:
    """``text`` with the substitutions ``values`` declares put in (others left as they are)."""
    return _SUBSTITUTION.sub(lambda m: str(values.get(m.group(1) or m.group(2), m.group(0))), text)


def test_references_are_read_by_distribution_references_own_grammar() -> None:
    """The grammar evaluated from the vendored regexp.go passes upstream's own table (regexp_test.go)."""
    cases = image_reference.upstream_cases()
    assert len(cases) >= 10 and any(matches for _, matches, _ in cases) and not all(m for _, m, _ in cases)
    for subject, matches, groups in cases:
        parsed = image_reference.parse(subject)
        assert (parsed is not None) == matches, subject
        if parsed is not None and groups:
            assert list(parsed) == groups, subject
    # what a reference by tag, or by no tag at all, leaves to the registry: no digest
    assert image_reference.parse("aquasec/trivy:0.66.0") == ("aquasec/trivy", "0.66.0", "")
    assert image_reference.parse("gcr.io/cloud-builders/docker") == ("gcr.io/cloud-builders/docker", "", "")


@pytest.mark.parametrize("name", CONFIGS)
def test_every_image_a_build_step_runs_is_pinned_by_digest_under_a_version_tag(name: str) -> None:
    """Cloud Build pulls a ``repository:tag@sha256:<digest>`` step image by its digest: that manifest, from
    that repository. The tag names the version its tool must report (.ci/tool-version)."""
    images = step_images(name)
    assert not any("$" in image for image in images), images  # every image resolved from the config itself
    for image in images:
        parsed = image_reference.parse(image)
        assert parsed is not None, image
        assert _SHA256.fullmatch(parsed.digest), f"{image} is not pinned by a sha256 digest"
        assert re.match(r"\d+(\.\d+)*(-|$)", parsed.tag), f"{image} has no version tag"
    assert images == {image.reference for image in platform.BUILD_TOOLS[name]}


@pytest.mark.parametrize("name", CONFIGS)
def test_each_tools_version_is_checked_before_any_step_runs_it(name: str) -> None:
    _, config = load(name)
    steps = config["steps"]
    tools = platform.BUILD_TOOLS[name]
    checks = steps[: len(tools)]  # the build's first steps
    assert [step["id"] for step in checks] == [f"version-{image.tool}" for image in tools]
    for image, step in zip(tools, checks, strict=True):
        assert step["name"] == f"${{{image.substitution}}}"
        assert step["entrypoint"] == "sh"  # the Docker and Trivy images have no bash
        assert step["args"] == [".ci/tool-version", image.tool, f"${{{image.substitution}}}"]
    for step in steps[len(tools) :]:
        assert not step["id"].startswith("version-")
        assert step["name"] in {check["name"] for check in checks}, step["id"]


# What each tool prints for its version (python and trivy are also run for real below).
_VERSION_OUTPUT = {
    "python": "Python {version}",
    "gcloud": "Google Cloud SDK {version}\nalpha 2026.03.20\nbq 2.1.29\ncore 2026.03.20\ngsutil 5.35",
    "docker": "Docker version {version}, build 8d8a2d1",
    "trivy": "Version: {version}",
}


def _tool_version(tool: str, image: str, tmp_path: Path, output: str | None = None) -> subprocess.CompletedProcess[str]:
    """``.ci/tool-version tool image`` under sh, with ``tool`` on the PATH printing ``output`` (if given)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if output is not None:
        fake = bin_dir / ("python3" if tool == "python" else tool)
        fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\n")
        fake.chmod(0o755)
    return subprocess.run(
        ["sh", str(ROOT / ".ci" / "tool-version"), tool, image],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("image", platform.TOOL_IMAGES, ids=lambda image: image.tool)
def test_the_runtime_check_passes_the_pinned_version_and_refuses_any_other(
    image: platform.ToolImage, tmp_path: Path
) -> None:
    """The version the declaration pins (its tag) is the version the runtime check requires; a digest whose
    image reports another version, or a reference without a digest, fails the step."""
    output = _VERSION_OUTPUT[image.tool]
    done = _tool_version(image.tool, image.reference, tmp_path, output.format(version=image.version))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{image.tool} {image.version} ({image.reference})"
    other = image.version.rsplit(".", 1)[0] + ".999"
    refused = _tool_version(image.tool, image.reference, tmp_path, output.format(version=other))
    assert refused.returncode == 1
    assert f"runs {image.tool} {other}, not the {image.version} its tag names" in refused.stderr
    by_tag = _tool_version(image.tool, image.reference.split("@", 1)[0], tmp_path)
    assert by_tag.returncode == 1 and "is not pinned by digest" in by_tag.stderr


def test_the_runtime_check_reads_the_real_python_and_trivy(tmp_path: Path) -> None:
    """The version lines the check parses, as the real tools print them: this interpreter, and the Trivy
    binary of the development lock."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to(sys.executable)
    python = ".".join(str(part) for part in sys.version_info[:3])
    digest = "sha256:" + "a" * 64
    assert _tool_version("python", f"python:{python}-bookworm@{digest}", tmp_path).returncode == 0
    if platform.TOOL_PYTHON.version != python:  # the pinned image's interpreter is not this one
        refused = _tool_version("python", platform.TOOL_PYTHON.reference, tmp_path)
        assert (
            refused.returncode == 1
            and f"runs python {python}, not the {platform.TOOL_PYTHON.version}" in refused.stderr
        )
    trivy = Path(sys.executable).parent / "trivy"
    (tmp_path / "bin" / "trivy").symlink_to(trivy)
    reported = subprocess.run([trivy, "--version"], capture_output=True, text=True, check=True).stdout
    version = re.search(r"^Version: (\S+)$", reported, flags=re.M)
    assert version is not None, reported
    assert _tool_version("trivy", f"aquasec/trivy:{version[1]}@{digest}", tmp_path).returncode == 0


def test_a_tool_images_tag_must_start_with_its_version() -> None:
    image = platform.ToolImage("_X_IMAGE", "docker", "docker", "cli", "0" * 64)
    with pytest.raises(ValueError, match="does not start with a version"):
        _ = image.version
