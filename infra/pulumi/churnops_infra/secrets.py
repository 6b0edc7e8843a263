"""Secret Manager secrets, their generated values, and one accessor grant per (secret, identity).

Generated values (pulumi-random) live in the Pulumi state only as encrypted secrets; pods read them
from Secret Manager with their own identity, never from a file in the repository or an image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random
from churnops_infra import names

from churnops.platform import declaration as platform

SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"

# secret id -> the workloads that read it (each gets its own binding on that one secret).
PIPELINES = tuple(sorted(set(platform.PIPELINE_IDENTITY.values())))
TRANSFORMERS = tuple(f"transformer-{env}" for env in platform.ENVIRONMENTS)
ACCESSORS: dict[str, tuple[str, ...]] = {
    # Ingest tokenizes customer ids; the transformer tokenizes the ids it is asked about.
    names.SECRET_TOKENIZATION_KEY: (*PIPELINES, *TRANSFORMERS),
    # Pipelines post their alerts; builds post a failed smoke test or a rollback.
    names.SECRET_ALERT_WEBHOOK: (*PIPELINES, "deployer"),
    # The lakeFS admin key: lakeFS sets itself up with it, pipeline tasks are its clients, and the
    # by-customer transformer reads the online feature snapshot from the lake.
    names.SECRET_LAKEFS_ACCESS_KEY_ID: (*PIPELINES, "lakefs", *TRANSFORMERS),
    names.SECRET_LAKEFS_SECRET_ACCESS_KEY: (*PIPELINES, "lakefs", *TRANSFORMERS),
    names.SECRET_LAKEFS_ENCRYPT_KEY: ("lakefs",),
    names.SECRET_LAKEFS_DB_PASSWORD: ("lakefs",),
    names.SECRET_MLFLOW_DB_PASSWORD: ("mlflow",),
    # MLflow's admin: the server creates it at its first start, its bootstrap Job logs in as it.
    names.SECRET_MLFLOW_ADMIN_PASSWORD: ("mlflow",),
    # Each MLflow user's password: the identities that log in as it, and the MLflow server's (its bootstrap Job
    # creates the users with these passwords; the server keeps their hashes anyway).
    **{
        platform.mlflow_password_secret(user): (*identities, "mlflow")
        for user, identities in names.MLFLOW_CLUSTER_USERS.items()
    },
}


@dataclass
class SecretsArgs:
    """Inputs of :class:`Secrets`; ``members`` maps a workload key to its IAM member."""

    alert_webhook_url: pulumi.Input[str]
    protect: bool
    members: dict[str, pulumi.Input[str]] = field(default_factory=dict)


class Secrets(pulumi.ComponentResource):
    """The PII tokenization key, lakeFS credentials, database and MLflow passwords and the alert webhook."""

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("churnops:infra:Secrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # 32 random bytes stored as the raw payload: churnops refuses a key shorter than 32 bytes.
        # Replacing it would re-tokenize every customer, so it is protected where data must last.
        tokenization_key = random.RandomBytes(
            f"{name}-tokenization-key", length=32, opts=pulumi.ResourceOptions(parent=self, protect=args.protect)
        )
        access_key_suffix = random.RandomString(
            f"{name}-lakefs-access-key-id", length=15, upper=True, lower=False, numeric=True, special=False, opts=child
        )
        self.lakefs_db_password = random.RandomPassword(f"{name}-lakefs-db", length=32, special=False, opts=child)
        self.mlflow_db_password = random.RandomPassword(f"{name}-mlflow-db", length=32, special=False, opts=child)
        values: dict[str, tuple[pulumi.Input[str], bool]] = {
            names.SECRET_TOKENIZATION_KEY: (tokenization_key.base64, True),
            names.SECRET_ALERT_WEBHOOK: (pulumi.Output.secret(args.alert_webhook_url), False),
            names.SECRET_LAKEFS_ACCESS_KEY_ID: (
                pulumi.Output.secret(access_key_suffix.result.apply(lambda suffix: f"AKIAJ{suffix}")),
                False,
            ),
            names.SECRET_LAKEFS_SECRET_ACCESS_KEY: (
                random.RandomPassword(f"{name}-lakefs-secret-access-key", length=40, special=False, opts=child).result,
                False,
            ),
            names.SECRET_LAKEFS_ENCRYPT_KEY: (
                random.RandomPassword(f"{name}-lakefs-encrypt-key", length=48, special=False, opts=child).result,
                False,
            ),
            names.SECRET_LAKEFS_DB_PASSWORD: (self.lakefs_db_password.result, False),
            names.SECRET_MLFLOW_DB_PASSWORD: (self.mlflow_db_password.result, False),
            # Letters and digits only: the chart writes the admin's into its auth configuration with sed.
            **{
                platform.mlflow_password_secret(user): (
                    random.RandomPassword(f"{name}-mlflow-{user}", length=32, special=False, opts=child).result,
                    False,
                )
                for user in (names.MLFLOW_ADMIN, *names.MLFLOW_CLUSTER_USERS)
            },
        }

        self.secrets: dict[str, gcp.secretmanager.Secret] = {}
        for secret_id, (value, is_base64) in values.items():
            secret = gcp.secretmanager.Secret(
                f"{name}-{secret_id}",
                secret_id=secret_id,
                replication={"auto": {}},
                labels={"app": "churnops"},
                opts=pulumi.ResourceOptions(
                    parent=self, protect=args.protect and secret_id == names.SECRET_TOKENIZATION_KEY
                ),
            )
            self.secrets[secret_id] = secret
            gcp.secretmanager.SecretVersion(
                f"{name}-{secret_id}-v",
                secret=secret.id,
                secret_data=value,
                is_secret_data_base64=is_base64,
                opts=child,
            )
            for workload in ACCESSORS[secret_id]:
                gcp.secretmanager.SecretIamMember(
                    f"{name}-{secret_id}-{workload}",
                    secret_id=secret.id,
                    role=SECRET_ACCESSOR,
                    member=args.members[workload],
                    opts=child,
                )
        self.register_outputs({"secrets": [secret.secret_id for secret in self.secrets.values()]})
