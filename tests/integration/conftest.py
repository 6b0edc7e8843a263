"""Real local services for integration tests, started once per session and stopped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from google.cloud import storage

from churnops.data.versioning.lakefs import LakeFSRepository
from churnops.local.localstack import LocalStack
from churnops.platform.mlflow_login import MLFLOW_LOGIN_VARIABLES, use_mlflow_credentials
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket, storage_client
from tests.conftest import free_port
from tests.support.lakefs_double import LakeFSDouble


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder ``integration`` (select with ``-m integration``)."""
    for item in items:
        if "tests/integration/" in item.nodeid:
            item.add_marker(pytest.mark.integration)


LAKE_BUCKET = "churnops-lake-test"  # the lakeFS double's storage namespaces on fake-gcs-server


@pytest.fixture(scope="session", name="stack_settings")
def fixture_stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for this session's local services: free ports, state in a temporary folder."""
    state = tmp_path_factory.mktemp("stack")
    return Settings(state_dir=state, gcs_port=free_port(), mlflow_port=free_port(), raw_bucket="churnops-raw-test")


@pytest.fixture(scope="session", name="gcs_stack")
def fixture_gcs_stack(stack_settings: Settings) -> Iterator[Settings]:
    """A running fake-gcs-server (with the raw bucket created); yields the settings pointing at it."""
    stack = LocalStack(stack_settings, only=("fake-gcs-server",))
    stack.up()
    yield stack_settings
    stack.down()


@pytest.fixture(scope="session", name="gcs_client")
def fixture_gcs_client(gcs_stack: Settings) -> storage.Client:
    """The real google-cloud-storage client, talking to the session's fake-gcs-server."""
    return storage_client(gcs_stack)


@pytest.fixture(scope="session", name="mlflow_tracking_uri")
def fixture_mlflow_tracking_uri(stack_settings: Settings) -> Iterator[str]:
    """A running MLflow tracking server (sqlite, local artifacts, basic auth); yields its URI. The session's
    clients (and the processes it starts) log in as the settings' user, ``churnops-training``."""
    stack = LocalStack(stack_settings, only=("mlflow",))
    stack.up()
    assert stack_settings.mlflow_tracking_uri is not None
    before = {name: os.environ.get(name) for name in MLFLOW_LOGIN_VARIABLES}
    assert use_mlflow_credentials(stack_settings)
    yield stack_settings.mlflow_tracking_uri
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    stack.down()


@pytest.fixture(scope="session", name="lakefs_double")
def fixture_lakefs_double() -> Iterator[LakeFSDouble]:
    """One lakeFS API double for the session, validating all traffic against the lakeFS spec."""
    with LakeFSDouble() as double:
        yield double


@pytest.fixture(scope="session", name="lakefs_double_gcs")
def fixture_lakefs_double_gcs(gcs_client: storage.Client) -> Iterator[LakeFSDouble]:
    """A lakeFS API double keeping its contents in the session's fake-gcs-server, bucket ``LAKE_BUCKET``, as
    lakeFS on GKE keeps them in the lake bucket (repositories on it take ``gs://LAKE_BUCKET/...`` namespaces)."""
    ensure_bucket(gcs_client, LAKE_BUCKET)
    with LakeFSDouble(storage_client=gcs_client) as double:
        yield double


def double_repository(
    double: LakeFSDouble, name: str, namespace_root: str = "local://churnops-tests"
) -> LakeFSRepository:
    """A lakeFS backend (the real lakefs-sdk) on repository ``name`` of the double, stored under ``namespace_root``."""
    return LakeFSRepository(
        endpoint=double.url,
        repository=name,
        access_key_id=double.access_key_id,
        secret_access_key=double.secret_access_key,
        storage_namespace=f"{namespace_root}/{name}",
        backoff_seconds=0.01,
    )
