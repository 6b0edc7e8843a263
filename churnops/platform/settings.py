"""Configuration for every churnops process, in one place.

Values come from, highest precedence first:

1. keyword arguments to :class:`Settings` (what a CLI flag or a test passes);
2. environment variables prefixed ``CHURNOPS_`` (e.g. ``CHURNOPS_RAW_BUCKET``);
3. the profile defaults of ``CHURNOPS_PROFILE`` (``local`` or ``gke``);
4. the field defaults below (the local profile).

No other module reads a ``CHURNOPS_*`` variable: code takes a :class:`Settings`. The variables
read elsewhere belong to other programs: ``OMP_NUM_THREADS`` (the serving processes default it to
1), ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` (the transformer's client, as kserve's), and MLflow's
own ``MLFLOW_*`` (set by :mod:`churnops.platform.logs` and, for a ``k8s://`` tracking address, by
:mod:`churnops.model.registry`). Nothing reads the
settings at import: a process reads them when it starts (:func:`get_settings`; an entry point
without a command-line error handler uses :func:`settings_or_exit`).
"""

from __future__ import annotations

import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from churnops.errors import ConfigurationError
from churnops.platform import declaration as platform

Profile = Literal["local", "gke"]

# Values that differ on GKE. Applied only to fields the caller did not set.
GKE_DEFAULTS: dict[str, Any] = {
    "gcs_endpoint": None,
    "mlflow_tracking_uri": platform.MLFLOW.url,
    "versioning_backend": "lakefs",
    "lakefs_endpoint": platform.LAKEFS.url,
    "secrets_backend": "gcp",
    "prometheus_auth": "google",
    "service_auth": "google",
    "log_format": "json",
    "state_dir": Path(tempfile.gettempdir()) / "churnops",  # TMPDIR: the task's emptyDir volume where it has one
}


# Managed Service for Prometheus: the Prometheus HTTP API over the project's metrics (monitoring.read).
GMP_QUERY_URL = "https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus"

# Defaults read without building Settings (no environment): the image components are declared with
# (components/__init__.py) and the patterns an error line is scrubbed with when the settings are invalid.
DEFAULT_COMPONENTS_IMAGE = "churnops/components:dev"
DEFAULT_SCRUB_IDENTIFIERS: tuple[str, ...] = (r"\bCUST-\d+\b",)

# Training defaults, defined once: Settings, TrainingConfig and the feature functions use them.
TRAINING_DEFAULTS: dict[str, Any] = {
    "feature_windows_hours": (1, 6, 24),
    "label_horizon_hours": 6,
    "cutoff_step_hours": 1,
    "min_history_hours": 18,
    "gate_margin": 0.01,
    "gate_confidence": 0.95,
    "gate_resamples": 1000,
    "gate_min_auc": 0.6,
    "gate_behaviour_share": 0.99,
    "gate_recent_production": 3,
    "calibration": "sigmoid",
    "decision_rule": "top_k",
    "retention_capacity_share": 0.1,
    "retention_save_rate": 0.3,
    "retention_customer_value": 100.0,
    "retention_contact_cost": 5.0,
    "split_fractions": (0.6, 0.2, 0.2),  # train, validation, test (by time); not a setting
    "holdout_share": 0.1,  # customers (by id) never trained on, evaluated apart; not a setting
    # A customer silent this long (no event, no subscription record) with no cancellation is a ghost: left out
    # of labels, training and scoring until heard of again. Not a setting: training and scoring must agree.
    "ghost_after_hours": 12,
}


class Settings(BaseSettings):
    """All configuration. Local-profile defaults: loopback endpoints, state under ``.local/``."""

    model_config = SettingsConfigDict(env_prefix="CHURNOPS_", extra="ignore", validate_default=True)

    profile: Profile = "local"
    state_dir: Path = Path(".local")

    # Object storage (GCS; fake-gcs-server locally).
    gcp_project: str = "churnops-local"
    raw_bucket: str = "churnops-raw"
    gcs_host: str = "127.0.0.1"
    gcs_port: int = 4443
    gcs_endpoint: str | None = Field(
        default=None, description="Emulator URL; derived from gcs_host/gcs_port on the local profile."
    )

    # Experiment tracking and registry.
    mlflow_host: str = "127.0.0.1"
    mlflow_port: int = 5050
    mlflow_tracking_uri: str | None = None
    mlflow_username: str = Field(
        default="churnops-training",
        description="The MLflow user this process acts as (the server runs MLflow's basic-auth app): "
        "churnops-training may write runs and versions and move aliases, churnops-deployer may move aliases, "
        "others read.",
    )
    mlflow_password: SecretStr | None = Field(
        default=None,
        description="Its password; on the local profile, when unset, the file "
        "state_dir/secrets/churnops-mlflow-password-<user> that the local stack writes.",
    )
    mlflow_experiment: str = platform.MLFLOW_EXPERIMENT
    registered_model: str = platform.REGISTERED_MODEL

    # Data versioning.
    versioning_backend: Literal["embedded", "lakefs"] = "embedded"
    lakefs_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("lakefs_endpoint", "CHURNOPS_LAKEFS_ENDPOINT", "LAKEFS_ENDPOINT")
    )
    lakefs_repository: str = Field(
        default=platform.LAKEFS_REPOSITORY,
        validation_alias=AliasChoices("lakefs_repository", "CHURNOPS_LAKEFS_REPOSITORY", "LAKEFS_REPOSITORY"),
    )
    lakefs_storage_namespace: str | None = Field(
        default=None, description="Where lakeFS keeps the repository's data, e.g. gs://bucket/lakefs/churn-lake."
    )
    lakefs_access_key_id: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("lakefs_access_key_id", "CHURNOPS_LAKEFS_ACCESS_KEY_ID", "LAKEFS_ACCESS_KEY_ID"),
    )
    lakefs_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "lakefs_secret_access_key", "CHURNOPS_LAKEFS_SECRET_ACCESS_KEY", "LAKEFS_SECRET_ACCESS_KEY"
        ),
    )

    # Data-subject erasure (docs/security.md, "Completing an erasure"): how long an erasure waits
    # before `churnops privacy purge` removes history and derived copies (0 = at the next purge;
    # bounded so that every copy is gone within one month), and the retention the purge sets in
    # lakeFS's garbage-collection rules for the rest of history.
    erasure_grace_hours: int = Field(default=72, ge=0, le=168)
    lakefs_gc_retention_days: int = Field(default=7, ge=1, le=21)

    # Secrets (tokenization key and friends).
    secrets_backend: Literal["local", "gcp"] = "local"
    tokenization_key_secret: str = platform.SECRET_TOKENIZATION_KEY
    secret_manager_endpoint: str | None = None
    tokenization_key: SecretStr | None = Field(
        default=None, description="Local profile only: the key itself (else a file under state_dir/secrets)."
    )

    # Build identity, recorded on every data commit and training run (baked into images at build time;
    # unset in a source checkout, where git tells). See churnops/platform/buildinfo.py.
    code_version: str | None = Field(
        default=None,
        validation_alias=AliasChoices("code_version", "CHURNOPS_CODE_VERSION", "CHURNOPS_GIT_SHA"),
        description="Git SHA the running image was built from.",
    )
    code_dirty: bool = Field(
        default=False,
        validation_alias=AliasChoices("code_dirty", "CHURNOPS_CODE_DIRTY", "CHURNOPS_GIT_DIRTY"),
        description="The image was built from a tree with uncommitted changes.",
    )
    image_digest: str | None = Field(default=None, description="Digest of the container image this process runs in.")

    # Who changes the registry: recorded on every alias change (first set wins: actor, CI build, service account).
    actor: str | None = Field(default=None, description="The person or system on whose behalf commands run.")
    ci_build_id: str | None = Field(default=None, description="CI build running this process.")
    service_account: str | None = Field(default=None, description="Kubernetes/GCP service account running the pod.")

    # Ingest.
    ingest_lookback_hours: int = Field(default=3, ge=0, le=72)
    ingest_fanout: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Most groups an ingest pipeline run stages its objects in, as parallel tasks (read when the "
        "pipeline is built).",
    )
    alert_webhook_url: SecretStr | None = None

    # Training (in hours: the generated data compresses a customer lifecycle into hours). The
    # defaults are TRAINING_DEFAULTS, which the feature code and TrainingConfig use as well.
    feature_windows_hours: list[int] = Field(default_factory=lambda: list(TRAINING_DEFAULTS["feature_windows_hours"]))
    label_horizon_hours: int = Field(default=TRAINING_DEFAULTS["label_horizon_hours"], gt=0)
    cutoff_step_hours: int = Field(default=TRAINING_DEFAULTS["cutoff_step_hours"], gt=0)
    min_history_hours: int = Field(default=TRAINING_DEFAULTS["min_history_hours"], ge=0)
    gate_margin: float = Field(
        default=TRAINING_DEFAULTS["gate_margin"],
        ge=0,
        le=1,
        description="Test ROC-AUC a new candidate may lose against production.",
    )
    gate_confidence: float = Field(
        default=TRAINING_DEFAULTS["gate_confidence"],
        gt=0.5,
        lt=1,
        description="Confidence level of the gate's intervals on ROC-AUC differences.",
    )
    gate_resamples: int = Field(
        default=TRAINING_DEFAULTS["gate_resamples"],
        ge=100,
        le=100_000,
        description="Bootstrap resamples (of customers) of the gate.",
    )
    gate_min_auc: float = Field(
        default=TRAINING_DEFAULTS["gate_min_auc"],
        ge=0,
        le=1,
        description="Test ROC-AUC the gate's winner must reach, also when there is no production model.",
    )
    gate_behaviour_share: float = Field(
        default=TRAINING_DEFAULTS["gate_behaviour_share"],
        ge=0,
        le=1,
        description="Share of validation rows on which each declared direction must hold for the gate's winner.",
    )
    gate_recent_production: int = Field(
        default=TRAINING_DEFAULTS["gate_recent_production"],
        ge=1,
        le=20,
        description="Recent production versions the gate compares with: the winner must not lose to the best.",
    )
    calibration: Literal["sigmoid", "isotonic"] = Field(
        default=TRAINING_DEFAULTS["calibration"],
        description="Calibration fitted on validation: Platt scaling (sigmoid) or isotonic regression.",
    )
    # The retention team's terms: they choose the threshold at which churn_label is 1.
    decision_rule: Literal["top_k", "expected_value"] = Field(
        default=TRAINING_DEFAULTS["decision_rule"],
        description="top_k: label the share of customers the team can contact; expected_value: label where "
        "probability x save rate x customer value exceeds the contact cost.",
    )
    retention_capacity_share: float = Field(
        default=TRAINING_DEFAULTS["retention_capacity_share"],
        gt=0,
        le=1,
        description="Share of active customers the retention team can contact per scoring (the k of top-k).",
    )
    retention_save_rate: float = Field(
        default=TRAINING_DEFAULTS["retention_save_rate"], gt=0, le=1, description="Share of contacted churners kept."
    )
    retention_customer_value: float = Field(
        default=TRAINING_DEFAULTS["retention_customer_value"], gt=0, description="Value of a kept customer."
    )
    retention_contact_cost: float = Field(
        default=TRAINING_DEFAULTS["retention_contact_cost"], ge=0, description="Cost of one retention contact."
    )

    # Drift monitoring (churnops.training.monitoring).
    drift_psi_threshold: float = Field(
        default=0.25,
        gt=0,
        description="Least PSI at which a feature or the prediction counts as drifted; a check fires on any feature.",
    )
    drift_bins: int = Field(default=10, ge=2, le=100, description="Quantile bins per numeric feature.")
    drift_false_alarm_rate: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Chance that a check on unshifted data fires by sampling noise: a feature's PSI must also pass "
        "the noise bound at this rate divided by the number of features (Bonferroni).",
    )

    # Performance on matured labels (churnops.training.performance): below these, a `performance` alert.
    performance_min_auc: float = Field(
        default=0.6, ge=0, le=1, description="Least ROC-AUC of the production model on its matured labels."
    )
    performance_max_calibration_error: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="Largest expected calibration error of the production model on its matured labels.",
    )

    # Predictions by customer id (serving/transformer.py): how often the transformer asks the lake
    # whether a newer online feature snapshot was published.
    online_refresh_seconds: float = Field(
        default=60.0, gt=0, description="Seconds between the transformer's checks for a newer online snapshot."
    )

    # Who may call the services (churnops/platform/auth.py): bearer tokens naming the caller's service
    # account (names or e-mails; a name means <name>@<gcp_project>.iam.gserviceaccount.com).
    service_auth: Literal["local", "google"] = Field(
        default="local",
        description="google: Google-signed ID tokens of workload identities (GKE); local: tokens "
        "signed by a key under state_dir/secrets whose public half local servers trust.",
    )
    predictor_audience: str = Field(default="churnops-predictor", description="Audience of tokens for the predictor.")
    transformer_audience: str = Field(
        default="churnops-transformer", description="Audience of tokens for the by-customer transformer."
    )
    predictor_callers: list[str] = Field(
        default_factory=lambda: ["churnops-transformer", "churnops-deployer"],
        description="Accounts the predictor serves: the transformer, and the deployer's smoke test.",
    )
    transformer_callers: list[str] = Field(
        default_factory=lambda: ["churnops-deployer"], description="Accounts the by-customer transformer serves."
    )
    transformer_account: str = Field(
        default="churnops-transformer",
        description="The transformer's own account in locally signed tokens "
        "(on GKE its workload identity speaks for it).",
    )
    client_account: str = Field(
        default="churnops-deployer",
        description="The account in locally signed tokens of the churnops commands "
        "(smoke test, demo); on GKE their Application Default Credentials speak for them.",
    )
    # The enumeration bound: a caller can learn at most this many customers' answers.
    transformer_max_ids_per_request: int = Field(
        default=100, ge=1, le=4096, description="Customer ids one request may ask about."
    )
    transformer_max_ids_per_minute: int = Field(
        default=6000, ge=1, description="Customer ids one caller may ask about per minute."
    )

    # Deployment and canary (manifests/, `churnops deploy`, `churnops canary`). The canary is rolled
    # back when it is confidently worse than the stable revision (churnops/deploy/canary.py); below
    # canary_min_requests on either arm there is no decision yet; past canary_deadline_s it is rolled back.
    gcp_region: str = platform.DEFAULT_REGION
    artifact_repository: str = platform.REGISTRY_REPOSITORY
    serving_image: str = platform.IMAGE_SERVING
    manifests_dir: Path = Path("manifests")
    kubeconfig: Path | None = Field(
        default=None, validation_alias=AliasChoices("kubeconfig", "CHURNOPS_KUBECONFIG", "KUBECONFIG")
    )
    kube_context: str | None = Field(default=None, description="kubeconfig context; in-cluster config when unset.")
    deploy_service: str = platform.INFERENCE_SERVICE
    deploy_model_name: str = Field(default=platform.MODEL_NAME, description="The model's name in the V2 protocol.")
    deploy_field_manager: str = "churnops-deploy"
    deploy_ready_timeout_s: float = Field(default=600.0, gt=0)
    deploy_poll_interval_s: float = Field(default=5.0, ge=0)
    smoke_timeout_s: float = Field(default=10.0, gt=0)
    prometheus_url: str | None = Field(
        default=None,
        description="Prometheus HTTP API the canary analysis queries. Default: 127.0.0.1:9090 "
        "locally; on GKE, Managed Service for Prometheus's query API of gcp_project.",
    )
    prometheus_auth: Literal["none", "google"] = Field(
        default="none", description="google: send Application Default Credentials (Managed Service for Prometheus)."
    )
    canary_window: str = Field(default="5m", pattern=r"^[0-9]+[smh]$", description="`canary analyze`'s window.")
    canary_min_requests: int = Field(default=300, ge=1, description="Requests on each arm before any decision.")
    canary_error_margin: float = Field(
        default=0.002, ge=0, le=1, description="How much higher the canary's 5xx share may be than the stable one's."
    )
    canary_slow_ms: float = Field(
        default=250, gt=0, description="A request slower than this (a bucket bound of Knative's histogram) is slow."
    )
    canary_slow_margin: float = Field(
        default=0.01, ge=0, le=1, description="How much higher the canary's slow share may be than the stable one's."
    )
    canary_confidence: float = Field(
        default=0.99,
        gt=0.5,
        lt=1,
        description="Posterior probability of 'worse by more than the margin' that rolls back.",
    )
    canary_max_psi: float = Field(default=0.2, gt=0, description="Shift of predicted probabilities worth a note.")
    canary_intervals: int = Field(default=3, ge=1, description="Windows analysed before a promotion.")
    canary_interval_s: float = Field(default=300.0, ge=0)
    canary_deadline_s: float = Field(
        default=3600.0, ge=0, description="Without a decision by then, the canary is rolled back (with an alert)."
    )
    probability_metric: str = Field(
        default="churnops_serving_churn_probability", description="Histogram of predicted probabilities (serving/)."
    )

    # Pipelines (KFP): the components image every task runs, and how tasks run on the cluster.
    components_image: str = Field(
        default=DEFAULT_COMPONENTS_IMAGE,
        description="Image (with registry, tag or digest) of components/Dockerfile; every KFP task runs it.",
    )
    kfp_host: str | None = Field(
        default=None,
        description="KFP API endpoint for submit, schedule and upload "
        "(a URL, or k8s://<namespace>/<service>:<port> through the API server).",
    )
    pipeline_root: str | None = Field(default=None, description="Where KFP keeps artifacts, e.g. gs://bucket/kfp.")
    pipeline_service_accounts: dict[str, str] = Field(
        default_factory=platform.pipeline_service_accounts,
        description="Kubernetes service account per pipeline (each bound to its own GCP account by Workload Identity).",
    )
    pipeline_node_pool: str = platform.POOL_PIPELINES
    pipeline_settings_config_map: str = Field(
        default=platform.CONFIG_MAP_PIPELINES,
        description="ConfigMap whose CHURNOPS_* keys every task gets as environment.",
    )
    pipeline_secret: str = Field(
        default=platform.SECRET_PIPELINES.name,
        description="Kubernetes Secret (by reference) with the lakeFS keys and the alert webhook URL.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    pipeline_retry_backoff_seconds: int = Field(
        default=30,
        ge=0,
        description="First backoff of the pipeline's retry of a failed task (doubling, three retries), compiled "
        "into the pipelines.",
    )
    step_retry_seconds: int = Field(
        default=300,
        ge=0,
        le=1800,
        description="How long a pipeline step retries a transient failure (an unreachable lake, registry, bucket "
        "or secret store; 429/5xx; a timeout) inside its task, with exponential backoff, before it fails.",
    )

    # Logging.
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    log_scrub_identifiers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SCRUB_IDENTIFIERS),
        description="Regular expressions for raw identifiers masked in every log line.",
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: Any) -> Any:
        """Fill GKE defaults for fields neither passed nor set in the environment."""
        if not isinstance(data, dict):
            return data
        profile = data.get("profile", "local")
        if profile == "gke":
            for key, value in GKE_DEFAULTS.items():
                data.setdefault(key, value)
        return data

    @field_validator("feature_windows_hours")
    @classmethod
    def _distinct_positive_windows(cls, windows: list[int]) -> list[int]:
        if not windows or len(set(windows)) != len(windows) or min(windows) <= 0:
            raise ValueError("feature windows must be distinct positive hours")
        return windows

    @model_validator(mode="after")
    def _derive_local_endpoints(self) -> "Settings":
        if self.profile == "local":
            if self.gcs_endpoint is None:
                self.gcs_endpoint = f"http://{self.gcs_host}:{self.gcs_port}"
            if self.mlflow_tracking_uri is None:
                self.mlflow_tracking_uri = f"http://{self.mlflow_host}:{self.mlflow_port}"
        if self.prometheus_url is None:
            self.prometheus_url = (
                GMP_QUERY_URL.format(project=self.gcp_project) if self.profile == "gke" else "http://127.0.0.1:9090"
            )
        return self

    @property
    def local_secrets_dir(self) -> Path:
        """Where the local secrets backend keeps one file per secret."""
        return self.state_dir / "secrets"

    @property
    def embedded_repo_dir(self) -> Path:
        """Where the embedded versioning backend keeps its repository."""
        return self.state_dir / "lake"


def load_settings() -> Settings:
    """The settings as the environment gives them now; :class:`ConfigurationError` names every invalid one."""
    try:
        return Settings()
    except ValidationError as exc:
        names = [str(error["loc"][0]).upper() if error["loc"] else "?" for error in exc.errors()]
        problems = "; ".join(f"CHURNOPS_{name}: {error['msg']}" for name, error in zip(names, exc.errors()))
        # not chained: pydantic's message repeats each input value, and a setting can be a secret
        raise ConfigurationError(f"invalid settings: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once, on first use); :class:`ConfigurationError` names every invalid one."""
    return load_settings()


CONFIGURATION_EXIT = 2
"""Exit status of a process that cannot start because a setting is invalid (as the CLI's domain errors)."""


def settings_or_exit() -> Settings:
    """:func:`get_settings` for a process entry point (model server, transformer, KFP task).

    An invalid setting prints one line on stderr, ``Error: ConfigurationError: invalid settings:
    CHURNOPS_<NAME>: <problem>``, and exits with status 2 (no traceback: nothing is wrong with the code).
    """
    try:
        return get_settings()
    except ConfigurationError as exc:
        print(f"Error: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(CONFIGURATION_EXIT) from None
