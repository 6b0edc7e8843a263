"""Names the Pulumi program uses, from the platform's one declaration (churnops/platform/declaration.py).

Only aliases live here: a name is changed in the declaration, where the manifests, the pipelines, the
settings and the build configs read it too.
"""

from __future__ import annotations

from churnops.platform import declaration as platform

NS_KUBEFLOW = platform.NS_KUBEFLOW
NS_STAGING = platform.SERVING_NAMESPACES["staging"]
NS_PRODUCTION = platform.SERVING_NAMESPACES["production"]
NS_LAKEFS = platform.NS_LAKEFS
NS_MLFLOW = platform.NS_MLFLOW
SERVING_NAMESPACES = tuple(platform.SERVING_NAMESPACES.values())

KSA_PIPELINE_RUNNER = platform.KSA_KFP_RUNNER
KSA_DEPLOYER = platform.KSA_DEPLOYER
KSA_LAKEFS = str(platform.identity("lakefs").ksa)
KSA_MLFLOW = str(platform.identity("mlflow").ksa)

K8S_SECRET_PIPELINES = platform.SECRET_PIPELINES.name
K8S_SECRET_SERVING_LAKE = platform.SECRET_SERVING_LAKE.name

POOL_LABEL = platform.POOL_LABEL
POOL_SYSTEM = platform.POOL_SYSTEM
POOL_PIPELINES = platform.POOL_PIPELINES
POOL_SERVING = platform.POOL_SERVING

REGISTRY_REPOSITORY = platform.REGISTRY_REPOSITORY
IMAGES = platform.IMAGES
IMAGE_COMPONENTS = platform.IMAGE_COMPONENTS

SECRET_TOKENIZATION_KEY = platform.SECRET_TOKENIZATION_KEY
SECRET_ALERT_WEBHOOK = platform.SECRET_ALERT_WEBHOOK
SECRET_LAKEFS_ACCESS_KEY_ID = platform.SECRET_LAKEFS_ACCESS_KEY_ID
SECRET_LAKEFS_SECRET_ACCESS_KEY = platform.SECRET_LAKEFS_SECRET_ACCESS_KEY
SECRET_LAKEFS_ENCRYPT_KEY = platform.SECRET_LAKEFS_ENCRYPT_KEY
SECRET_LAKEFS_DB_PASSWORD = platform.SECRET_LAKEFS_DB_PASSWORD
SECRET_MLFLOW_DB_PASSWORD = platform.SECRET_MLFLOW_DB_PASSWORD
MLFLOW_ADMIN = platform.MLFLOW_ADMIN
SECRET_MLFLOW_ADMIN_PASSWORD = platform.mlflow_password_secret(platform.MLFLOW_ADMIN)
# MLflow user -> the identities that log in as it on the cluster (each reads that user's password secret).
MLFLOW_CLUSTER_USERS: dict[str, tuple[str, ...]] = {
    user.name: user.identities for user in platform.MLFLOW_USERS if user.identities
}
MLFLOW_ALIAS_MOVERS = tuple(user.name for user in platform.MLFLOW_USERS if user.moves_aliases)
MLFLOW_AUTHORIZATION_FUNCTION = platform.MLFLOW_AUTHORIZATION_FUNCTION

GSA_NODES = platform.identity("nodes").gsa
GSA_LAKEFS = platform.identity("lakefs").gsa
GSA_MLFLOW = platform.identity("mlflow").gsa
GSA_DEPLOYER = platform.identity("deployer").gsa

BUCKET_PURPOSES = platform.BUCKET_PURPOSES

ATTESTOR = platform.ATTESTOR
ATTESTOR_KEYRING = platform.ATTESTOR_KEYRING
ATTESTOR_KEY = platform.ATTESTOR_KEY
WORKER_POOL = platform.WORKER_POOL
CLUSTER = platform.CLUSTER

BUILD_CI = platform.BUILD_CI
BUILD_PROMOTE = platform.BUILD_PROMOTE
BUILD_TRAIN = platform.BUILD_TRAIN
TRAINING_TOPIC = platform.TRAINING_TOPIC
BUILD_CONNECTION = platform.BUILD_CONNECTION
BUILD_REPOSITORY = platform.BUILD_REPOSITORY
SECRET_GITHUB_TOKEN = platform.SECRET_GITHUB_TOKEN

# Databases on the shared Cloud SQL instance.
DB_MLFLOW = "mlflow"
DB_MLFLOW_AUTH = "mlflow_auth"  # the basic-auth app's users and permissions (same user as DB_MLFLOW)
DB_LAKEFS = "lakefs"

bucket_name = platform.bucket_name
gsa_email = platform.gsa_email
