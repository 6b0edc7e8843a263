"""Cloud SQL for PostgreSQL on a private IP: the MLflow and lakeFS metadata databases, and MLflow's auth database."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
from churnops_infra import names, versions
from churnops_infra.config import DatabaseConfig


@dataclass
class DatabaseArgs:
    """Inputs of :class:`Database`."""

    region: str
    config: DatabaseConfig
    network: pulumi.Input[str]
    private_services: pulumi.Resource  # the private service access connection the instance needs
    mlflow_password: pulumi.Input[str]
    lakefs_password: pulumi.Input[str]


class Database(pulumi.ComponentResource):
    """One Postgres instance without a public IP, TLS required, backed up; a database and user per service."""

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("churnops:infra:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cfg = args.config
        self.instance = gcp.sql.DatabaseInstance(
            f"{name}-postgres",
            name="churnops-metadata",
            region=args.region,
            database_version=versions.POSTGRES,
            deletion_protection=cfg.deletion_protection,
            settings={
                "tier": cfg.tier,
                "edition": "ENTERPRISE",
                "availability_type": "REGIONAL" if cfg.high_availability else "ZONAL",
                "disk_size": cfg.disk_size_gb,
                "disk_autoresize": True,
                "deletion_protection_enabled": cfg.deletion_protection,
                "ip_configuration": {
                    "ipv4_enabled": False,
                    "private_network": args.network,
                    "ssl_mode": "ENCRYPTED_ONLY",
                },
                "backup_configuration": {
                    "enabled": True,
                    "point_in_time_recovery_enabled": True,
                    "start_time": "02:00",
                },
                "database_flags": [{"name": "log_min_duration_statement", "value": "1000"}],
                "insights_config": {"query_insights_enabled": True},
                "user_labels": {"app": "churnops"},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.private_services]),
        )
        for database, password in ((names.DB_MLFLOW, args.mlflow_password), (names.DB_LAKEFS, args.lakefs_password)):
            gcp.sql.Database(f"{name}-{database}", name=database, instance=self.instance.name, opts=child)
            gcp.sql.User(
                f"{name}-{database}-user", name=database, instance=self.instance.name, password=password, opts=child
            )
        # MLflow's basic-auth app keeps its users and permissions in a database of its own, as the MLflow user.
        gcp.sql.Database(
            f"{name}-{names.DB_MLFLOW_AUTH}", name=names.DB_MLFLOW_AUTH, instance=self.instance.name, opts=child
        )
        self.private_ip = self.instance.private_ip_address
        self.register_outputs({"instance": self.instance.connection_name, "private_ip": self.private_ip})
