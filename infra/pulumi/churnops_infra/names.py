"""Names the rest of churnops relies on (manifests, Cloud Build, pipelines, settings).

They are documented in docs/infrastructure.md; change them only together with their users.
"""

from __future__ import annotations

# Kubernetes namespaces.
NS_KUBEFLOW = "kubeflow"  # Kubeflow Pipelines and every pipeline task
NS_STAGING = "churnops-staging"  # KServe InferenceServices, staging
NS_PRODUCTION = "churnops-production"  # KServe InferenceServices, production (canary)
NS_LAKEFS = "lakefs"
NS_MLFLOW = "mlflow"
SERVING_NAMESPACES = (NS_STAGING, NS_PRODUCTION)

# Kubernetes service accounts, each bound through Workload Identity to one Google service account.
KSA_PIPELINE_RUNNER = "pipeline-runner"  # KFP's task runner, in kubeflow
KSA_SERVING = "churnops-serving"  # predictor pods, in each serving namespace
KSA_DEPLOYER = "churnops-deployer"  # in-cluster deploy/promotion jobs, in each serving namespace
KSA_LAKEFS = "lakefs"
KSA_MLFLOW = "mlflow"

# Kubernetes Secrets that workloads read, rendered from Secret Manager by External Secrets; their keys
# are what churnops reads (pipelines/common.py SECRET_KEYS, manifests/base/inferenceservice.yaml).
K8S_SECRET_PIPELINES = "churnops-pipelines"  # in kubeflow: lakeFS keys and the alert webhook, for pipeline tasks
K8S_SECRET_SERVING_LAKE = "churnops-serving-lake"  # in each serving namespace: lakeFS keys, for the transformer

# Node pools; GKE labels every node with cloud.google.com/gke-nodepool=<name>.
POOL_LABEL = "cloud.google.com/gke-nodepool"
POOL_SYSTEM = "system"
POOL_PIPELINES = "pipelines"
POOL_SERVING = "serving"

# Artifact Registry repository and the images pushed to it.
REGISTRY_REPOSITORY = "churnops"
IMAGES = ("churnops-components", "churnops-serving")

# Secret Manager secret ids.
SECRET_TOKENIZATION_KEY = "churnops-tokenization-key"
SECRET_ALERT_WEBHOOK = "churnops-alert-webhook-url"
SECRET_LAKEFS_ACCESS_KEY_ID = "churnops-lakefs-access-key-id"
SECRET_LAKEFS_SECRET_ACCESS_KEY = "churnops-lakefs-secret-access-key"
SECRET_LAKEFS_ENCRYPT_KEY = "churnops-lakefs-encrypt-key"
SECRET_LAKEFS_DB_PASSWORD = "churnops-lakefs-db-password"
SECRET_MLFLOW_DB_PASSWORD = "churnops-mlflow-db-password"

# Google service account ids (<id>@<project>.iam.gserviceaccount.com).
GSA_NODES = "churnops-nodes"
GSA_PIPELINES = "churnops-pipelines"
GSA_SERVING = "churnops-serving"
GSA_LAKEFS = "churnops-lakefs"
GSA_MLFLOW = "churnops-mlflow"
GSA_DEPLOYER = "churnops-cloudbuild"  # Cloud Build runs as it; KSA churnops-deployer acts as it

# Buckets: <project>-churnops-<purpose>. build: what a build produced (digests, SBOMs, reports,
# compiled pipelines); badges: the build status badge.
BUCKET_PURPOSES = ("raw", "lake", "artifacts", "build", "badges")

# Supply chain: builds sign an attestation per image digest with this attestor's KMS key.
ATTESTOR = "churnops-vulnerability-gate"
ATTESTOR_KEYRING = "churnops-binauthz"
ATTESTOR_KEY = "attestor"
WORKER_POOL = "churnops"

# Cloud Build build configurations, relative to the repository root.
BUILD_CI = "cloudbuild.yaml"
BUILD_PROMOTE = "cloudbuild.production.yaml"
BUILD_TRAIN = "cloudbuild.training.yaml"
TRAINING_TOPIC = "churnops-train"

# Databases on the shared Cloud SQL instance.
DB_MLFLOW = "mlflow"
DB_LAKEFS = "lakefs"


def bucket_name(project: str, purpose: str) -> str:
    """The bucket for ``purpose`` (raw, lake or artifacts) in ``project``."""
    return f"{project}-churnops-{purpose}"


def gsa_email(account_id: str, project: str) -> str:
    """The e-mail of a service account created in ``project``."""
    return f"{account_id}@{project}.iam.gserviceaccount.com"
