"""The Google Cloud roles the program grants, read as Google defines them.

Each predefined role's permissions come from the role catalogue vendored in
``tests/specs/upstream/gcp-iam-roles/`` (one file per role, as ``roles.get`` returns it; source and
licence in that folder's README row), never from what the role's name suggests. From it:

* every role the program grants exists (a misspelt or retired role fails ``pulumi up``);
* every build that writes a kubeconfig for the DNS-based control-plane endpoint (``.ci/kubeconfig``)
  runs as an identity holding ``container.clusters.connect``, which that endpoint checks, and
  ``container.clusters.get``, with which the script finds the endpoint;
* only the attestor holds a permission that signs or records an attestation, whichever role
  carries it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import yaml
from conftest import StackRun
from test_exact_grants import AGENTS, held

from churnops.platform import declaration as platform

REPOSITORY = Path(__file__).resolve().parents[3]
CATALOGUE = REPOSITORY / "tests/specs/upstream/gcp-iam-roles"
CONNECT = {"container.clusters.connect", "container.clusters.get"}
# What an attestation is made of: a KMS signature, attached to the attestor's note as an occurrence.
SIGNING = {
    "cloudkms.cryptoKeyVersions.useToSign",
    "containeranalysis.notes.attachOccurrence",
    "containeranalysis.occurrences.create",
}


@cache
def permissions(role: str) -> frozenset[str]:
    """The permissions Google's predefined ``role`` includes."""
    path = CATALOGUE / f"{role.removeprefix('roles/')}.json"
    assert path.is_file(), f"{role} is not in the vendored role catalogue: no such predefined role, or not vendored"
    definition = json.loads(path.read_text(encoding="utf-8"))
    assert definition["name"] == role
    return frozenset(definition["includedPermissions"])


def granted_permissions(stack: StackRun, email: str) -> frozenset[str]:
    """Every permission the program grants ``email``, on any resource."""
    return frozenset().union(*(permissions(role) for _, _, role in held(stack).get(email, set())))


def test_every_granted_role_is_a_predefined_role(stack: StackRun) -> None:
    roles = {resource.inputs["role"] for resource in stack.resources if isinstance(resource.inputs.get("role"), str)}
    assert roles, "the program grants no role"
    for role in sorted(roles):
        assert permissions(role), role


def kubeconfig_builds() -> set[str]:
    """The build configs with a step that runs ``.ci/kubeconfig``."""
    builds = set()
    for build in platform.BUILD_IDENTITY:
        steps = yaml.safe_load((REPOSITORY / build).read_text(encoding="utf-8"))["steps"]
        if any(".ci/kubeconfig" in [step.get("entrypoint"), *step.get("args", [])] for step in steps):
            builds.add(build)
    return builds


def test_builds_that_reach_the_control_plane_may_connect_to_its_dns_endpoint(stack: StackRun) -> None:
    builds = kubeconfig_builds()
    assert platform.BUILD_CI in builds  # the deploy step of the main build
    for build in builds:
        email = platform.identity(platform.BUILD_IDENTITY[build]).email(stack.project)
        missing = CONNECT - granted_permissions(stack, email)
        assert not missing, f"{build} runs as {email}, which lacks {sorted(missing)}"


def test_only_the_attestor_holds_a_signing_permission(stack: StackRun) -> None:
    for key, identity in platform.IDENTITIES.items():
        signing = granted_permissions(stack, identity.email(stack.project)) & SIGNING
        if key == "attestor":
            assert signing == SIGNING, "the attestor cannot make an attestation"
        else:
            assert not signing, f"{key} may sign or record attestations: {sorted(signing)}"
    for agent in AGENTS:
        assert not granted_permissions(stack, agent) & SIGNING, agent
