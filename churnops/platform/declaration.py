"""The platform's names, addresses and versions, declared once.

Every part that needs one of these reads it from here: the Pulumi program (``infra/pulumi``, which
imports this file by path in its own environment, so this module uses the standard library only),
the manifest renderer (``churnops.deploy.render``), the settings' GKE profile
(``churnops.platform.settings``), the pipelines (``pipelines/common.py``), and the tests that hold
the build configs (``cloudbuild*.yaml``, which cannot import Python) and the kustomize manifests to
these values. Change a value here and the tests say which YAML must follow.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---- environments and namespaces -------------------------------------------------------------

# Serving environments: each is a namespace of its own in the cluster.
ENVIRONMENTS: tuple[str, ...] = ("staging", "production")
SERVING_NAMESPACES: dict[str, str] = {"staging": "churnops-staging", "production": "churnops-production"}
NS_KUBEFLOW = "kubeflow"  # Kubeflow Pipelines and every pipeline task
NS_LAKEFS = "lakefs"
NS_MLFLOW = "mlflow"
NS_KNATIVE_SERVING = "knative-serving"  # Knative Serving, with Kourier (its ingress)
NS_KNATIVE_OPERATOR = "knative-operator"
NS_KSERVE = "kserve"
NS_CERT_MANAGER = "cert-manager"
NS_EXTERNAL_SECRETS = "external-secrets"
# Namespaces GKE creates: DNS, and the Managed Service for Prometheus collectors.
NS_KUBE_SYSTEM = "kube-system"
NS_GMP = "gmp-system"

# Pod Security Admission level per namespace the platform creates: our own workloads meet
# "restricted"; the upstream platform services are held to "baseline".
NAMESPACES: dict[str, str] = {
    NS_KUBEFLOW: "baseline",
    **{namespace: "restricted" for namespace in SERVING_NAMESPACES.values()},
    NS_LAKEFS: "baseline",
    NS_MLFLOW: "baseline",
    NS_CERT_MANAGER: "baseline",
    NS_EXTERNAL_SECRETS: "baseline",
    NS_KNATIVE_OPERATOR: "baseline",
    NS_KNATIVE_SERVING: "baseline",
    NS_KSERVE: "baseline",
}

# ---- identities --------------------------------------------------------------------------------

WI_ANNOTATION = "iam.gke.io/gcp-service-account"


@dataclass(frozen=True)
class Identity:
    """A Google service account and, for a workload in the cluster, the Kubernetes service
    account that acts as it through Workload Identity."""

    key: str
    gsa: str  # account id: <gsa>@<project>.iam.gserviceaccount.com
    description: str
    namespace: str | None = None
    ksa: str | None = None
    environment: str | None = None

    def email(self, project: str) -> str:
        """The Google service account's e-mail in ``project``."""
        return gsa_email(self.gsa, project)


def _serving(workload: str, env: str, description: str) -> Identity:
    short = "prod" if env == "production" else env  # account ids are at most 30 characters
    return Identity(
        f"{workload}-{env}",
        f"churnops-{workload}-{short}",
        f"{description} ({env})",
        SERVING_NAMESPACES[env],
        f"churnops-{workload}",
        env,
    )


# The pipelines and the identity each runs as (the drift check retrains: the training identity; the aggregates
# backfill writes on the lake's main what the ingest writes there, the aggregates of events partitions, and nothing
# else: the ingest identity). The purge completes erasures in the raw bucket too: its identity is the only pipeline
# one that may change it.
PIPELINES: tuple[str, ...] = ("ingest", "training", "scoring", "drift", "purge", "aggregates-backfill")
PIPELINE_IDENTITY: dict[str, str] = {
    "ingest": "pipeline-ingest",
    "training": "pipeline-training",
    "scoring": "pipeline-scoring",
    "drift": "pipeline-training",
    "purge": "pipeline-purge",
    "aggregates-backfill": "pipeline-ingest",
}

_IDENTITIES: tuple[Identity, ...] = (
    *(_serving("predictor", env, "KServe predictor: reads model artifacts") for env in ENVIRONMENTS),
    *(_serving("transformer", env, "KServe by-customer transformer") for env in ENVIRONMENTS),
    Identity("pipeline-ingest", "churnops-ingest", "ingest pipeline tasks", NS_KUBEFLOW, "churnops-ingest"),
    Identity(
        "pipeline-training", "churnops-training", "training and drift pipeline tasks", NS_KUBEFLOW, "churnops-training"
    ),
    Identity("pipeline-scoring", "churnops-scoring", "scoring pipeline tasks", NS_KUBEFLOW, "churnops-scoring"),
    Identity("pipeline-purge", "churnops-purge", "erasure purge pipeline tasks", NS_KUBEFLOW, "churnops-purge"),
    Identity("lakefs", "churnops-lakefs", "lakeFS server", NS_LAKEFS, "lakefs"),
    Identity("mlflow", "churnops-mlflow", "MLflow tracking server", NS_MLFLOW, "mlflow"),
    Identity("builder", "churnops-builder", "Cloud Build: test, build and scan images"),
    # Cloud Build runs its deploy, promotion and training builds as the deployer; in-cluster deploy
    # jobs act as it through the churnops-deployer Kubernetes service account of each environment.
    Identity("deployer", "churnops-deployer", "Cloud Build CI/CD, promotion and training; deploy jobs"),
    Identity("attestor", "churnops-attestor", "signs Binary Authorization attestations"),
    Identity("nodes", "churnops-nodes", "GKE nodes (logs, metrics)"),
)
IDENTITIES: dict[str, Identity] = {identity.key: identity for identity in _IDENTITIES}
# The deployer's Kubernetes service account in each serving namespace (bound to the deployer GSA).
KSA_DEPLOYER = "churnops-deployer"
DEPLOYER_KSAS: tuple[tuple[str, str], ...] = tuple((ns, KSA_DEPLOYER) for ns in SERVING_NAMESPACES.values())
# The Role (and RoleBinding) the deployer holds in each namespace it acts in; Pulumi creates them.
DEPLOYER_ROLE = "churnops-deployer"
# KFP creates this account for its own pods; no pipeline runs as it.
KSA_KFP_RUNNER = "pipeline-runner"


def identity(key: str) -> Identity:
    """The identity called ``key``; a clear error for an unknown one."""
    try:
        return IDENTITIES[key]
    except KeyError as error:
        raise KeyError(f"no identity {key!r} is declared; known: {sorted(IDENTITIES)}") from error


def serving_identity(workload: str, env: str) -> Identity:
    """The predictor's or the transformer's identity in ``env`` (staging or production)."""
    return identity(f"{workload}-{env}")


def pipeline_service_accounts() -> dict[str, str]:
    """Kubernetes service account per pipeline (KFP runs every pod of a run under it)."""
    return {pipeline: str(identity(key).ksa) for pipeline, key in PIPELINE_IDENTITY.items()}


def gsa_email(account_id: str, project: str) -> str:
    """The e-mail of a service account created in ``project``."""
    return f"{account_id}@{project}.iam.gserviceaccount.com"


# ---- services and their addresses ---------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """A Kubernetes Service: its name, namespace and port (and the pod port behind it)."""

    name: str
    namespace: str
    port: int
    target_port: int | None = None
    path: str = ""

    @property
    def url(self) -> str:
        """The in-cluster URL."""
        return f"http://{self.name}.{self.namespace}.svc.cluster.local:{self.port}{self.path}"

    @property
    def proxy_address(self) -> str:
        """``k8s://<namespace>/<name>:<port>``: the service reached through the API server's proxy."""
        return f"k8s://{self.namespace}/{self.name}:{self.port}"

    @property
    def pod_port(self) -> int:
        """The port the pods behind the service listen on (what a NetworkPolicy must open)."""
        return self.target_port or self.port


MLFLOW = Service("mlflow", NS_MLFLOW, 5000)
LAKEFS = Service("lakefs", NS_LAKEFS, 8000, path="/api/v1")
KFP_API = Service("ml-pipeline", NS_KUBEFLOW, 8888)
KFP_API_GRPC_PORT = 8887  # the same Service's gRPC port: the pods of a run and KFP's controllers call it
KFP_UI = Service("ml-pipeline-ui", NS_KUBEFLOW, 80, target_port=3000)
# Kourier's cluster-local gateway: KServe's transformer reaches the predictor through it (port 80 ->
# the Envoy pods' 8081). Names and ports from net-kourier's config/300-kourier.yaml (vendored).
KOURIER_INTERNAL = Service("kourier-internal", NS_KNATIVE_SERVING, 80, target_port=8081)
KOURIER_GATEWAY_LABELS: dict[str, str] = {"app": "3scale-kourier-gateway"}
# KServe 0.15.2 labels the pods of every InferenceService component with the service's name and the
# component (pkg/constants/constants.go and the components' reconcilers; checked against the vendored
# source in tests/specs/upstream/kserve-v0.15.2). The NetworkPolicies select serving pods by them.
KSERVE_ISVC_LABEL = "serving.kserve.io/inferenceservice"
KSERVE_COMPONENT_LABEL = "component"
# Knative's activator sits in the data path of a revision scaled to (or near) zero.
ACTIVATOR_PORTS: tuple[int, ...] = (8012, 8013)
QUEUE_PROXY_METRICS_PORT = 9091
QUEUE_PROXY_PORT = 8012  # the queue-proxy's HTTP port in every revision pod (the revision's private Service)
SERVING_HTTP_PORT = 8080
# Ports of what the in-cluster services reach outside the cluster's pods.
DNS_PORT = 53  # kube-dns (GKE runs it in kube-system, its pods labelled k8s-app=kube-dns)
KUBE_DNS_LABELS: dict[str, str] = {"k8s-app": "kube-dns"}
POSTGRES_PORT = 5432  # Cloud SQL's private IP (MLflow's and lakeFS's metadata databases)
HTTPS_PORT = 443  # Google APIs through their private VIP, the Kubernetes API server, the alert webhook
# The GKE metadata server, which hands out Workload Identity tokens: (address, port) pairs a pod calling a
# Google API must reach.
GKE_METADATA_SERVER: tuple[tuple[str, int], ...] = (("169.254.169.254", 80), ("169.254.169.252", 988))
# Every pod of a KFP run (its drivers and its task pods) carries this label: KFP 2.17.0 sets it as the
# Workflow's podMetadata (backend/src/v2/compiler/argocompiler/argo.go; checked against the vendored file).
KFP_RUN_POD_LABELS: dict[str, str] = {"pipelines.kubeflow.org/v2_component": "true"}
# Pipeline tasks also carry the task's display name, so that a policy can single one out (only the
# failure alert sends to the internet: its webhook).
TASK_LABEL = "churnops.io/task"
ALERT_TASK = "alert-on-failure"

# ---- schedules ---------------------------------------------------------------------------------------

# The KFP recurring runs, by pipeline name (KFP's cron has a leading seconds field; UTC). Training has none: Cloud
# Scheduler starts it on each stack's `cicd.trainingSchedule` (infra/pulumi), which must fire at least
# TRAINING_LEAD before scoring (a test checks both stacks), so scoring and the drift check use that day's model.
# The aggregates backfill has none either: it is run by hand.
PIPELINE_CRONS: dict[str, str | None] = {
    "ingest": "0 5 * * * *",  # every hour at minute 5
    "training": None,
    "purge": "0 30 3 * * *",  # an erasure is completed within a day of its grace period's end
    "scoring": "0 0 4 * * *",
    "drift": "0 0 5 * * *",  # after scoring
    "aggregates-backfill": None,
}
TRAINING_LEAD_MINUTES = 60

# ---- configuration the workloads read -----------------------------------------------------------

LAKEFS_REPOSITORY = "churn-lake"
MLFLOW_EXPERIMENT = "churn"
REGISTERED_MODEL = "churn-classifier"
INFERENCE_SERVICE = "churn-predictor"
MODEL_NAME = "churn"  # the model's name in the V2 protocol


def serving_pod_labels(component: str | None = None) -> dict[str, str]:
    """The labels KServe sets on the pods of our InferenceService (of one ``component`` when given)."""
    labels = {KSERVE_ISVC_LABEL: INFERENCE_SERVICE}
    if component is not None:
        labels[KSERVE_COMPONENT_LABEL] = component
    return labels


# The ConfigMap every pipeline task gets as environment (each key the variable it sets); Pulumi
# creates it in kubeflow with :func:`pipeline_settings`.
CONFIG_MAP_PIPELINES = "churnops-settings"
PIPELINE_CONFIG_KEYS: tuple[str, ...] = (
    "CHURNOPS_PROFILE",
    "CHURNOPS_GCP_PROJECT",
    "CHURNOPS_RAW_BUCKET",
    "CHURNOPS_MLFLOW_TRACKING_URI",
    "CHURNOPS_MLFLOW_EXPERIMENT",
    "CHURNOPS_REGISTERED_MODEL",
    "CHURNOPS_LAKEFS_ENDPOINT",
    "CHURNOPS_LAKEFS_REPOSITORY",
    "CHURNOPS_TOKENIZATION_KEY_SECRET",
)

# Secret Manager secret ids.
SECRET_TOKENIZATION_KEY = "churnops-tokenization-key"
SECRET_ALERT_WEBHOOK = "churnops-alert-webhook-url"
SECRET_LAKEFS_ACCESS_KEY_ID = "churnops-lakefs-access-key-id"
SECRET_LAKEFS_SECRET_ACCESS_KEY = "churnops-lakefs-secret-access-key"
SECRET_LAKEFS_ENCRYPT_KEY = "churnops-lakefs-encrypt-key"
SECRET_LAKEFS_DB_PASSWORD = "churnops-lakefs-db-password"
SECRET_MLFLOW_DB_PASSWORD = "churnops-mlflow-db-password"
# A GitHub OAuth token (repo scope, of an account with admin rights on the repository) with which Cloud
# Build's repository connection reads the repository: created by hand once per project, before the first
# `pulumi up` (docs/infrastructure.md); only Cloud Build's service agent may read it.
SECRET_GITHUB_TOKEN = "churnops-github-oauth-token"


@dataclass(frozen=True)
class KubernetesSecret:
    """A Kubernetes Secret rendered from Secret Manager by External Secrets: its keys (each from one
    Secret Manager secret), the namespaces it exists in, and whose identity reads it there."""

    name: str
    keys: dict[str, str]  # key -> Secret Manager secret id


_LAKE_KEYS = {
    "lakefs-access-key-id": SECRET_LAKEFS_ACCESS_KEY_ID,
    "lakefs-secret-access-key": SECRET_LAKEFS_SECRET_ACCESS_KEY,
}
# In kubeflow: lakeFS keys and the alert webhook, for pipeline tasks.
SECRET_PIPELINES = KubernetesSecret("churnops-pipelines", {**_LAKE_KEYS, "alert-webhook-url": SECRET_ALERT_WEBHOOK})
# In each serving namespace: lakeFS keys, for the transformer.
SECRET_SERVING_LAKE = KubernetesSecret("churnops-serving-lake", dict(_LAKE_KEYS))
# Secret key -> environment variable of a pipeline task.
PIPELINE_SECRET_ENV: dict[str, str] = {
    "lakefs-access-key-id": "CHURNOPS_LAKEFS_ACCESS_KEY_ID",
    "lakefs-secret-access-key": "CHURNOPS_LAKEFS_SECRET_ACCESS_KEY",
    "alert-webhook-url": "CHURNOPS_ALERT_WEBHOOK_URL",
}

# ---- MLflow users ---------------------------------------------------------------------------------

# The tracking server runs MLflow's basic-auth app (default permission READ). Each user is named after the
# Google service account of the identity that logs in as it on the cluster; its password is the Secret
# Manager secret MLFLOW_PASSWORD_SECRET (locally a file of that name under <state_dir>/secrets/), which
# only that identity (and the MLflow server's, whose bootstrap creates the users) may read.
MLFLOW_ADMIN = "churnops-admin"
MLFLOW_PASSWORD_SECRET = "churnops-mlflow-password-{user}"
# The server's authorization function (churnops/platform/mlflow_server_auth.py): MLflow's basic-auth check,
# also reading the credentials a request through the API server's service proxy forwards.
MLFLOW_AUTHORIZATION_FUNCTION = "churnops.platform.mlflow_server_auth:authenticate_request"


@dataclass(frozen=True)
class MlflowUser:
    """An MLflow user: its name, whether it may move the registered model's aliases, and the identities
    that log in as it on the cluster."""

    name: str
    moves_aliases: bool
    identities: tuple[str, ...]


def _mlflow_user(key: str, moves_aliases: bool = False) -> MlflowUser:
    return MlflowUser(identity(key).gsa, moves_aliases, (key,))


# The training pipeline (and the drift check, which runs as it) and the deployer (promotion, canary,
# rollback) move aliases; the scoring pipeline and the erasure purge read the registry and the runs (the
# purge rewrites run artifacts in the artifacts bucket, not through the server); the serving user is the
# local model server's (models:/ URIs): on the cluster the predictor loads its model from the artifacts
# bucket and never calls MLflow, so no identity there holds its password.
MLFLOW_USERS: tuple[MlflowUser, ...] = (
    _mlflow_user(PIPELINE_IDENTITY["training"], moves_aliases=True),
    _mlflow_user("deployer", moves_aliases=True),
    _mlflow_user(PIPELINE_IDENTITY["scoring"]),
    _mlflow_user(PIPELINE_IDENTITY["purge"]),
    MlflowUser("churnops-serving", False, ()),
)


def mlflow_password_secret(user: str) -> str:
    """The secret (Secret Manager id; locally the file under ``<state_dir>/secrets/``) of ``user``'s password."""
    return MLFLOW_PASSWORD_SECRET.format(user=user)


# ---- node pools, images, buckets -------------------------------------------------------------------

POOL_LABEL = "cloud.google.com/gke-nodepool"  # GKE labels every node with its pool's name
POOL_TAINT_KEY = "churnops.io/pool"  # tainted pools: <key>=<pool>:NoSchedule
POOL_SYSTEM = "system"
POOL_PIPELINES = "pipelines"
POOL_SERVING = "serving"
NODE_POOLS: tuple[str, ...] = (POOL_SYSTEM, POOL_PIPELINES, POOL_SERVING)
TAINTED_POOLS: tuple[str, ...] = (POOL_PIPELINES, POOL_SERVING)

REGISTRY_REPOSITORY = "churnops"
IMAGE_COMPONENTS = "churnops-components"
IMAGE_SERVING = "churnops-serving"
IMAGES: tuple[str, ...] = (IMAGE_COMPONENTS, IMAGE_SERVING)
# The transformer's entry point in the serving image (the predictor keeps the image's own); the admission
# policy of the serving namespaces admits no other.
TRANSFORMER_COMMAND: tuple[str, ...] = ("python", "-m", "serving.transformer")

# Buckets: <project>-churnops-<purpose>. build: what a build produced (digests, SBOMs, reports,
# compiled pipelines); badges: the build status badge.
BUCKET_PURPOSES: tuple[str, ...] = ("raw", "lake", "artifacts", "build", "badges")


def bucket_name(project: str, purpose: str) -> str:
    """The bucket for ``purpose`` in ``project``."""
    if purpose not in BUCKET_PURPOSES:
        raise ValueError(f"no bucket purpose {purpose!r}; known: {list(BUCKET_PURPOSES)}")
    return f"{project}-churnops-{purpose}"


def registry(region: str, project: str) -> str:
    """The Artifact Registry repository images are pushed to."""
    return f"{region}-docker.pkg.dev/{project}/{REGISTRY_REPOSITORY}"


def pipeline_settings(project: str) -> dict[str, str]:
    """The data of the ``churnops-settings`` ConfigMap in ``project``'s cluster: exactly
    :data:`PIPELINE_CONFIG_KEYS`."""
    data = {
        "CHURNOPS_PROFILE": "gke",
        "CHURNOPS_GCP_PROJECT": project,
        "CHURNOPS_RAW_BUCKET": bucket_name(project, "raw"),
        "CHURNOPS_MLFLOW_TRACKING_URI": MLFLOW.url,
        "CHURNOPS_MLFLOW_EXPERIMENT": MLFLOW_EXPERIMENT,
        "CHURNOPS_REGISTERED_MODEL": REGISTERED_MODEL,
        "CHURNOPS_LAKEFS_ENDPOINT": LAKEFS.url,
        "CHURNOPS_LAKEFS_REPOSITORY": LAKEFS_REPOSITORY,
        "CHURNOPS_TOKENIZATION_KEY_SECRET": SECRET_TOKENIZATION_KEY,
    }
    if tuple(data) != PIPELINE_CONFIG_KEYS:
        raise ValueError("the pipeline settings and PIPELINE_CONFIG_KEYS disagree")
    return data


# ---- supply chain and builds ------------------------------------------------------------------------

ATTESTOR = "churnops-vulnerability-gate"
ATTESTOR_KEYRING = "churnops-binauthz"
ATTESTOR_KEY = "attestor"
WORKER_POOL = "churnops"
CLUSTER = "churnops"
DEFAULT_REGION = "europe-west1"
TRAINING_TOPIC = "churnops-train"
# Cloud Build's connection to GitHub and the repository linked through it (the triggers watch it).
BUILD_CONNECTION = "churnops-github"
BUILD_REPOSITORY = "churnops"

# Cloud Build configurations (relative to the repository root) and the identity each runs as.
BUILD_CI = "cloudbuild.yaml"
BUILD_PROMOTE = "cloudbuild.production.yaml"
BUILD_TRAIN = "cloudbuild.training.yaml"
# The attestation build: runs as the attestor, which runs no third-party code (no `make`, no package
# installed): it scans the images the CI build pushed, by digest, applies the vulnerability gate and
# signs. The CI build asks for it with a message on ATTEST_TOPIC (the image references, by digest, the
# commit and its own build id), and waits for the record it writes under ATTESTATIONS_PREFIX in the build
# bucket.
BUILD_ATTEST = "cloudbuild.attest.yaml"
ATTEST_TOPIC = "churnops-attest"
ATTESTATIONS_PREFIX = "attestations"
BUILD_IDENTITY: dict[str, str] = {
    BUILD_CI: "deployer",
    BUILD_PROMOTE: "deployer",
    BUILD_TRAIN: "deployer",
    BUILD_ATTEST: "attestor",
}
# The attestation trigger's substitutions, each from a field of the JSON message the CI build publishes
# (Cloud Build's Pub/Sub payload binding).
ATTEST_MESSAGE_FIELDS: dict[str, str] = {
    "_REQUEST": "request",  # the CI build's id: the record is written under <prefix>/<commit>/<request>/
    "_COMMIT": "commit",
    "_COMPONENTS_IMAGE": "components",
    "_SERVING_IMAGE": "serving",
}


@dataclass(frozen=True)
class ToolImage:
    """An image the build steps run, pinned by digest (``repository:tag@sha256:digest``). Pulling it by digest
    gets exactly this manifest from this repository, whose owner alone can push to it; ``tool`` reports at
    run time the version the tag names (``.ci/tool-version``), so a digest of another version fails the
    build. Where each digest was seen and how to re-verify it: docs/cicd.md."""

    substitution: str  # the build configs' substitution that names it
    tool: str  # the command whose version .ci/tool-version checks
    repository: str
    tag: str
    digest: str  # of the tag's manifest (for a multi-platform image, its index)

    @property
    def reference(self) -> str:
        """The step image, as the build configs name it."""
        return f"{self.repository}:{self.tag}@sha256:{self.digest}"

    @property
    def version(self) -> str:
        """The tool's version: the tag's leading dotted number (``3.11.16`` of ``3.11.16-bookworm``)."""
        number = self.tag.split("-", 1)[0]
        if not all(part.isdigit() for part in number.split(".")):
            raise ValueError(f"the tag {self.tag!r} does not start with a version")
        return number


# make, lint, tests, the pipelines and the Python CLI (the lock's interpreter, with make and git).
TOOL_PYTHON = ToolImage(
    "_PYTHON_IMAGE",
    "python",
    "python",
    "3.11.16-bookworm",
    "b99029c95d3d37fb1e4e76d287f7984373dca77c665885986e31b2c95260c13c",
)
# gcloud, with bash and python3 (the badge, the gate in the attestation build).
TOOL_SDK = ToolImage(
    "_SDK_IMAGE",
    "gcloud",
    "gcr.io/google.com/cloudsdktool/google-cloud-cli",
    "562.0.0-slim",
    "0da2de42ae51cd6092b5caf7c96d25003659fd15548760eb4c50c2623e7bf9c2",
)
# The Docker CLI (Docker's official image, with buildx), against the build host's daemon.
TOOL_DOCKER = ToolImage(
    "_DOCKER_IMAGE",
    "docker",
    "docker",
    "29.6.2-cli",
    "be132a9f282288de4afaf63379dff75711fda0147c6b72a9df44e51841402144",
)
# The scanner whose reports the vulnerability gate judges.
TOOL_TRIVY = ToolImage(
    "_TRIVY_IMAGE",
    "trivy",
    "aquasec/trivy",
    "0.66.0",
    "086971aaf400beebd94e8300fd8ea623774419597169156cec56eec5b00dfb1e",
)
TOOL_IMAGES: tuple[ToolImage, ...] = (TOOL_PYTHON, TOOL_SDK, TOOL_DOCKER, TOOL_TRIVY)
# The tool images each build runs.
BUILD_TOOLS: dict[str, tuple[ToolImage, ...]] = {
    BUILD_CI: TOOL_IMAGES,
    BUILD_ATTEST: (TOOL_SDK, TOOL_DOCKER, TOOL_TRIVY),  # installs nothing: no Python image
    BUILD_PROMOTE: (TOOL_PYTHON, TOOL_SDK),
    BUILD_TRAIN: (TOOL_PYTHON, TOOL_SDK),
}


def _tool_substitutions(build: str) -> dict[str, str]:
    return {image.substitution: image.reference for image in BUILD_TOOLS[build]}


def build_substitutions(build: str) -> dict[str, str]:
    """The substitutions a build config must declare with exactly these values (Cloud Build expands
    ``${PROJECT_ID}`` and ``${_REGION}``)."""
    project, region = "${PROJECT_ID}", "${_REGION}"
    attestor_key = (
        f"projects/{project}/locations/{region}/keyRings/{ATTESTOR_KEYRING}"
        f"/cryptoKeys/{ATTESTOR_KEY}/cryptoKeyVersions/1"
    )
    if build == BUILD_ATTEST:
        return {
            "_REGION": DEFAULT_REGION,
            "_REPOSITORY": REGISTRY_REPOSITORY,
            "_REGISTRY": f"{region}-docker.pkg.dev/{project}/${{_REPOSITORY}}",
            "_ATTESTOR": f"projects/{project}/attestors/{ATTESTOR}",
            "_ATTESTOR_KEY": attestor_key,
            "_ARTIFACT_BUCKET": bucket_name(project, "build"),
            **{key: "" for key in ATTEST_MESSAGE_FIELDS},
            **_tool_substitutions(build),
        }
    common = {
        "_REGION": DEFAULT_REGION,
        "_CLUSTER": CLUSTER,
        "_ARTIFACT_BUCKET": bucket_name(project, "build"),
    }
    if build == BUILD_CI:
        return {
            **common,
            "_REPOSITORY": REGISTRY_REPOSITORY,
            "_REGISTRY": f"{region}-docker.pkg.dev/{project}/${{_REPOSITORY}}",
            "_ATTEST_TOPIC": f"projects/{project}/topics/{ATTEST_TOPIC}",
            "_BADGE_BUCKET": bucket_name(project, "badges"),
            "_KFP_HOST": KFP_API.proxy_address,
            "_MLFLOW_URI": MLFLOW.proxy_address,
            **_tool_substitutions(build),
        }
    if build == BUILD_PROMOTE:
        return {**common, "_MLFLOW_URI": MLFLOW.proxy_address, **_tool_substitutions(build)}
    if build == BUILD_TRAIN:
        return {**common, "_KFP_HOST": KFP_API.proxy_address, **_tool_substitutions(build)}
    raise ValueError(f"no build config {build!r}; known: {sorted(BUILD_IDENTITY)}")


def build_service_account(build: str) -> str:
    """The ``serviceAccount`` a build config names (Cloud Build expands ``$PROJECT_ID``)."""
    email = identity(BUILD_IDENTITY[build]).email("$PROJECT_ID")
    return f"projects/$PROJECT_ID/serviceAccounts/{email}"


# ---- versions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chart:
    """A Helm chart at an exact version; ``repo`` is a chart repository URL or an ``oci://`` registry."""

    name: str
    repo: str
    version: str

    @property
    def is_oci(self) -> bool:
        """Whether the chart comes from an OCI registry (then ``chart`` carries the whole reference)."""
        return self.repo.startswith("oci://")

    @property
    def reference(self) -> str:
        """The ``chart`` argument of a Helm release."""
        return f"{self.repo}/{self.name}" if self.is_oci else self.name


CERT_MANAGER = Chart("cert-manager", "https://charts.jetstack.io", "v1.18.2")
EXTERNAL_SECRETS = Chart("external-secrets", "https://charts.external-secrets.io", "0.19.2")
KNATIVE_OPERATOR = Chart("knative-operator", "https://knative.github.io/operator", "v1.18.1")
KSERVE_CRD = Chart("kserve-crd", "oci://ghcr.io/kserve/charts", "v0.15.2")
KSERVE = Chart("kserve", "oci://ghcr.io/kserve/charts", "v0.15.2")
LAKEFS_CHART = Chart("lakefs", "https://charts.lakefs.io", "1.11.1")
MLFLOW_CHART = Chart("mlflow", "https://community-charts.github.io/helm-charts", "1.7.3")
# Knative Serving version the operator installs (KnativeServing.spec.version), with Kourier.
KNATIVE_SERVING = "1.18"
# Its queue-proxy's request metrics, labels and latency buckets (ms), which the canary analysis and the
# serving alerts query (checked against the release's vendored source: tests/unit/deploy/test_knative_contract.py).
KNATIVE_REQUESTS_METRIC = "revision_app_request_count"
KNATIVE_LATENCY_METRIC = "revision_app_request_latencies"
KNATIVE_NAMESPACE_LABEL = "namespace_name"
KNATIVE_REVISION_LABEL = "revision_name"
KNATIVE_CODE_CLASS_LABEL = "response_code_class"
KNATIVE_LATENCY_BUCKETS_MS = (
    5,
    10,
    20,
    40,
    60,
    80,
    100,
    150,
    200,
    250,
    300,
    350,
    400,
    450,
    500,
    600,
    700,
    800,
    900,
    1000,
    2000,
    5000,
    10000,
    20000,
    50000,
    100000,
)
# Kubeflow Pipelines backend (the API server that compiles runs), installed from its release manifests.
KFP_BACKEND = "2.17.0"
# Cloud SQL engine.
POSTGRES = "POSTGRES_16"

# Binary Authorization: our images run only with the build's attestation; the upstream images the
# pinned releases run are admitted by exact reference (each release's own manifests and chart values
# name them; tests/support/assembly.py reads them from the vendored releases and fails when one is
# missing here or a pattern here admits something no release runs).
ADMITTED_IMAGES: dict[str, tuple[str, ...]] = {
    "kubeflow-pipelines": (
        "docker.io/library/alpine:3.23",
        "docker.io/library/mysql:8.4",
        "gcr.io/tfx-oss-public/ml_metadata_store_server:1.14.0",
        "ghcr.io/chrislusf/seaweedfs:4.34",
        "ghcr.io/kubeflow/kfp-api-server:2.17.0",
        "ghcr.io/kubeflow/kfp-cache-deployer:2.17.0",
        "ghcr.io/kubeflow/kfp-cache-server:2.17.0",
        "ghcr.io/kubeflow/kfp-driver:2.17.0",
        "ghcr.io/kubeflow/kfp-frontend:2.17.0",
        "ghcr.io/kubeflow/kfp-launcher:2.17.0",
        "ghcr.io/kubeflow/kfp-metadata-envoy:2.17.0",
        "ghcr.io/kubeflow/kfp-metadata-writer:2.17.0",
        "ghcr.io/kubeflow/kfp-persistence-agent:2.17.0",
        "ghcr.io/kubeflow/kfp-scheduled-workflow-controller:2.17.0",
        "ghcr.io/kubeflow/kfp-viewer-crd-controller:2.17.0",
        "ghcr.io/kubeflow/kfp-visualization-server:2.17.0",
        "quay.io/argoproj/argoexec:v4.0.5",
        "quay.io/argoproj/workflow-controller:v4.0.5",
    ),
    "knative-serving": (  # operator v1.18.1 installs serving 1.18.0 and Kourier 1.18
        "docker.io/envoyproxy/envoy:v1.34-latest",
        "gcr.io/knative-releases/knative.dev/net-kourier/cmd/kourier"
        "@sha256:15a601147ef4574386e296c4b2456bb1e230d2dc110254295dddb56e5118b5a8",
        "gcr.io/knative-releases/knative.dev/serving/cmd/activator"
        "@sha256:80b2e4bf6df496c692f8e148b3a72afcb88165cb7428e52b788fa53075989655",
        "gcr.io/knative-releases/knative.dev/serving/cmd/autoscaler"
        "@sha256:6ff1f7816c67954f4533edd7a7e35882e2d52613cc3343594ff3eddfd0c1fca2",
        "gcr.io/knative-releases/knative.dev/serving/cmd/controller"
        "@sha256:d4c6a0f926509e8d34795003635fdb8625dd3d4648ec55fe2ce781e0b8750e04",
        "gcr.io/knative-releases/knative.dev/serving/cmd/queue"
        "@sha256:cab5d14e0910c5e2e2f2be736e44724ecb38c72c211ac43c9e7977468f4934cc",
        "gcr.io/knative-releases/knative.dev/serving/cmd/webhook"
        "@sha256:6fb473eb7641c3f7174ed4064e6c3f5eeeb05e1420f5af425bbec33af53f4f92",
    ),
    "knative-operator": (
        "gcr.io/knative-releases/knative.dev/operator/cmd/operator:v1.18.1",
        "gcr.io/knative-releases/knative.dev/operator/cmd/webhook:v1.18.1",
    ),
    "kserve": (
        "docker.io/kserve/kserve-controller:v0.15.2",
        "docker.io/kserve/storage-initializer:v0.15.2",
        "quay.io/brancz/kube-rbac-proxy:v0.18.0",
    ),
    "cert-manager": (
        "quay.io/jetstack/cert-manager-cainjector:v1.18.2",
        "quay.io/jetstack/cert-manager-controller:v1.18.2",
        "quay.io/jetstack/cert-manager-startupapicheck:v1.18.2",
        "quay.io/jetstack/cert-manager-webhook:v1.18.2",
    ),
    "external-secrets": ("oci.external-secrets.io/external-secrets/external-secrets:v0.19.2",),
    "lakefs": ("docker.io/treeverse/lakefs:1.81.1",),
    # MLflow runs the project's components image (its authorization function and users module), admitted by
    # attestation like every image of ours.
}


# Knative feature flags the platform enables (KnativeServing config "features"): pod-spec fields
# Knative refuses unless its flag is enabled.
KNATIVE_FEATURES: dict[str, str] = {
    "kubernetes.podspec-nodeselector": "enabled",  # serving pods select the serving pool
    "kubernetes.podspec-tolerations": "enabled",  # and tolerate its taint
    "kubernetes.podspec-fieldref": "enabled",  # CHURNOPS_SERVICE_ACCOUNT from spec.serviceAccountName
    # the pod-level securityContext (non-root, RuntimeDefault seccomp) that Pod Security "restricted"
    # needs for every container of the pod, including those KServe and Knative inject
    "kubernetes.podspec-securitycontext": "enabled",
}

# Google APIs from private nodes: the private VIP (private.googleapis.com), which a private DNS zone
# for googleapis.com maps every *.googleapis.com name to, and which the serving egress policies allow.
GOOGLE_APIS_VIP_CIDR = "199.36.153.8/30"
GOOGLE_APIS_VIP_ADDRESSES: tuple[str, ...] = ("199.36.153.8", "199.36.153.9", "199.36.153.10", "199.36.153.11")
GOOGLE_APIS_DOMAIN = "googleapis.com"
