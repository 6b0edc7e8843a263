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


def granted_roles(stack: StackRun) -> dict[str, set[str]]:
    """Member (``serviceAccount:<email>``, a Workload Identity principal, ...) -> every role the program
    grants it, on any resource."""
    roles: dict[str, set[str]] = {}
    for resource in stack.resources:
        role, member = resource.inputs.get("role"), resource.inputs.get("member")
        if isinstance(role, str) and isinstance(member, str):
            roles.setdefault(member, set()).add(role)
    return roles


def granted_permissions(stack: StackRun, email: str) -> frozenset[str]:
    """Every permission the program grants the service account ``email``, on any resource."""
    return frozenset().union(*(permissions(role) for role in granted_roles(stack).get(f"serviceAccount:{email}", ())))


def test_every_granted_role_is_a_predefined_role(stack: StackRun) -> None:
    roles = set().union(*granted_roles(stack).values())
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
    attestor = f"serviceAccount:{platform.identity('attestor').email(stack.project)}"
    for member, roles in granted_roles(stack).items():  # every identity, service agent and principal
        signing = frozenset().union(*(permissions(role) for role in roles)) & SIGNING
        if member == attestor:
            assert signing == SIGNING, "the attestor cannot make an attestation"
        else:
            assert not signing, f"{member} may sign or record attestations: {sorted(signing)}"
