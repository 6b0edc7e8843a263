"""The real Secret Manager client (REST transport) against the local Secret Manager double."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud.secretmanager import SecretManagerServiceClient

from churnops.data.privacy import Tokenizer
from churnops.platform.secrets import (
    SecretCorrupted,
    SecretError,
    SecretManagerSecrets,
    SecretNotFound,
    tokenization_key,
    tokenization_keys,
)
from churnops.platform.settings import Settings
from tests.support.secret_manager_double import SecretManagerDouble

PROJECT = "churnops-test"


@pytest.fixture(name="double")
def double_fixture() -> Iterator[SecretManagerDouble]:
    """A running Secret Manager double."""
    with SecretManagerDouble() as double:
        yield double


@pytest.fixture(name="gcp_settings")
def gcp_settings_fixture(double: SecretManagerDouble, tmp_path: Path) -> Settings:
    """GKE-profile settings whose Secret Manager endpoint is the double."""
    return Settings(
        profile="gke",
        secrets_backend="gcp",
        secret_manager_endpoint=double.url,
        gcp_project=PROJECT,
        state_dir=tmp_path,
    )


def test_tokenization_key_comes_from_latest_version(double: SecretManagerDouble, gcp_settings: Settings) -> None:
    """The key is the latest version's payload, fetched once."""
    name = gcp_settings.tokenization_key_secret
    double.add_version(PROJECT, name, b"first-key-".ljust(32, b"1"))
    newest = bytes(range(256))[:48]
    double.add_version(PROJECT, name, newest)
    key = tokenization_key(gcp_settings)
    assert key == newest
    assert double.accessed == [f"projects/{PROJECT}/secrets/{name}/versions/2"]
    assert Tokenizer(key).token("CUST-0000001").startswith("tok_")


def test_numbered_version(double: SecretManagerDouble) -> None:
    """A numbered version can be pinned; a version that does not exist is :class:`SecretNotFound`."""
    double.add_version(PROJECT, "api-key", b"one")
    double.add_version(PROJECT, "api-key", b"two")
    client = SecretManagerServiceClient(
        credentials=AnonymousCredentials(), transport="rest", client_options={"api_endpoint": double.url}
    )
    assert SecretManagerSecrets(PROJECT, client, version="1").get("api-key") == b"one"
    with pytest.raises(SecretNotFound, match="versions/3"):
        SecretManagerSecrets(PROJECT, client, version="3").get("api-key")


def test_missing_secret_is_secret_not_found(gcp_settings: Settings) -> None:
    """A secret that does not exist is :class:`SecretNotFound` naming it."""
    with pytest.raises(SecretNotFound, match="secrets/churnops-tokenization-key"):
        tokenization_key(gcp_settings)


def test_corrupted_payload_is_refused(double: SecretManagerDouble, gcp_settings: Settings) -> None:
    """A payload whose CRC32C does not match is refused, without echoing it."""
    secret = b"k" * 32
    double.add_version(PROJECT, gcp_settings.tokenization_key_secret, secret, crc32c=12345)
    with pytest.raises(SecretCorrupted, match="does not match its CRC32C checksum") as caught:
        tokenization_key(gcp_settings)
    assert "kkkk" not in str(caught.value)


def test_short_key_in_secret_manager_is_refused(double: SecretManagerDouble, gcp_settings: Settings) -> None:
    """A too-short key from Secret Manager is refused."""
    double.add_version(PROJECT, gcp_settings.tokenization_key_secret, b"short")
    with pytest.raises(SecretError, match="shorter than 32 bytes"):
        tokenization_key(gcp_settings)


def test_every_key_version_is_read_by_number(double: SecretManagerDouble, gcp_settings: Settings) -> None:
    """After a rotation the chain needs every version: read by number up to what ``latest`` names."""
    name = gcp_settings.tokenization_key_secret
    versions = [bytes([n]) * 32 for n in (1, 2, 3)]
    for version in versions:
        double.add_version(PROJECT, name, version)
    assert tokenization_keys(gcp_settings) == versions
    assert double.accessed == [f"projects/{PROJECT}/secrets/{name}/versions/{n}" for n in (3, 1, 2)]
