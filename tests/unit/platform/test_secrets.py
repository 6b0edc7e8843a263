"""Local secrets source and the tokenization key rules."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from churnops.platform.secrets import (
    LocalSecrets,
    SecretError,
    SecretManagerSecrets,
    SecretNotFound,
    secret_source,
    tokenization_key,
    tokenization_keys,
)
from churnops.platform.settings import Settings


def mode(path: Path) -> int:
    """Permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


def changed(settings: Settings, **changes: object) -> Settings:
    """A validated copy of ``settings`` with some fields changed."""
    return Settings(**{**settings.model_dump(), **changes})


def test_local_get_reads_file_and_reports_missing(settings: Settings) -> None:
    """A secret is its file's bytes; a missing file is :class:`SecretNotFound`."""
    source = LocalSecrets(settings)
    with pytest.raises(SecretNotFound, match="'db-password'"):
        source.get("db-password")
    settings.local_secrets_dir.mkdir(parents=True)
    (settings.local_secrets_dir / "db-password").write_bytes(b"\x00\xffvalue")
    assert source.get("db-password") == b"\x00\xffvalue"


def test_ensure_creates_private_random_key_once(settings: Settings) -> None:
    """``ensure`` creates a private random key once and returns it ever after."""
    source = LocalSecrets(settings)
    key = source.ensure("signing-key", 48)
    path = settings.local_secrets_dir / "signing-key"
    assert len(key) == 48
    assert path.read_bytes() == key
    assert mode(path) == 0o600
    assert mode(settings.local_secrets_dir) == 0o700
    assert source.ensure("signing-key", 48) == key
    assert LocalSecrets(settings).get("signing-key") == key
    assert sorted(p.name for p in settings.local_secrets_dir.iterdir()) == ["signing-key"]
    assert LocalSecrets(settings).ensure("other-key") != key


def test_concurrent_ensure_agrees_on_one_key(settings: Settings) -> None:
    """Callers racing to create the same key all get the one that was stored."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: LocalSecrets(settings).ensure("shared-key"), range(16)))
    assert keys == {(settings.local_secrets_dir / "shared-key").read_bytes()}
    assert sorted(p.name for p in settings.local_secrets_dir.iterdir()) == ["shared-key"]


def test_names_that_escape_the_directory_are_rejected(settings: Settings) -> None:
    """Secret names cannot point outside the secrets directory."""
    source = LocalSecrets(settings)
    for name in ["../outside", "a/b", "", ".hidden"]:
        with pytest.raises(ValueError, match="invalid secret name"):
            source.get(name)


def test_tokenization_key_from_settings_wins_and_is_not_shown(settings: Settings) -> None:
    """``CHURNOPS_TOKENIZATION_KEY`` is used as is, no file is created and no repr shows it."""
    value = "k" * 40
    configured = changed(settings, tokenization_key=value)
    assert tokenization_key(configured) == value.encode()
    assert not settings.local_secrets_dir.exists()
    assert value not in repr(secret_source(configured))


def test_tokenization_key_is_created_on_local_profile(settings: Settings) -> None:
    """On the local profile a missing key is created and then reused."""
    key = tokenization_key(settings)
    assert len(key) == 32
    assert (settings.local_secrets_dir / settings.tokenization_key_secret).read_bytes() == key
    assert tokenization_key(settings) == key


def test_short_tokenization_key_is_refused(settings: Settings) -> None:
    """A key under 32 bytes is refused without echoing it."""
    short = changed(settings, tokenization_key="too-short")
    with pytest.raises(SecretError, match="shorter than 32 bytes") as caught:
        tokenization_key(short)
    assert "too-short" not in str(caught.value)


def test_missing_key_is_not_created_outside_local_profile(tmp_path: Path) -> None:
    """Outside the local profile a missing key is an error, never silently created."""
    gke_local_files = Settings(profile="gke", secrets_backend="local", state_dir=tmp_path)
    with pytest.raises(SecretNotFound):
        tokenization_key(gke_local_files)
    assert not (tmp_path / "secrets").exists()


def test_secret_source_picks_backend(settings: Settings) -> None:
    """The backend setting selects the source."""
    assert isinstance(secret_source(settings), LocalSecrets)
    gcp = changed(settings, secrets_backend="gcp", secret_manager_endpoint="http://127.0.0.1:9")
    source = secret_source(gcp)
    assert isinstance(source, SecretManagerSecrets)
    assert source.project == settings.gcp_project


def test_secret_manager_version_is_validated() -> None:
    """Only 'latest' or a positive version number is accepted."""
    with pytest.raises(ValueError, match="invalid secret version"):
        SecretManagerSecrets("proj", client=object(), version="0")  # type: ignore[arg-type]


def test_local_key_versions_are_added_privately_and_read_oldest_first(settings: Settings) -> None:
    """``add_version`` writes ``<name>.v2`` (0600) and ``tokenization_keys`` reads every version in order."""
    first = tokenization_key(settings)
    source = LocalSecrets(settings)
    assert source.add_version(settings.tokenization_key_secret) == 2
    second = source.version_path(settings.tokenization_key_secret, 2)
    assert mode(second) == 0o600 and second.read_bytes() != first
    assert tokenization_keys(settings) == [first, second.read_bytes()]
    assert source.add_version(settings.tokenization_key_secret) == 3
    assert len(tokenization_keys(settings)) == 3 and tokenization_keys(settings)[0] == first
