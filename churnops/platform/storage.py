"""Google Cloud Storage access, the same code against GCS and fake-gcs-server.

Locally ``Settings.gcs_endpoint`` points the real google-cloud-storage client at the emulator
(anonymous credentials); on GKE it is unset and the client uses Workload Identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from google.api_core.exceptions import Conflict, Forbidden, GoogleAPIError, NotFound, RetryError, Unauthorized
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import TransportError
from google.cloud import storage

from churnops.errors import ChurnopsError, ServiceUnavailable
from churnops.platform.settings import Settings


class StorageError(ChurnopsError):
    """The object store refused an operation: no such bucket or object, access denied."""


class StorageUnavailable(StorageError, ServiceUnavailable):
    """The object store (GCS or the local emulator) cannot be reached."""


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Map the storage client's exceptions raised inside to :class:`StorageError` / :class:`StorageUnavailable`."""
    try:
        yield
    except (NotFound, Forbidden, Unauthorized) as exc:
        raise StorageError(f"{what}: {exc.code} {type(exc).__name__}") from exc
    except (RetryError, TransportError, requests.ConnectionError, requests.Timeout) as exc:
        raise StorageUnavailable(f"{what}: cannot reach the object store ({type(exc).__name__})") from exc
    except GoogleAPIError as exc:
        raise StorageUnavailable(f"{what}: the object store failed ({type(exc).__name__})") from exc


@dataclass(frozen=True)
class ObjectRef:
    """One object version in a bucket: name plus GCS generation."""

    bucket: str
    name: str
    generation: int
    size: int
    content_encoding: str | None = None
    """The object's ``Content-Encoding`` metadata (``gzip`` for ``gsutil cp -Z``), or None."""


def storage_client(settings: Settings) -> storage.Client:
    """A client for GCS, or for the emulator when ``gcs_endpoint`` is set."""
    if settings.gcs_endpoint:
        return storage.Client(
            project=settings.gcp_project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": settings.gcs_endpoint},
        )
    return storage.Client(project=settings.gcp_project)


def ensure_bucket(client: storage.Client, name: str) -> storage.Bucket:
    """Return bucket ``name``, creating it if it does not exist (idempotent)."""
    with storage_errors(f"bucket gs://{name}"):
        try:
            return client.get_bucket(name)
        except NotFound:
            try:
                return client.create_bucket(name)
            except Conflict:
                return client.get_bucket(name)


def list_objects(client: storage.Client, bucket: str, prefix: str) -> Iterator[ObjectRef]:
    """Every live object under ``prefix``, with its generation."""
    with storage_errors(f"listing gs://{bucket}/{prefix}"):
        blobs = list(client.list_blobs(bucket, prefix=prefix))
    for blob in blobs:
        yield ObjectRef(
            bucket=bucket,
            name=blob.name,
            generation=int(blob.generation),
            size=int(blob.size or 0),
            content_encoding=blob.content_encoding or None,
        )


def list_prefixes(client: storage.Client, bucket: str, prefix: str) -> tuple[list[str], list[str]]:
    """One level under ``prefix``: the sub-prefixes ("folders", ending in ``/``) and the object names there."""
    with storage_errors(f"listing gs://{bucket}/{prefix}"):
        blobs = client.list_blobs(bucket, prefix=prefix, delimiter="/")
        names = [blob.name for blob in blobs]  # the prefixes are known once the pages are consumed
    return sorted(blobs.prefixes), names


def read_object(client: storage.Client, ref: ObjectRef) -> bytes:
    """The stored bytes of exactly this generation (fails if it was overwritten since listing).

    The bytes are read as stored: an object with ``Content-Encoding: gzip`` is not decompressed
    on the way (``ref.content_encoding`` says how to decode it), so what is read does not depend
    on the client's transcoding.
    """
    blob = client.bucket(ref.bucket).blob(ref.name, generation=ref.generation)
    with storage_errors(f"reading gs://{ref.bucket}/{ref.name}#{ref.generation}"):
        data: bytes = blob.download_as_bytes(raw_download=True)  # google-cloud-storage is untyped
        return data


def write_object(client: storage.Client, bucket: str, name: str, data: bytes, content_type: str) -> ObjectRef:
    """Upload ``data`` to ``gs://bucket/name`` and return the new generation."""
    blob = client.bucket(bucket).blob(name)
    with storage_errors(f"writing gs://{bucket}/{name}"):
        blob.upload_from_string(data, content_type=content_type)
    return ObjectRef(bucket=bucket, name=name, generation=int(blob.generation), size=len(data))
