"""The controls the churnops platform must keep, as CrossGuard resource validations.

Each ``check_*`` function receives ``(resource_type, props)`` as the engine sends them (camelCase
property names, as registered) and returns the violation messages: an empty list means the resource
complies. :data:`POLICIES` wraps them as mandatory ``ResourceValidationPolicy`` objects; the pack in
``__main__.py`` serves them during ``pulumi preview``/``up --policy-pack infra/policy``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
SERVICE_ACCOUNT_KEY = "gcp:serviceaccount/key:Key"
BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_IAM_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
TRIGGER = "gcp:cloudbuild/trigger:Trigger"
SQL_INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
BINAUTHZ_POLICY = "gcp:binaryauthorization/policy:Policy"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
HELM_CHART_V4 = "kubernetes:helm.sh/v4:Chart"
KUSTOMIZE_DIRECTORY = "kubernetes:kustomize/v2:Directory"

PRIMITIVE_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"
# The one public bucket: <project>-churnops-badges (the CI status badge), readable by allUsers through
# one member grant of this role, with uniform access; nothing else may be public.
PUBLIC_BUCKET = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]-churnops-badges$")
PUBLIC_READ_ROLE = "roles/storage.objectViewer"
# An exact release: 1.2.3 or v1.2.3 (optionally with a pre-release), never a range, a wildcard or "latest".
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")
# The Compute Engine default account, and the legacy Cloud Build account.
DEFAULT_ACCOUNT = re.compile(
    r"^(default|\d+-compute@developer\.gserviceaccount\.com|\d+@cloudbuild\.gserviceaccount\.com)$"
)
ENFORCING_BINAUTHZ_MODES = frozenset(
    {"PROJECT_SINGLETON_POLICY_ENFORCE", "POLICY_BINDINGS", "POLICY_BINDINGS_AND_PROJECT_SINGLETON_POLICY_ENFORCE"}
)
SECURE_SQL_MODES = frozenset({"ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"})

# The platform's Google service accounts (churnops/platform/declaration.py), by account id.
ACCOUNT = r"serviceAccount:{}@[a-z][a-z0-9-]{{4,28}}[a-z0-9]\.iam\.gserviceaccount\.com"
PREDICTOR = re.compile(ACCOUNT.format(r"churnops-predictor-[a-z]+"))
ARTIFACTS_BUCKET = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]-churnops-artifacts$")
# Project-level roles, the only ones that have no narrower resource: who may hold each.
PROJECT_ROLES: dict[str, re.Pattern[str]] = {
    "roles/container.defaultNodeServiceAccount": re.compile(ACCOUNT.format("churnops-nodes")),
    "roles/container.clusterViewer": re.compile(ACCOUNT.format("churnops-deployer")),
    "roles/logging.logWriter": re.compile(ACCOUNT.format("churnops-(deployer|attestor)")),
    "roles/monitoring.viewer": re.compile(ACCOUNT.format("churnops-deployer")),
    "roles/cloudbuild.workerPoolUser": re.compile(ACCOUNT.format("churnops-(deployer|attestor)")),
    # attestations and SBOM references are occurrences: only the signer creates them
    "roles/containeranalysis.occurrences.editor": re.compile(ACCOUNT.format("churnops-attestor")),
}
PROJECT_IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"
# Secrets that re-identify customers or open the lake, and the only workloads that may read each.
_PIPELINES_AND_TRANSFORMERS = r"churnops-(ingest|training|scoring|purge|transformer-[a-z]+)"
SENSITIVE_SECRETS: dict[str, re.Pattern[str]] = {
    "churnops-tokenization-key": re.compile(ACCOUNT.format(_PIPELINES_AND_TRANSFORMERS)),
    "churnops-lakefs-access-key-id": re.compile(
        ACCOUNT.format(r"churnops-(ingest|training|scoring|purge|transformer-[a-z]+|lakefs)")
    ),
    "churnops-lakefs-secret-access-key": re.compile(
        ACCOUNT.format(r"churnops-(ingest|training|scoring|purge|transformer-[a-z]+|lakefs)")
    ),
}
# Roles that sign or attach Binary Authorization attestations, or let an account be a Cloud Build
# trigger's identity: only the attestor, which runs no third-party code, holds them (never the build
# account that runs the tests).
SIGNING_ROLES = frozenset(
    {
        "roles/cloudkms.signer",
        "roles/cloudkms.signerVerifier",
        "roles/containeranalysis.notes.attacher",
        "roles/containeranalysis.occurrences.editor",
        "roles/binaryauthorization.attestorsVerifier",
    }
)
SIGNERS = re.compile(ACCOUNT.format(r"churnops-attestor"))
ATTESTOR_EMAIL = re.compile(r"churnops-attestor@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com")
# The one build config the attestor runs (churnops/platform/declaration.py BUILD_ATTEST).
ATTEST_BUILD = "cloudbuild.attest.yaml"
SERVICE_ACCOUNT_IAM = "gcp:serviceaccount/"  # IAMMember, IAMBinding, IAMPolicy on one service account
# MLflow (churnops/platform/declaration.py): the release, the project's authorization function (MLflow's
# basic-auth check, also reading the credentials a request through the API server's proxy forwards), the
# default permissions that keep writes to a resource's creator and its grantees, and each user's password
# secret, named after the service account that logs in as that user.
MLFLOW_RELEASE = "mlflow"
MLFLOW_AUTHORIZATION_FUNCTION = "churnops.platform.mlflow_server_auth:authenticate_request"
MLFLOW_DEFAULT_PERMISSIONS = frozenset({"READ", "NO_PERMISSIONS"})
MLFLOW_PASSWORD = re.compile(r"^churnops-mlflow-password-(?P<user>[a-z][a-z0-9-]+)$")
MLFLOW_SERVER = re.compile(ACCOUNT.format("churnops-mlflow"))

Props = Mapping[str, Any]
Check = Callable[[str, Props], list[str]]


def _get(props: Any, *path: str) -> Any:
    """``props[path[0]][path[1]]...``, or None when any step is missing (lists of one item are unwrapped)."""
    value = props
    for key in path:
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _is_iam_type(resource_type: str) -> bool:
    module_type = resource_type.rsplit(":", 1)[-1]
    return resource_type.startswith("gcp:") and (
        "IamMember" in module_type
        or "IAMMember" in module_type
        or "IamBinding" in module_type
        or "IAMBinding" in module_type
        or "IamPolicy" in module_type
        or "IAMPolicy" in module_type
    )


def _bindings(resource_type: str, props: Props) -> list[tuple[str, list[str]]]:
    """(role, members) pairs an IAM resource grants, whether member, binding or whole policy."""
    if not _is_iam_type(resource_type):
        return []
    if "policyData" in props:
        try:
            policy = json.loads(props["policyData"]) if isinstance(props["policyData"], str) else props["policyData"]
        except json.JSONDecodeError:
            return [("<unparseable policyData>", [])]
        return [(b.get("role", ""), list(b.get("members", []))) for b in (policy or {}).get("bindings", [])]
    role = props.get("role")
    if not isinstance(role, str):
        return []
    if "members" in props:
        return [(role, list(props.get("members") or []))]
    return [(role, [props["member"]] if isinstance(props.get("member"), str) else [])]


def check_private_cluster(resource_type: str, props: Props) -> list[str]:
    """Nodes have no public IP; a public control-plane endpoint is reachable only from listed networks."""
    if resource_type != CLUSTER:
        return []
    problems = []
    if _get(props, "privateClusterConfig", "enablePrivateNodes") is not True:
        problems.append("GKE nodes must be private (privateClusterConfig.enablePrivateNodes = true)")
    if _get(props, "privateClusterConfig", "enablePrivateEndpoint") is not True:
        blocks = _get(props, "masterAuthorizedNetworksConfig", "cidrBlocks") or []
        if not blocks:
            problems.append("a public control-plane endpoint needs masterAuthorizedNetworksConfig.cidrBlocks")
        for block in blocks:
            cidr = block.get("cidrBlock", "") if isinstance(block, Mapping) else ""
            try:
                open_to_all = ipaddress.ip_network(cidr).prefixlen == 0
            except ValueError:
                open_to_all = True
            if open_to_all:
                problems.append(f"authorized network {cidr!r} opens the control plane to everyone")
        if _get(props, "masterAuthorizedNetworksConfig", "gcpPublicCidrsAccessEnabled") is True:
            problems.append("the control plane must not accept every Google Cloud public IP")
    return problems


def check_workload_identity(resource_type: str, props: Props) -> list[str]:
    """Pods get Google identities only through Workload Identity and the GKE metadata server."""
    problems = []
    if resource_type == CLUSTER:
        pool = _get(props, "workloadIdentityConfig", "workloadPool")
        if not isinstance(pool, str) or not pool.endswith(".svc.id.goog"):
            problems.append(
                "Workload Identity must be enabled (workloadIdentityConfig.workloadPool = <project>.svc.id.goog)"
            )
    if resource_type in (CLUSTER, NODE_POOL) and _get(props, "nodeConfig") is not None:
        if _get(props, "nodeConfig", "workloadMetadataConfig", "mode") != "GKE_METADATA":
            problems.append("nodes must expose the GKE metadata server (workloadMetadataConfig.mode = GKE_METADATA)")
    return problems


def check_shielded_nodes(resource_type: str, props: Props) -> list[str]:
    """Shielded GKE nodes with secure boot and integrity monitoring."""
    problems = []
    if resource_type == CLUSTER and props.get("enableShieldedNodes") is False:
        problems.append("enableShieldedNodes must not be false")
    if resource_type in (CLUSTER, NODE_POOL) and _get(props, "nodeConfig") is not None:
        shielded = _get(props, "nodeConfig", "shieldedInstanceConfig") or {}
        if shielded.get("enableSecureBoot") is not True or shielded.get("enableIntegrityMonitoring") is False:
            problems.append("nodes need secure boot and integrity monitoring (nodeConfig.shieldedInstanceConfig)")
    return problems


def check_network_policy(resource_type: str, props: Props) -> list[str]:
    """NetworkPolicy is enforced: Dataplane V2, or the legacy network-policy add-on."""
    if resource_type != CLUSTER:
        return []
    if props.get("datapathProvider") == "ADVANCED_DATAPATH" or _get(props, "networkPolicy", "enabled") is True:
        return []
    return ["NetworkPolicy must be enforced (datapathProvider = ADVANCED_DATAPATH)"]


def check_binary_authorization(resource_type: str, props: Props) -> list[str]:
    """Binary Authorization admits only images the project policy trusts, and the policy blocks the rest."""
    if resource_type == BINAUTHZ_POLICY:
        rule = _get(props, "defaultAdmissionRule") or {}
        problems = []
        if rule.get("evaluationMode") not in ("REQUIRE_ATTESTATION", "ALWAYS_DENY"):
            mode = rule.get("evaluationMode")
            problems.append(f"the default admission rule must deny or require attestations, not {mode!r}")
        if rule.get("enforcementMode") != "ENFORCED_BLOCK_AND_AUDIT_LOG":
            problems.append("the default admission rule must block (enforcementMode = ENFORCED_BLOCK_AND_AUDIT_LOG)")
        return problems
    if resource_type != CLUSTER:
        return []
    mode = _get(props, "binaryAuthorization", "evaluationMode")
    if mode in ENFORCING_BINAUTHZ_MODES:
        return []
    return [f"Binary Authorization must enforce a policy (binaryAuthorization.evaluationMode is {mode!r})"]


def check_secrets_encryption(resource_type: str, props: Props) -> list[str]:
    """Kubernetes Secrets are encrypted in etcd with a Cloud KMS key (application-layer encryption)."""
    if resource_type != CLUSTER:
        return []
    if _get(props, "databaseEncryption", "state") == "ENCRYPTED" and _get(props, "databaseEncryption", "keyName"):
        return []
    return ["Secrets must be encrypted with a KMS key (databaseEncryption.state = ENCRYPTED, keyName set)"]


def check_node_service_account(resource_type: str, props: Props) -> list[str]:
    """Nodes run as a dedicated service account, never the Compute Engine default one."""
    if resource_type not in (CLUSTER, NODE_POOL):
        return []
    if resource_type == CLUSTER and _get(props, "nodeConfig") is None and props.get("removeDefaultNodePool"):
        return []
    account = _get(props, "nodeConfig", "serviceAccount")
    if not isinstance(account, str) or not account or DEFAULT_ACCOUNT.match(account):
        return [f"nodes must run as a dedicated service account, not {account or 'the default one'!r}"]
    return []


def check_no_service_account_keys(resource_type: str, _props: Props) -> list[str]:
    """No long-lived service-account keys: workloads use Workload Identity, builds their own account."""
    if resource_type == SERVICE_ACCOUNT_KEY:
        return ["service-account keys are not allowed; use Workload Identity or an attached service account"]
    return []


def check_no_primitive_roles(resource_type: str, props: Props) -> list[str]:
    """No owner, editor or viewer grant anywhere."""
    return [
        f"primitive role {role} is not allowed; grant a predefined role on the narrowest resource"
        for role, _ in _bindings(resource_type, props)
        if role in PRIMITIVE_ROLES
    ]


def check_secret_access_scoped(resource_type: str, props: Props) -> list[str]:
    """Secret access is granted per secret to one identity, never on the project or to a group of members."""
    problems = []
    for role, members in _bindings(resource_type, props):
        if role != SECRET_ACCESSOR:
            continue
        if not resource_type.startswith("gcp:secretmanager/"):
            problems.append(f"{SECRET_ACCESSOR} must be granted on one secret, not through {resource_type}")
        elif "policyData" in props or len(members) != 1:
            problems.append(f"{SECRET_ACCESSOR} must be granted to exactly one identity per binding")
        elif not members[0].startswith("serviceAccount:"):
            problems.append(f"{SECRET_ACCESSOR} may be granted only to a service account, not {members[0]!r}")
    return problems


def check_project_roles(resource_type: str, props: Props) -> list[str]:
    """Project-level roles only where no narrower resource exists, each to the one identity that needs it."""
    if resource_type != PROJECT_IAM_MEMBER:
        return []
    problems = []
    for role, members in _bindings(resource_type, props):
        allowed = PROJECT_ROLES.get(role)
        for member in members:
            if allowed is None or not allowed.fullmatch(member):
                problems.append(f"project-level {role} must not be granted to {member!r}; grant on the resource")
    return problems


def check_predictor_reads_artifacts_only(resource_type: str, props: Props) -> list[str]:
    """A predictor identity may only read the artifacts bucket: no secret, no lake, no project role."""
    problems = []
    for role, members in _bindings(resource_type, props):
        if not any(PREDICTOR.fullmatch(member) for member in members):
            continue
        bucket = props.get("bucket")
        if not (
            resource_type == BUCKET_IAM_MEMBER
            and role == PUBLIC_READ_ROLE
            and isinstance(bucket, str)
            and ARTIFACTS_BUCKET.match(bucket)
        ):
            problems.append(f"a predictor identity reads model artifacts only; not {role} through {resource_type}")
    return problems


def check_sensitive_secret_readers(resource_type: str, props: Props) -> list[str]:
    """The tokenization key and the lakeFS keys are read only by the workloads that use them."""
    secret = props.get("secretId")
    if not resource_type.startswith("gcp:secretmanager/") or not isinstance(secret, str):
        return []
    readers = SENSITIVE_SECRETS.get(secret.rsplit("/", 1)[-1])
    if readers is None:
        return []
    return [
        f"{member!r} must not read {secret.rsplit('/', 1)[-1]}"
        for _, members in _bindings(resource_type, props)
        for member in members
        if not readers.fullmatch(member)
    ]


def check_attestation_signers(resource_type: str, props: Props) -> list[str]:
    """Only the attestation signer may sign with a key or attach to a note; never the test-running builder."""
    return [
        f"{role} must not be granted to {member!r}"
        for role, members in _bindings(resource_type, props)
        if role in SIGNING_ROLES
        for member in members
        if not SIGNERS.fullmatch(member)
    ]


def _trigger_build_file(props: Props) -> str | None:
    """The build config a trigger runs from the repository, or None for an inline build."""
    if props.get("build"):
        return None
    path = props.get("filename") or _get(props, "gitFileSource", "path")
    return path if isinstance(path, str) else None


def check_attestor_runs_only_the_attestation_build(resource_type: str, props: Props) -> list[str]:
    """The attestor account runs only the attestation build (cloudbuild.attest.yaml, from the repository),
    the attestation build runs only as the attestor, and nobody may act as or impersonate the attestor
    (which would let an account that runs third-party code sign)."""
    problems = []
    if resource_type == TRIGGER:
        account = props.get("serviceAccount")
        email = account.rsplit("/", 1)[-1] if isinstance(account, str) else ""
        as_attestor = bool(ATTESTOR_EMAIL.fullmatch(email))
        runs_attestation = _trigger_build_file(props) == ATTEST_BUILD
        if as_attestor and not runs_attestation:
            problems.append(f"a trigger running as the attestor must run {ATTEST_BUILD} from the repository")
        if runs_attestation and not as_attestor:
            problems.append(f"{ATTEST_BUILD} must run as the attestor account, not {email or 'the default'!r}")
    if resource_type.startswith(SERVICE_ACCOUNT_IAM) and _is_iam_type(resource_type):
        target = props.get("serviceAccountId")
        if isinstance(target, str) and ATTESTOR_EMAIL.fullmatch(target.rsplit("/", 1)[-1]):
            problems.extend(
                f"{role} on the attestor account must not be granted to {member!r}"
                for role, members in _bindings(resource_type, props)
                for member in members
            )
    return problems


def _public_badge_read(resource_type: str, props: Props, role: str, members: list[str]) -> bool:
    """The one public grant allowed: allUsers objectViewer, as one member, on the badge bucket."""
    return (
        resource_type == BUCKET_IAM_MEMBER
        and members == ["allUsers"]
        and role == PUBLIC_READ_ROLE
        and "condition" not in props
        and isinstance(props.get("bucket"), str)
        and bool(PUBLIC_BUCKET.match(props["bucket"]))
    )


def check_bucket_private(resource_type: str, props: Props) -> list[str]:
    """Buckets use uniform access, prevent public access and grant nothing to allUsers; only the badge
    bucket (<project>-churnops-badges) may be readable by allUsers (objectViewer, nothing more)."""
    problems = []
    if resource_type == BUCKET:
        if props.get("uniformBucketLevelAccess") is not True:
            problems.append("buckets must use uniform bucket-level access")
        name = props.get("name")
        public_badges = isinstance(name, str) and bool(PUBLIC_BUCKET.match(name))
        if props.get("publicAccessPrevention") != "enforced" and not public_badges:
            problems.append("buckets must enforce public access prevention")
    for role, members in _bindings(resource_type, props):
        public = PUBLIC_MEMBERS.intersection(members)
        if public and not _public_badge_read(resource_type, props, role, members):
            problems.append(f"{role} must not be granted to {', '.join(sorted(public))}")
    return problems


def check_build_service_account(resource_type: str, props: Props) -> list[str]:
    """Cloud Build triggers run as a dedicated service account, not the legacy Cloud Build one."""
    if resource_type != TRIGGER:
        return []
    account = props.get("serviceAccount")
    email = account.rsplit("/", 1)[-1] if isinstance(account, str) else ""
    if not email or DEFAULT_ACCOUNT.match(email):
        return [f"Cloud Build triggers must set serviceAccount to a dedicated account, not {email or 'the default'!r}"]
    return []


def check_pinned_versions(resource_type: str, props: Props) -> list[str]:
    """Helm charts and remote kustomizations are pinned to an exact release."""
    if resource_type in (HELM_RELEASE, HELM_CHART_V4):
        version = props.get("version")
        if not isinstance(version, str) or not EXACT_VERSION.match(version):
            return [f"chart {props.get('chart')!r} must be pinned to an exact version, not {version!r}"]
        return []
    if resource_type == KUSTOMIZE_DIRECTORY:
        directory = props.get("directory")
        if isinstance(directory, str) and urlparse(directory).scheme:
            match = re.search(r"/tree/([^/]+)/|[?&]ref=([^&]+)", directory)
            ref = next((group for group in match.groups() if group), "") if match else ""
            if not EXACT_VERSION.match(ref):
                return [f"remote kustomization {directory!r} must be pinned to a release tag, not {ref or 'HEAD'!r}"]
    return []


def check_mlflow_authenticates(resource_type: str, props: Props) -> list[str]:
    """The MLflow release runs the basic-auth app with the project's authorization function, reads by default at
    most, and keeps its users in Postgres."""
    if resource_type not in (HELM_RELEASE, HELM_CHART_V4) or props.get("name") != MLFLOW_RELEASE:
        return []
    auth = _get(props, "values", "auth") or {}
    problems = []
    if auth.get("enabled") is not True or auth.get("appName", "basic-auth") != "basic-auth":
        problems.append("MLflow must run its basic-auth app (values.auth.enabled, appName basic-auth)")
    if auth.get("authorizationFunction") != MLFLOW_AUTHORIZATION_FUNCTION:
        problems.append(f"MLflow's authorization function must be {MLFLOW_AUTHORIZATION_FUNCTION}")
    if auth.get("defaultPermission") not in MLFLOW_DEFAULT_PERMISSIONS:
        problems.append(f"MLflow's default permission must be one of {sorted(MLFLOW_DEFAULT_PERMISSIONS)}")
    if _get(auth, "postgres", "enabled") is not True:
        problems.append("MLflow's users and permissions must live in Postgres (values.auth.postgres.enabled)")
    if auth.get("adminPassword") or _get(auth, "postgres", "password"):
        problems.append("MLflow's passwords come from a Secret, never from the release's values")
    if _get(props, "values", "ldapAuth", "enabled"):
        problems.append("MLflow's LDAP auth replaces the basic-auth app: leave values.ldapAuth disabled")
    return problems


def check_mlflow_password_readers(resource_type: str, props: Props) -> list[str]:
    """An MLflow user's password is read only by the service account of that name and by MLflow's server."""
    secret = props.get("secretId")
    if not resource_type.startswith("gcp:secretmanager/") or not isinstance(secret, str):
        return []
    match = MLFLOW_PASSWORD.fullmatch(secret.rsplit("/", 1)[-1])
    if match is None:
        return []
    owner = re.compile(ACCOUNT.format(re.escape(match.group("user"))))
    return [
        f"{member!r} must not read {match.group(0)}"
        for _, members in _bindings(resource_type, props)
        for member in members
        if not (owner.fullmatch(member) or MLFLOW_SERVER.fullmatch(member))
    ]


def check_sql_private(resource_type: str, props: Props) -> list[str]:
    """Cloud SQL has no public IP and accepts only encrypted connections."""
    if resource_type != SQL_INSTANCE:
        return []
    problems = []
    ip = _get(props, "settings", "ipConfiguration") or {}
    if ip.get("ipv4Enabled") is not False:
        problems.append("Cloud SQL must not have a public IP (settings.ipConfiguration.ipv4Enabled = false)")
    if not ip.get("privateNetwork"):
        problems.append("Cloud SQL needs a private network (settings.ipConfiguration.privateNetwork)")
    if ip.get("sslMode") not in SECURE_SQL_MODES:
        problems.append(f"Cloud SQL must require TLS (sslMode in {sorted(SECURE_SQL_MODES)})")
    return problems


@dataclass(frozen=True)
class Control:
    """A named control: its check and what it protects."""

    name: str
    check: Check

    @property
    def description(self) -> str:
        """The check's docstring (what the control requires)."""
        return (self.check.__doc__ or self.name).strip()


CONTROLS: tuple[Control, ...] = (
    Control("gke-private-cluster", check_private_cluster),
    Control("gke-workload-identity", check_workload_identity),
    Control("gke-shielded-nodes", check_shielded_nodes),
    Control("gke-network-policy", check_network_policy),
    Control("gke-binary-authorization", check_binary_authorization),
    Control("gke-secrets-encryption", check_secrets_encryption),
    Control("gke-node-service-account", check_node_service_account),
    Control("no-service-account-keys", check_no_service_account_keys),
    Control("no-primitive-roles", check_no_primitive_roles),
    Control("secret-access-per-secret", check_secret_access_scoped),
    Control("project-roles-allowlisted", check_project_roles),
    Control("predictor-reads-artifacts-only", check_predictor_reads_artifacts_only),
    Control("sensitive-secret-readers", check_sensitive_secret_readers),
    Control("attestation-signers", check_attestation_signers),
    Control("attestor-runs-only-attestation", check_attestor_runs_only_the_attestation_build),
    Control("buckets-private", check_bucket_private),
    Control("cloudbuild-dedicated-account", check_build_service_account),
    Control("pinned-versions", check_pinned_versions),
    Control("cloudsql-private", check_sql_private),
    Control("mlflow-authenticates", check_mlflow_authenticates),
    Control("mlflow-password-readers", check_mlflow_password_readers),
)


def _validation(check: Check) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, args.props):
            report_violation(message, None)

    return validate


POLICIES = [
    ResourceValidationPolicy(
        name=control.name,
        description=control.description,
        validate=_validation(control.check),
        enforcement_level=EnforcementLevel.MANDATORY,
    )
    for control in CONTROLS
]
