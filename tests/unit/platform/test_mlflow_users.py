"""The MLflow users are the platform's identities: each cluster user's name is what its identity logs in as."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from pathlib import Path

import sqlalchemy
import yaml

from churnops.platform import declaration as platform
from churnops.platform import mlflow_server_auth, mlflow_users

REPOSITORY = Path(__file__).resolve().parents[3]


def test_every_cluster_user_is_a_declared_identitys_account() -> None:
    for user in mlflow_users.USERS:
        for key in user.identities:
            assert platform.identity(key).gsa == user.name
    assert set(mlflow_users.CLUSTER_USERS) == {
        "churnops-training",
        "churnops-deployer",
        "churnops-scoring",
        "churnops-purge",
    }


def test_pipeline_tasks_log_in_as_their_service_account() -> None:
    """A task's MLflow user is its pod's service account (pipelines/common.py): every pipeline that calls MLflow
    runs as an account named like its user; ingest and the aggregates backfill (which runs as ingest) call no MLflow
    and have none."""
    for pipeline, key in platform.PIPELINE_IDENTITY.items():
        user = mlflow_users.user_of(key)
        if pipeline in ("ingest", "aggregates-backfill"):
            assert user is None
            continue
        assert user is not None and platform.identity(key).ksa == user.name, pipeline


def test_only_training_and_the_deployer_move_aliases() -> None:
    assert mlflow_users.ALIAS_MOVERS == ("churnops-training", "churnops-deployer")
    assert mlflow_users.user_of(platform.PIPELINE_IDENTITY["drift"]) == mlflow_users.user_of("pipeline-training")


def test_the_declared_authorization_function_is_the_servers() -> None:
    """The cluster's release and the local stack name the function by the declaration's string."""
    module, _, name = platform.MLFLOW_AUTHORIZATION_FUNCTION.partition(":")
    assert getattr(importlib.import_module(module), name) is mlflow_server_auth.authenticate_request
    assert mlflow_server_auth.AUTHORIZATION_FUNCTION == platform.MLFLOW_AUTHORIZATION_FUNCTION


def test_the_components_image_carries_the_driver_of_mlflows_cloud_sql_stores() -> None:
    """The cluster's MLflow server runs the components image (installed from requirements.runtime.lock) and
    reaches its tracking and auth stores on Cloud SQL as ``postgresql://`` with the chart's default driver
    (``driver: ""`` in the vendored values): SQLAlchemy's dialect for that scheme must find its DB-API module,
    and the module's distribution must be one the runtime lock installs."""
    values = yaml.safe_load((REPOSITORY / "tests/specs/upstream/charts/mlflow-1.7.3/values.yaml").read_text())
    assert values["backendStore"]["postgres"]["driver"] == values["auth"]["postgres"]["driver"] == ""
    dbapi = sqlalchemy.engine.make_url("postgresql://mlflow@127.0.0.1/mlflow").get_dialect().import_dbapi()
    distributions = importlib.metadata.packages_distributions()[dbapi.__name__.split(".")[0]]
    runtime_lock = (REPOSITORY / "requirements.runtime.lock").read_text(encoding="utf-8")
    assert any(re.search(rf"^{re.escape(name.lower())}==", runtime_lock, re.MULTILINE) for name in distributions)
