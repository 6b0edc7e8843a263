"""The policy pack: every control accepts the program's own resources and refuses one that breaks it."""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import pytest
from churnops_policy import policies
from conftest import StackRun
from pulumi_policy import EnforcementLevel, ResourceValidationArgs

CLUSTER = policies.CLUSTER
NODE_POOL = policies.NODE_POOL
BY_NAME = {policy.name: policy for policy in policies.POLICIES}


def violations(policy_name: str, resource_type: str, props: dict[str, Any]) -> list[str]:
    """Run one policy's validation the way the engine does and collect what it reports."""
    reported: list[str] = []
    args = ResourceValidationArgs(
        resource_type=resource_type,
        props=props,
        urn=f"urn:pulumi:test::churnops::{resource_type}::r",
        name="r",
        opts=None,  # type: ignore[arg-type]
        provider=None,
    )
    BY_NAME[policy_name].validate(args, lambda message, urn=None: reported.append(message))
    return reported


def props_of(stack: StackRun, resource_type: str) -> dict[str, Any]:
    """A deep copy of the inputs of the program's ``resource_type`` resource first by name (registration order
    varies between runs; the first by name is always the same one, and not the one public badge bucket)."""
    return copy.deepcopy(min(stack.of_type(resource_type), key=lambda resource: resource.name).inputs)


def test_every_control_is_a_mandatory_policy() -> None:
    assert {control.name for control in policies.CONTROLS} == set(BY_NAME)
    assert len(BY_NAME) == len(policies.CONTROLS)
    assert all(policy.enforcement_level == EnforcementLevel.MANDATORY for policy in policies.POLICIES)
    assert all(policy.description and not policy.description.startswith("check_") for policy in policies.POLICIES)


def test_the_programs_own_resources_pass_every_policy(stack: StackRun) -> None:
    checked = 0
    for resource in stack.resources:
        for name in BY_NAME:
            assert not violations(name, resource.type, resource.inputs), (name, resource.type, resource.name)
            checked += 1
    assert checked > 1000


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(props: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = props
        for key in parents:
            target = target.setdefault(key, {})
        if value is DELETE:
            target.pop(leaf, None)
        else:
            target[leaf] = value

    return mutate


DELETE = object()

# (policy, resource type, how to break the program's resource, what the message says)
BREAKAGES = [
    ("gke-private-cluster", CLUSTER, _set("privateClusterConfig.enablePrivateNodes", False), "private"),
    (
        "gke-private-cluster",
        CLUSTER,
        _set("masterAuthorizedNetworksConfig.cidrBlocks", [{"cidrBlock": "0.0.0.0/0", "displayName": "all"}]),
        "everyone",
    ),
    ("gke-private-cluster", CLUSTER, _set("masterAuthorizedNetworksConfig", DELETE), "cidrBlocks"),
    ("gke-workload-identity", CLUSTER, _set("workloadIdentityConfig", DELETE), "Workload Identity"),
    (
        "gke-workload-identity",
        NODE_POOL,
        _set("nodeConfig.workloadMetadataConfig.mode", "GCE_METADATA"),
        "GKE_METADATA",
    ),
    ("gke-shielded-nodes", CLUSTER, _set("enableShieldedNodes", False), "enableShieldedNodes"),
    ("gke-shielded-nodes", NODE_POOL, _set("nodeConfig.shieldedInstanceConfig.enableSecureBoot", False), "secure boot"),
    ("gke-network-policy", CLUSTER, _set("datapathProvider", "LEGACY_DATAPATH"), "NetworkPolicy"),
    (
        "gke-binary-authorization",
        CLUSTER,
        _set("binaryAuthorization.evaluationMode", "DISABLED"),
        "Binary Authorization",
    ),
    ("gke-binary-authorization", CLUSTER, _set("binaryAuthorization", DELETE), "Binary Authorization"),
    (
        "gke-binary-authorization",
        "gcp:binaryauthorization/policy:Policy",
        _set("defaultAdmissionRule.evaluationMode", "ALWAYS_ALLOW"),
        "deny or require",
    ),
    (
        "gke-binary-authorization",
        "gcp:binaryauthorization/policy:Policy",
        _set("defaultAdmissionRule.enforcementMode", "DRYRUN_AUDIT_LOG_ONLY"),
        "must block",
    ),
    ("gke-secrets-encryption", CLUSTER, _set("databaseEncryption.state", "DECRYPTED"), "KMS"),
    ("gke-secrets-encryption", CLUSTER, _set("databaseEncryption.keyName", DELETE), "KMS"),
    ("gke-node-service-account", NODE_POOL, _set("nodeConfig.serviceAccount", "default"), "dedicated"),
    (
        "gke-node-service-account",
        NODE_POOL,
        _set("nodeConfig.serviceAccount", "123456789012-compute@developer.gserviceaccount.com"),
        "dedicated",
    ),
    ("gke-node-service-account", CLUSTER, _set("nodeConfig.serviceAccount", DELETE), "dedicated"),
    ("buckets-private", "gcp:storage/bucket:Bucket", _set("uniformBucketLevelAccess", False), "uniform"),
    ("buckets-private", "gcp:storage/bucket:Bucket", _set("publicAccessPrevention", "inherited"), "public access"),
    ("buckets-private", "gcp:storage/bucketIAMMember:BucketIAMMember", _set("member", "allUsers"), "allUsers"),
    ("cloudbuild-dedicated-account", "gcp:cloudbuild/trigger:Trigger", _set("serviceAccount", DELETE), "dedicated"),
    (
        "cloudbuild-dedicated-account",
        "gcp:cloudbuild/trigger:Trigger",
        _set("serviceAccount", "projects/p/serviceAccounts/123456789012@cloudbuild.gserviceaccount.com"),
        "dedicated",
    ),
    ("pinned-versions", "kubernetes:helm.sh/v3:Release", _set("version", DELETE), "exact version"),
    ("pinned-versions", "kubernetes:helm.sh/v3:Release", _set("version", "^1.2.0"), "exact version"),
    ("pinned-versions", "kubernetes:helm.sh/v3:Release", _set("version", "1.x"), "exact version"),
    (
        "cloudsql-private",
        "gcp:sql/databaseInstance:DatabaseInstance",
        _set("settings.ipConfiguration.ipv4Enabled", True),
        "public IP",
    ),
    (
        "cloudsql-private",
        "gcp:sql/databaseInstance:DatabaseInstance",
        _set("settings.ipConfiguration.sslMode", "ALLOW_UNENCRYPTED_AND_ENCRYPTED"),
        "TLS",
    ),
    (
        "secret-access-per-secret",
        "gcp:secretmanager/secretIamMember:SecretIamMember",
        _set("member", "group:data@example.com"),
        "service account",
    ),
]


@pytest.mark.parametrize(
    ("policy", "resource_type", "breaks", "message"), BREAKAGES, ids=[f"{b[0]}-{i}" for i, b in enumerate(BREAKAGES)]
)
def test_each_policy_refuses_a_resource_that_breaks_its_control(
    stack: StackRun, policy: str, resource_type: str, breaks: Callable[[dict], None], message: str
) -> None:
    props = props_of(stack, resource_type)
    assert not violations(policy, resource_type, props)
    breaks(props)
    reported = violations(policy, resource_type, props)
    assert reported and any(message in text for text in reported), reported


def test_a_remote_kustomization_must_name_a_release_tag(stack: StackRun) -> None:
    """The program applies KFP from its vendored release manifests; a remote one would have to be pinned."""
    assert not stack.of_type("kubernetes:kustomize/v2:Directory")
    remote = "https://github.com/kubeflow/pipelines//manifests/kustomize/env/dev?ref={ref}"
    directory = "kubernetes:kustomize/v2:Directory"
    reported = violations("pinned-versions", directory, {"directory": remote.format(ref="master")})
    assert reported and "release tag" in reported[0]
    assert not violations("pinned-versions", directory, {"directory": remote.format(ref="2.14.3")})


def test_service_account_keys_are_refused() -> None:
    assert violations("no-service-account-keys", "gcp:serviceaccount/key:Key", {"serviceAccountId": "x"})
    assert not violations("no-service-account-keys", "gcp:serviceaccount/account:Account", {"accountId": "x"})


USER = "user:a@example.com"
ACCOUNT = "serviceAccount:a@p.iam.gserviceaccount.com"
ACCESSOR = "roles/secretmanager.secretAccessor"


def policy_data(role: str, members: list[str]) -> str:
    """An IAM policy document granting ``role`` to ``members``."""
    return json.dumps({"bindings": [{"role": role, "members": members}]})


@pytest.mark.parametrize(
    ("resource_type", "props"),
    [
        ("gcp:projects/iAMMember:IAMMember", {"project": "p", "role": "roles/editor", "member": USER}),
        ("gcp:projects/iAMBinding:IAMBinding", {"project": "p", "role": "roles/owner", "members": [USER]}),
        ("gcp:storage/bucketIAMMember:BucketIAMMember", {"bucket": "b", "role": "roles/viewer", "member": USER}),
        ("gcp:projects/iAMPolicy:IAMPolicy", {"project": "p", "policyData": policy_data("roles/owner", [USER])}),
    ],
)
def test_primitive_roles_are_refused_in_every_form(resource_type: str, props: dict[str, Any]) -> None:
    assert violations("no-primitive-roles", resource_type, props)
    props = {**props, "role": "roles/storage.objectViewer"} if "role" in props else {"project": "p", "policyData": "{}"}
    assert not violations("no-primitive-roles", resource_type, props)


@pytest.mark.parametrize(
    ("resource_type", "props", "message"),
    [
        ("gcp:projects/iAMMember:IAMMember", {"project": "p", "role": ACCESSOR, "member": ACCOUNT}, "one secret"),
        (
            "gcp:secretmanager/secretIamBinding:SecretIamBinding",
            {"secretId": "s", "role": ACCESSOR, "members": [ACCOUNT, ACCOUNT.replace("a@", "b@")]},
            "exactly one identity",
        ),
        (
            "gcp:secretmanager/secretIamPolicy:SecretIamPolicy",
            {"secretId": "s", "policyData": policy_data(ACCESSOR, [ACCOUNT])},
            "exactly one identity",
        ),
    ],
)
def test_secret_access_above_one_secret_or_for_several_identities_is_refused(
    resource_type: str, props: dict[str, Any], message: str
) -> None:
    reported = violations("secret-access-per-secret", resource_type, props)
    assert reported and message in reported[0]


def test_a_private_control_plane_endpoint_needs_no_authorized_networks(stack: StackRun) -> None:
    props = props_of(stack, CLUSTER)
    props["privateClusterConfig"]["enablePrivateEndpoint"] = True
    props.pop("masterAuthorizedNetworksConfig")
    assert not violations("gke-private-cluster", CLUSTER, props)


def badge_grant(stack: StackRun) -> dict[str, Any]:
    """The program's allUsers grant on the badge bucket."""
    grants = [g.inputs for g in stack.of_type(policies.BUCKET_IAM_MEMBER) if g.inputs["member"] == "allUsers"]
    assert len(grants) == 1 and grants[0]["bucket"].endswith("-churnops-badges")
    return copy.deepcopy(grants[0])


def test_the_badge_bucket_is_the_only_public_one_and_only_for_reading(stack: StackRun) -> None:
    grant = badge_grant(stack)
    assert not violations("buckets-private", policies.BUCKET_IAM_MEMBER, grant)
    for change in (
        {"role": "roles/storage.objectAdmin"},
        {"role": "roles/storage.legacyBucketReader"},
        {"member": "allAuthenticatedUsers"},
        {"bucket": grant["bucket"].replace("badges", "build")},
        {"bucket": grant["bucket"] + "-copy"},
        {"condition": {"title": "t", "expression": "true"}},
    ):
        assert violations("buckets-private", policies.BUCKET_IAM_MEMBER, {**grant, **change}), change
    binding = {"bucket": grant["bucket"], "role": grant["role"], "members": ["allUsers"]}
    assert violations("buckets-private", "gcp:storage/bucketIAMBinding:BucketIAMBinding", binding)
    bucket = next(
        copy.deepcopy(b.inputs) for b in stack.of_type(policies.BUCKET) if b.inputs["name"] == grant["bucket"]
    )
    assert bucket["publicAccessPrevention"] == "inherited"
    assert not violations("buckets-private", policies.BUCKET, bucket)
    assert violations("buckets-private", policies.BUCKET, {**bucket, "uniformBucketLevelAccess": False})
    other = {**bucket, "name": bucket["name"].replace("badges", "artifacts")}
    assert violations("buckets-private", policies.BUCKET, other)  # any other bucket must enforce prevention


def _account(stack: StackRun, account_id: str) -> str:
    return f"serviceAccount:{account_id}@{stack.project}.iam.gserviceaccount.com"


def _inputs(stack: StackRun, resource_type: str, **matching: str) -> dict[str, Any]:
    """A deep copy of the inputs of the program's ``resource_type`` whose inputs end with ``matching``."""
    found = [
        r.inputs
        for r in stack.of_type(resource_type)
        if all(str(r.inputs.get(key, "")).endswith(value) for key, value in matching.items())
    ]
    assert found, (resource_type, matching)
    return copy.deepcopy(found[0])


# (policy, resource type, which of the program's resources, how it is widened, what the message says)
WIDENED_GRANTS = [
    (
        "project-roles-allowlisted",
        "gcp:projects/iAMMember:IAMMember",
        {"role": "roles/monitoring.viewer"},
        lambda stack, props: props.update(member=_account(stack, "churnops-training")),
        "project-level roles/monitoring.viewer",
    ),
    (
        "project-roles-allowlisted",
        "gcp:projects/iAMMember:IAMMember",
        {"role": "roles/logging.logWriter"},
        lambda stack, props: props.update(role="roles/storage.admin"),
        "project-level roles/storage.admin",
    ),
    (
        "predictor-reads-artifacts-only",
        "gcp:secretmanager/secretIamMember:SecretIamMember",
        {"secretId": "churnops-tokenization-key", "member": "churnops-ingest@churnops-staging.iam.gserviceaccount.com"},
        lambda stack, props: props.update(member=_account(stack, "churnops-predictor-prod")),
        "model artifacts only",
    ),
    (
        "predictor-reads-artifacts-only",
        "gcp:storage/bucketIAMMember:BucketIAMMember",
        {"bucket": "churnops-raw"},
        lambda stack, props: props.update(member=_account(stack, "churnops-predictor-staging")),
        "model artifacts only",
    ),
    (
        "sensitive-secret-readers",
        "gcp:secretmanager/secretIamMember:SecretIamMember",
        {"secretId": "churnops-tokenization-key"},
        lambda stack, props: props.update(member=_account(stack, "churnops-deployer")),
        "must not read churnops-tokenization-key",
    ),
    (
        "sensitive-secret-readers",
        "gcp:secretmanager/secretIamMember:SecretIamMember",
        {"secretId": "churnops-lakefs-secret-access-key"},
        lambda stack, props: props.update(member=_account(stack, "churnops-mlflow")),
        "must not read churnops-lakefs-secret-access-key",
    ),
    (
        "mlflow-password-readers",
        "gcp:secretmanager/secretIamMember:SecretIamMember",
        {"secretId": "churnops-mlflow-password-churnops-deployer"},
        lambda stack, props: props.update(member=_account(stack, "churnops-scoring")),
        "must not read churnops-mlflow-password-churnops-deployer",
    ),
    (
        "mlflow-password-readers",
        "gcp:secretmanager/secretIamMember:SecretIamMember",
        {"secretId": "churnops-mlflow-password-churnops-admin"},
        lambda stack, props: props.update(member=_account(stack, "churnops-training")),
        "must not read churnops-mlflow-password-churnops-admin",
    ),
    (
        "mlflow-authenticates",
        "kubernetes:helm.sh/v3:Release",
        {"name": "mlflow"},
        lambda stack, props: props["values"]["auth"].update(enabled=False),
        "basic-auth app",
    ),
    (
        "mlflow-authenticates",
        "kubernetes:helm.sh/v3:Release",
        {"name": "mlflow"},
        lambda stack, props: props["values"].pop("auth"),
        "basic-auth app",
    ),
    (
        "mlflow-authenticates",
        "kubernetes:helm.sh/v3:Release",
        {"name": "mlflow"},
        lambda stack, props: props["values"]["auth"].update(
            authorizationFunction="mlflow.server.auth:authenticate_request_basic_auth"
        ),
        "authorization function",
    ),
    (
        "mlflow-authenticates",
        "kubernetes:helm.sh/v3:Release",
        {"name": "mlflow"},
        lambda stack, props: props["values"]["auth"].update(defaultPermission="EDIT"),
        "default permission",
    ),
    (
        "mlflow-authenticates",
        "kubernetes:helm.sh/v3:Release",
        {"name": "mlflow"},
        lambda stack, props: props["values"]["auth"]["postgres"].update(enabled=False),
        "Postgres",
    ),
    (
        "mlflow-authenticates",
        "kubernetes:helm.sh/v3:Release",
        {"name": "mlflow"},
        lambda stack, props: props["values"]["auth"].update(adminPassword="hunter2"),
        "never from the release's values",
    ),
    (
        "attestation-signers",
        "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
        {"cryptoKeyId": "attestor"},
        lambda stack, props: props.update(member=_account(stack, "churnops-builder")),
        "roles/cloudkms.signerVerifier must not be granted",
    ),
    (
        "attestation-signers",
        "gcp:containeranalysis/noteIamMember:NoteIamMember",
        {},
        lambda stack, props: props.update(member=_account(stack, "churnops-builder")),
        "roles/containeranalysis.notes.attacher must not be granted",
    ),
    # The build account runs `make test` (third-party code): it may not sign, attach or create occurrences.
    (
        "attestation-signers",
        "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
        {"cryptoKeyId": "attestor"},
        lambda stack, props: props.update(member=_account(stack, "churnops-deployer")),
        "roles/cloudkms.signerVerifier must not be granted",
    ),
    (
        "attestation-signers",
        "gcp:containeranalysis/noteIamMember:NoteIamMember",
        {},
        lambda stack, props: props.update(member=_account(stack, "churnops-deployer")),
        "roles/containeranalysis.notes.attacher must not be granted",
    ),
    (
        "attestation-signers",
        "gcp:binaryauthorization/attestorIamMember:AttestorIamMember",
        {"role": "roles/binaryauthorization.attestorsVerifier"},
        lambda stack, props: props.update(member=_account(stack, "churnops-deployer")),
        "roles/binaryauthorization.attestorsVerifier must not be granted",
    ),
    (
        "project-roles-allowlisted",
        "gcp:projects/iAMMember:IAMMember",
        {"role": "roles/containeranalysis.occurrences.editor"},
        lambda stack, props: props.update(member=_account(stack, "churnops-deployer")),
        "project-level roles/containeranalysis.occurrences.editor",
    ),
    (
        "attestor-runs-only-attestation",
        "gcp:cloudbuild/trigger:Trigger",
        {"name": "churnops-attest"},
        lambda stack, props: props.update(
            serviceAccount=f"projects/{stack.project}/serviceAccounts/"
            + _account(stack, "churnops-deployer").removeprefix("serviceAccount:")
        ),
        "must run as the attestor account",
    ),
    (
        "attestor-runs-only-attestation",
        "gcp:cloudbuild/trigger:Trigger",
        {"name": "churnops-ci"},
        lambda stack, props: props.update(
            serviceAccount=f"projects/{stack.project}/serviceAccounts/"
            + _account(stack, "churnops-attestor").removeprefix("serviceAccount:")
        ),
        "must run cloudbuild.attest.yaml",
    ),
    (
        "attestor-runs-only-attestation",
        "gcp:cloudbuild/trigger:Trigger",
        {"name": "churnops-attest"},
        lambda stack, props: props.update(build={"steps": [{"name": "python", "args": ["make", "test"]}]}),
        "must run cloudbuild.attest.yaml",
    ),
    (
        "attestor-runs-only-attestation",
        "gcp:serviceaccount/iAMMember:IAMMember",
        {},
        lambda stack, props: props.update(
            serviceAccountId=f"projects/{stack.project}/serviceAccounts/"
            + _account(stack, "churnops-attestor").removeprefix("serviceAccount:"),
            role="roles/iam.serviceAccountUser",
            member=_account(stack, "churnops-deployer"),
        ),
        "on the attestor account must not be granted",
    ),
]


@pytest.mark.parametrize(
    ("policy", "resource_type", "matching", "widen", "message"),
    WIDENED_GRANTS,
    ids=[f"{w[0]}-{i}" for i, w in enumerate(WIDENED_GRANTS)],
)
def test_each_grant_policy_refuses_a_widened_grant_of_the_program(
    stack: StackRun,
    policy: str,
    resource_type: str,
    matching: dict[str, str],
    widen: Callable[[StackRun, dict[str, Any]], None],
    message: str,
) -> None:
    matching = {key: value.replace("churnops-staging", stack.project) for key, value in matching.items()}
    props = _inputs(stack, resource_type, **matching)
    assert not violations(policy, resource_type, props)
    widen(stack, props)
    reported = violations(policy, resource_type, props)
    assert reported and any(message in text for text in reported), reported
