"""Secrets: one small interface, a local source and a Google Secret Manager source.

Locally (``secrets_backend="local"``) a secret is a file ``<state_dir>/secrets/<name>`` (directory
0700, file 0600); the tokenization key may instead come from ``CHURNOPS_TOKENIZATION_KEY``, whose
value is used as its UTF-8 bytes. On GKE (``secrets_backend="gcp"``) secrets come from Secret Manager
through Workload Identity; setting ``secret_manager_endpoint`` points the real client (REST
transport, anonymous credentials) at another server, which is how the tests reach a local double.

Secret values never appear in log lines, reprs or exception messages.
"""

from __future__ import annotations

import logging
import os
import re
import secrets as random_source
import tempfile
from pathlib import Path
from typing import Protocol

import google_crc32c
import requests
from google.api_core.exceptions import (
    FailedPrecondition,
    Forbidden,
    GoogleAPIError,
    NotFound,
    RetryError,
    Unauthenticated,
)
from google.auth.credentials import AnonymousCredentials
from google.cloud.secretmanager import SecretManagerServiceClient

from churnops.errors import ChurnopsError, ConfigurationError, ServiceUnavailable
from churnops.platform.settings import Settings

logger = logging.getLogger(__name__)

MIN_TOKENIZATION_KEY_BYTES = 32  # the key-length rule; the tokenizer (churnops.data.privacy) imports it

# Secret Manager's rule for secret ids; also keeps local names inside the secrets directory.
_SECRET_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
_VERSION = re.compile(r"latest|[1-9][0-9]*")


class SecretError(ChurnopsError):
    """A secret could not be obtained or is unusable."""


class SecretNotFound(SecretError):
    """The named secret (or secret version) does not exist."""


class SecretCorrupted(SecretError):
    """The secret's payload does not match the checksum the server sent with it."""


class SecretAccessDenied(SecretError):
    """Secret Manager refused this identity access to the secret."""


class SecretsUnavailable(SecretError, ServiceUnavailable):
    """Secret Manager cannot be reached (or keeps failing)."""


class InvalidSecretName(SecretError, ConfigurationError, ValueError):
    """A secret name or version that Secret Manager would not accept."""


class SecretSource(Protocol):
    """Anything that returns a secret's bytes by name."""

    def get(self, name: str) -> bytes:
        """The secret's value; raises :class:`SecretNotFound` if there is none."""

    def versions(self, name: str) -> list[bytes]:
        """Every version of the secret, oldest first."""


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _SECRET_NAME.fullmatch(name):
        raise InvalidSecretName(
            f"invalid secret name {name!r}: use 1-255 letters, digits, '_' or '-' (Secret Manager's rule)"
        )
    return name


class LocalSecrets:
    """Secrets for the local profile: the tokenization key from settings, else one file per secret."""

    def __init__(self, settings: Settings) -> None:
        self._directory = Path(settings.local_secrets_dir)
        self._key_name = settings.tokenization_key_secret
        self._key_from_settings = settings.tokenization_key

    def __repr__(self) -> str:
        return f"LocalSecrets(directory={str(self._directory)!r})"

    def path(self, name: str) -> Path:
        """The file that holds secret ``name``."""
        return self._directory / _check_name(name)

    def get(self, name: str) -> bytes:
        """The secret's bytes; raises :class:`SecretNotFound` when neither settings nor a file has it."""
        path = self.path(name)
        if name == self._key_name and self._key_from_settings is not None:
            return self._key_from_settings.get_secret_value().encode("utf-8")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise SecretNotFound(f"secret {name!r} not found: no file {path}") from None

    def versions(self, name: str) -> list[bytes]:
        """Every version of secret ``name``, oldest first: ``<name>`` (or the settings' key), then ``<name>.v2``, ...

        Raises :class:`SecretNotFound` when there is no first version.
        """
        found = [self.get(name)]
        number = 2
        while (path := self.version_path(name, number)).exists():
            found.append(path.read_bytes())
            number += 1
        return found

    def version_path(self, name: str, number: int) -> Path:
        """The file of version ``number`` (2 or more) of secret ``name``."""
        return self._directory / f"{_check_name(name)}.v{number}"

    def add_version(self, name: str, nbytes: int = MIN_TOKENIZATION_KEY_BYTES) -> int:
        """Add a version of ``nbytes`` random bytes to secret ``name`` (mode 0600); return its number."""
        number = len(self.versions(name)) + 1
        path = self.version_path(name, number)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # none yet when version 1 is the settings' key
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(random_source.token_bytes(nbytes))
        logger.info("added version %d of local secret %s", number, name)
        return number

    def ensure(self, name: str, nbytes: int = MIN_TOKENIZATION_KEY_BYTES) -> bytes:
        """Return secret ``name``, first creating it as ``nbytes`` random bytes if it does not exist.

        The file is written to a private temporary file and linked into place, so concurrent callers
        all end up with the same value and nobody reads a half-written file.
        """
        if nbytes < 1:
            raise ValueError(f"nbytes must be positive, got {nbytes}")
        try:
            return self.get(name)
        except SecretNotFound:
            pass
        path = self.path(name)
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self._directory, prefix=f".{name}.")  # mode 0600
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(random_source.token_bytes(nbytes))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
                logger.info("created local secret %s (%d random bytes)", name, nbytes)
            except FileExistsError:
                pass  # another process created it first; use theirs
        finally:
            os.unlink(temporary)
        return path.read_bytes()


class SecretManagerSecrets:
    """Secrets from Google Secret Manager, checked against the CRC32C the server sends."""

    def __init__(self, project: str, client: SecretManagerServiceClient | None = None, version: str = "latest") -> None:
        if not _VERSION.fullmatch(version):
            raise InvalidSecretName(f"invalid secret version {version!r}: use 'latest' or a version number")
        self.project = project
        self.version = version
        self._client = client if client is not None else SecretManagerServiceClient()

    def __repr__(self) -> str:
        return f"SecretManagerSecrets(project={self.project!r}, version={self.version!r})"

    def versions(self, name: str) -> list[bytes]:
        """Every version of secret ``name`` up to this source's version, oldest first.

        Each version is accessed by number (1 to the number ``latest`` resolves to); a disabled or
        destroyed version is an error, since tokens made under it can no longer be computed.
        """
        newest, data = self._access(name, self.version)
        number = int(newest.rsplit("/", 1)[-1])
        return [self._access(name, str(n))[1] for n in range(1, number)] + [data]

    def get(self, name: str) -> bytes:
        """Access the secret version; raises :class:`SecretNotFound` or :class:`SecretCorrupted`."""
        return self._access(name, self.version)[1]

    def _access(self, name: str, version: str) -> tuple[str, bytes]:
        path = self._client.secret_version_path(self.project, _check_name(name), version)
        try:
            response = self._client.access_secret_version(request={"name": path})
        except NotFound:
            raise SecretNotFound(f"secret version {path} not found") from None
        except (Forbidden, Unauthenticated) as exc:
            raise SecretAccessDenied(f"secret version {path}: access denied ({exc.code})") from None
        except FailedPrecondition:
            raise SecretNotFound(f"secret version {path} is disabled or destroyed") from None
        except (GoogleAPIError, RetryError, requests.RequestException) as exc:
            raise SecretsUnavailable(f"secret version {path}: Secret Manager failed ({type(exc).__name__})") from None
        data = response.payload.data
        if "data_crc32c" not in response.payload:
            logger.warning("Secret Manager returned %s without a checksum; not verified", response.name)
            return response.name or path, data
        if google_crc32c.value(data) != response.payload.data_crc32c:
            raise SecretCorrupted(
                f"secret version {response.name or path}: payload does not match its CRC32C checksum "
                "(corrupted in transit or storage); refusing to use it"
            )
        return response.name or path, data


def secret_source(settings: Settings) -> SecretSource:
    """The secret source that ``settings.secrets_backend`` names."""
    if settings.secrets_backend == "local":
        return LocalSecrets(settings)
    if settings.secret_manager_endpoint:
        client = SecretManagerServiceClient(
            credentials=AnonymousCredentials(),
            transport="rest",
            client_options={"api_endpoint": settings.secret_manager_endpoint},
        )
        return SecretManagerSecrets(settings.gcp_project, client)
    return SecretManagerSecrets(settings.gcp_project)


def tokenization_key(settings: Settings) -> bytes:
    """The PII tokenization key (at least 32 bytes).

    With the local backend on the local profile a missing key is created (32 random bytes); anywhere
    else a missing key is an error, because a new key would silently change every token.
    """
    name = settings.tokenization_key_secret
    source = secret_source(settings)
    if isinstance(source, LocalSecrets) and settings.profile == "local":
        key = source.ensure(name, MIN_TOKENIZATION_KEY_BYTES)
    else:
        key = source.get(name)
    return _long_enough(name, key)


def tokenization_keys(settings: Settings) -> list[bytes]:
    """Every version of the PII tokenization key, oldest first (each at least 32 bytes).

    A lake tokenized before a rotation needs them all (``churnops.data.privacy``); the first is
    created locally as :func:`tokenization_key` does.
    """
    name = settings.tokenization_key_secret
    source = secret_source(settings)
    if isinstance(source, LocalSecrets) and settings.profile == "local":
        source.ensure(name, MIN_TOKENIZATION_KEY_BYTES)
    return [_long_enough(name, key) for key in source.versions(name)]


def _long_enough(name: str, key: bytes) -> bytes:
    if len(key) < MIN_TOKENIZATION_KEY_BYTES:
        raise SecretError(
            f"tokenization key {name!r} is shorter than {MIN_TOKENIZATION_KEY_BYTES} bytes; store a longer random key"
        )
    return key
