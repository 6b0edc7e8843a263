"""Per identity and stack, the exact Google Cloud roles and Secret Manager secrets it holds.

Read from what the Pulumi program registers (under mocks, both stacks) and from the manifests that put
pods on Kubernetes service accounts: a serving pod's account (``manifests/base/inferenceservice.yaml``)
is followed through its Workload Identity binding to the Google service account whose grants it gets.
Every grant any identity holds is listed in :data:`EXPECTED`; a grant added anywhere (a wider role, one
more secret, a project-level role, another bucket) fails here until this table says so on purpose.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from churnops_infra import names
from conftest import PROJECT_NUMBER, StackRun

from churnops.platform import declaration as platform

REPOSITORY = Path(__file__).resolve().parents[3]
ACCESSOR = "roles/secretmanager.secretAccessor"
OBJECT_ADMIN, OBJECT_USER, OBJECT_VIEWER = (
    "roles/storage.objectAdmin",
    "roles/storage.objectUser",
    "roles/storage.objectViewer",
)

# (kind, resource, role): kind "project", "bucket" (by purpose), "secret" (its id), "kms-key", "note",
# "attestor", "repository", "topic"
Grant = tuple[str, str, str]
PIPELINE_SECRETS: frozenset[Grant] = frozenset(
    ("secret", secret, ACCESSOR)
    for secret in (
        names.SECRET_ALERT_WEBHOOK,
        names.SECRET_LAKEFS_ACCESS_KEY_ID,
        names.SECRET_LAKEFS_SECRET_ACCESS_KEY,
        names.SECRET_TOKENIZATION_KEY,
    )
)
TRANSFORMER: frozenset[Grant] = frozenset(
    ("secret", secret, ACCESSOR)
    for secret in (
        names.SECRET_LAKEFS_ACCESS_KEY_ID,
        names.SECRET_LAKEFS_SECRET_ACCESS_KEY,
        names.SECRET_TOKENIZATION_KEY,
    )
)
PREDICTOR: frozenset[Grant] = frozenset({("bucket", "artifacts", OBJECT_VIEWER)})  # model artifacts, nothing else


def mlflow_password(user: str) -> Grant:
    """Read access to one MLflow user's password (the user named after the identity that logs in as it)."""
    return ("secret", f"churnops-mlflow-password-{user}", ACCESSOR)


# Each identity that calls MLflow reads its own user's password and no other; the MLflow server's identity
# reads every one (its bootstrap Job creates the users with them) and the admin's.
MLFLOW_LOGINS = ("churnops-training", "churnops-deployer", "churnops-scoring", "churnops-purge")

EXPECTED: dict[str, frozenset[Grant]] = {
    "predictor-staging": PREDICTOR,
    "predictor-production": PREDICTOR,
    "transformer-staging": TRANSFORMER,
    "transformer-production": TRANSFORMER,
    "pipeline-ingest": PIPELINE_SECRETS
    | {("bucket", "artifacts", OBJECT_ADMIN), ("bucket", "raw", OBJECT_VIEWER)},  # reads raw PII, never changes it
    # (ingest calls no MLflow: no MLflow password)
    # The erasure purge: the only identity that may rewrite or delete raw objects (and their PII), and the only
    # one besides lakeFS that may delete history's objects from the lake bucket.
    "pipeline-purge": PIPELINE_SECRETS
    | {
        ("bucket", "artifacts", OBJECT_ADMIN),
        ("bucket", "raw", OBJECT_ADMIN),
        ("bucket", "lake", OBJECT_USER),
        mlflow_password("churnops-purge"),
    },
    "pipeline-training": PIPELINE_SECRETS
    | {("bucket", "artifacts", OBJECT_ADMIN), mlflow_password("churnops-training")},
    "pipeline-scoring": PIPELINE_SECRETS | {("bucket", "artifacts", OBJECT_ADMIN), mlflow_password("churnops-scoring")},
    "lakefs": frozenset(
        {
            ("bucket", "lake", OBJECT_ADMIN),
            ("secret", names.SECRET_LAKEFS_ACCESS_KEY_ID, ACCESSOR),
            ("secret", names.SECRET_LAKEFS_SECRET_ACCESS_KEY, ACCESSOR),
            ("secret", names.SECRET_LAKEFS_ENCRYPT_KEY, ACCESSOR),
            ("secret", names.SECRET_LAKEFS_DB_PASSWORD, ACCESSOR),
        }
    ),
    "mlflow": frozenset(
        {
            ("bucket", "artifacts", OBJECT_ADMIN),
            ("secret", names.SECRET_MLFLOW_DB_PASSWORD, ACCESSOR),
            mlflow_password("churnops-admin"),
            *(mlflow_password(user) for user in MLFLOW_LOGINS),
        }
    ),
    "builder": frozenset(),
    # The build account runs third-party code (`make test`): it signs nothing, it asks the attestor to.
    "deployer": frozenset(
        {
            ("project", "", "roles/cloudbuild.workerPoolUser"),
            ("project", "", "roles/container.clusterViewer"),
            ("project", "", "roles/logging.logWriter"),
            ("project", "", "roles/monitoring.viewer"),
            ("repository", names.REGISTRY_REPOSITORY, "roles/artifactregistry.writer"),
            ("bucket", "build", OBJECT_USER),
            ("bucket", "badges", OBJECT_USER),
            ("secret", names.SECRET_ALERT_WEBHOOK, ACCESSOR),
            mlflow_password("churnops-deployer"),
            ("topic", platform.ATTEST_TOPIC, "roles/pubsub.publisher"),
        }
    ),
    # The attestation build (cloudbuild.attest.yaml): pull and scan by digest, sign, record the outcome.
    "attestor": frozenset(
        {
            ("project", "", "roles/cloudbuild.workerPoolUser"),
            ("project", "", "roles/containeranalysis.occurrences.editor"),
            ("project", "", "roles/logging.logWriter"),
            ("repository", names.REGISTRY_REPOSITORY, "roles/artifactregistry.reader"),
            ("bucket", "build", OBJECT_USER),
            ("kms-key", names.ATTESTOR_KEY, "roles/cloudkms.signerVerifier"),
            ("note", names.ATTESTOR, "roles/containeranalysis.notes.attacher"),
            ("attestor", names.ATTESTOR, "roles/binaryauthorization.attestorsViewer"),
            ("attestor", names.ATTESTOR, "roles/binaryauthorization.attestorsVerifier"),
        }
    ),
    "nodes": frozenset(
        {
            ("project", "", "roles/container.defaultNodeServiceAccount"),
            ("repository", names.REGISTRY_REPOSITORY, "roles/artifactregistry.reader"),
        }
    ),
}


def _resource(kind: str, inputs: dict[str, str], stack: StackRun) -> str:
    if kind == "project":
        assert inputs["project"] == stack.project
        return ""
    if kind == "bucket":
        purpose = inputs["bucket"].removeprefix(f"{stack.project}-churnops-")
        assert purpose in names.BUCKET_PURPOSES, inputs["bucket"]
        return purpose
    if kind == "repository":  # the name is the repository resource's output: the program's one repository
        return str(stack.one("gcp:artifactregistry/repository:Repository").inputs["repositoryId"])
    key = {"secret": "secretId", "kms-key": "cryptoKeyId", "note": "note", "attestor": "attestor", "topic": "topic"}[
        kind
    ]
    return inputs[key].rsplit("/", 1)[-1]


KINDS = {
    "gcp:projects/iAMMember:IAMMember": "project",
    "gcp:storage/bucketIAMMember:BucketIAMMember": "bucket",
    "gcp:secretmanager/secretIamMember:SecretIamMember": "secret",
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": "kms-key",
    "gcp:containeranalysis/noteIamMember:NoteIamMember": "note",
    "gcp:binaryauthorization/attestorIamMember:AttestorIamMember": "attestor",
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": "repository",
    "gcp:pubsub/topicIAMMember:TopicIAMMember": "topic",
}


def held(stack: StackRun) -> dict[str, set[Grant]]:
    """Google service account e-mail -> every (kind, resource, role) granted to it in the program."""
    grants: dict[str, set[Grant]] = {}
    for resource in stack.resources:
        role, member = resource.inputs.get("role"), resource.inputs.get("member")
        if not (isinstance(role, str) and isinstance(member, str)) or resource.type.startswith(
            "gcp:serviceaccount/"  # Workload Identity bindings: checked below, from the manifests' side
        ):
            continue
        assert resource.type in KINDS, f"a grant of a kind this test does not read: {resource.type}"
        if not member.startswith("serviceAccount:"):
            continue
        kind = KINDS[resource.type]
        grants.setdefault(member.removeprefix("serviceAccount:"), set()).add(
            (kind, _resource(kind, resource.inputs, stack), role)
        )
    return grants


def test_the_table_names_every_declared_identity() -> None:
    assert set(EXPECTED) == set(platform.IDENTITIES)


# Google-managed service agents and the one grant each gets: the GKE agent encrypts the cluster's
# secrets, the Cloud Build agent reads the GitHub connection's token.
AGENTS: dict[str, frozenset[Grant]] = {
    f"service-{PROJECT_NUMBER}@container-engine-robot.iam.gserviceaccount.com": frozenset(
        {("kms-key", "gke-secrets", "roles/cloudkms.cryptoKeyEncrypterDecrypter")}
    ),
    f"service-{PROJECT_NUMBER}@gcp-sa-cloudbuild.iam.gserviceaccount.com": frozenset(
        {("secret", names.SECRET_GITHUB_TOKEN, ACCESSOR)}
    ),
}


def test_each_identity_holds_exactly_its_grants(stack: StackRun) -> None:
    grants = held(stack)
    by_email = {identity.email(stack.project): key for key, identity in platform.IDENTITIES.items()}
    unknown = set(grants) - set(by_email) - set(AGENTS)
    assert not unknown, f"grants to accounts no identity declares: {unknown}"
    for email, key in by_email.items():
        assert grants.get(email, set()) == EXPECTED[key], key
    for agent, expected in AGENTS.items():
        assert grants.get(agent, set()) == expected, agent


def workload_identity(stack: StackRun) -> dict[tuple[str, str], str]:
    """(namespace, Kubernetes service account) -> the identity key it acts as."""
    by_email = {identity.email(stack.project): key for key, identity in platform.IDENTITIES.items()}
    bound = {}
    for binding in stack.of_type("gcp:serviceaccount/iAMMember:IAMMember"):
        member = binding.inputs["member"]
        namespace, ksa = member.split("[", 1)[1].rstrip("]").split("/")
        bound[(namespace, ksa)] = by_email[binding.inputs["serviceAccountId"].rsplit("/", 1)[-1]]
    return bound


def serving_accounts() -> dict[str, str]:
    """Component of the InferenceService (predictor, transformer) -> the Kubernetes account its pods run as."""
    documents = yaml.safe_load_all((REPOSITORY / "manifests/base/inferenceservice.yaml").read_text(encoding="utf-8"))
    service = next(d for d in documents if d and d.get("kind") == "InferenceService")
    return {part: service["spec"][part]["serviceAccountName"] for part in ("predictor", "transformer")}


@pytest.mark.parametrize("environment", sorted(platform.SERVING_NAMESPACES))
def test_serving_pods_get_only_their_components_grants(stack: StackRun, environment: str) -> None:
    namespace = platform.SERVING_NAMESPACES[environment]
    overlay = yaml.safe_load((REPOSITORY / "manifests/overlays" / environment / "kustomization.yaml").read_text())
    assert overlay["namespace"] == namespace
    bound, grants = workload_identity(stack), held(stack)
    for part, ksa in serving_accounts().items():
        key = bound[(namespace, ksa)]
        assert key == f"{part}-{environment}"  # one identity per component and environment
        email = platform.IDENTITIES[key].email(stack.project)
        assert grants.get(email, set()) == EXPECTED[key]
    predictor = grants.get(platform.IDENTITIES[f"predictor-{environment}"].email(stack.project), set())
    assert not {g for g in predictor if g[0] == "secret"}, "the predictor reads no secret (no key, no lake)"


SIGNING_ROLES = {
    "roles/cloudkms.signer",
    "roles/cloudkms.signerVerifier",
    "roles/containeranalysis.notes.attacher",
    "roles/containeranalysis.occurrences.editor",
}


def test_only_the_attestor_can_sign_and_the_accounts_that_run_builds_cannot(stack: StackRun) -> None:
    """Binary Authorization trusts the attestation only as far as the signer: no identity that runs
    `make test` (third-party code), deploys, or serves holds a signing role; the attestor does."""
    grants = held(stack)
    for key, identity in platform.IDENTITIES.items():
        roles = {role for _, _, role in grants.get(identity.email(stack.project), set())}
        if key == "attestor":
            assert SIGNING_ROLES - {"roles/cloudkms.signer"} <= roles  # signerVerifier includes signer
        else:
            assert not roles & SIGNING_ROLES, f"{key} may sign: {sorted(roles & SIGNING_ROLES)}"


def test_the_attestation_trigger_runs_as_the_attestor_and_no_other_trigger_does(stack: StackRun) -> None:
    attestor = platform.identity("attestor").email(stack.project)
    by_account: dict[str, set[str]] = {}
    for trigger in stack.of_type("gcp:cloudbuild/trigger:Trigger"):
        inputs = trigger.inputs
        build_file = inputs.get("filename") or inputs["gitFileSource"]["path"]
        by_account.setdefault(inputs["serviceAccount"].rsplit("/", 1)[-1], set()).add(build_file)
    assert by_account[attestor] == {platform.BUILD_ATTEST}
    others = set().union(*(files for account, files in by_account.items() if account != attestor))
    assert platform.BUILD_ATTEST not in others
    # each config runs as the identity the declaration gives it (and the config file names)
    for account, files in by_account.items():
        for build_file in files:
            assert platform.identity(platform.BUILD_IDENTITY[build_file]).email(stack.project) == account
