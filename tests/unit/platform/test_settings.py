"""Settings precedence: keyword > environment > profile default > field default."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnops.errors import ConfigurationError
from churnops.platform.settings import Settings, get_settings


def test_local_defaults_are_loopback_and_local_state(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CHURNOPS_PROFILE", "CHURNOPS_GCS_PORT", "CHURNOPS_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.gcs_endpoint == "http://127.0.0.1:4443"
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5050"
    assert settings.state_dir == Path(".local")
    assert settings.versioning_backend == "embedded"
    assert settings.secrets_backend == "local"


def test_environment_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_GCS_PORT", "9999")
    monkeypatch.setenv("CHURNOPS_RAW_BUCKET", "other-bucket")
    settings = Settings()
    assert settings.gcs_port == 9999
    assert settings.gcs_endpoint == "http://127.0.0.1:9999"
    assert settings.raw_bucket == "other-bucket"


def test_keyword_overrides_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_RAW_BUCKET", "from-env")
    assert Settings(raw_bucket="from-kwarg").raw_bucket == "from-kwarg"


def test_gke_profile_switches_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_PROFILE", "gke")
    settings = Settings()
    assert settings.gcs_endpoint is None  # real GCS, Workload Identity
    assert settings.versioning_backend == "lakefs"
    assert settings.secrets_backend == "gcp"
    assert settings.mlflow_tracking_uri is not None and "svc.cluster.local" in settings.mlflow_tracking_uri


def test_environment_beats_gke_profile_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_PROFILE", "gke")
    monkeypatch.setenv("CHURNOPS_VERSIONING_BACKEND", "embedded")
    assert Settings().versioning_backend == "embedded"
    assert Settings(versioning_backend="lakefs").versioning_backend == "lakefs"


def test_lakefs_accepts_its_standard_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEFS_ENDPOINT", "http://lakefs.example:8000/api/v1")
    monkeypatch.setenv("LAKEFS_SECRET_ACCESS_KEY", "s3cr3t")
    settings = Settings()
    assert settings.lakefs_endpoint == "http://lakefs.example:8000/api/v1"
    assert settings.lakefs_secret_access_key is not None
    assert "s3cr3t" not in repr(settings)


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_INGEST_LOOKBACK_HOURS", "-1")
    with pytest.raises(ValueError, match="ingest_lookback_hours"):
        Settings()


def test_invalid_settings_are_one_configuration_error_naming_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_INGEST_LOOKBACK_HOURS", "500")
    monkeypatch.setenv("CHURNOPS_FEATURE_WINDOWS_HOURS", "[6, 6]")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError) as raised:
            get_settings()
    finally:
        get_settings.cache_clear()
    message = str(raised.value)
    assert "CHURNOPS_INGEST_LOOKBACK_HOURS" in message and "CHURNOPS_FEATURE_WINDOWS_HOURS: Value error" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHURNOPS_ERASURE_GRACE_HOURS", "169"),
        ("CHURNOPS_ERASURE_GRACE_HOURS", "-1"),
        ("CHURNOPS_LAKEFS_GC_RETENTION_DAYS", "22"),
        ("CHURNOPS_LAKEFS_GC_RETENTION_DAYS", "0"),
    ],
)
def test_erasure_bounds_keep_every_copy_under_one_month(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match=name):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_erasure_grace_defaults_and_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().erasure_grace_hours == 72 and Settings().lakefs_gc_retention_days == 7
    monkeypatch.setenv("CHURNOPS_ERASURE_GRACE_HOURS", "0")
    assert Settings().erasure_grace_hours == 0
