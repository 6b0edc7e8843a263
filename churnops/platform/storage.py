"""Google Cloud Storage access, the same code against GCS and fake-gcs-server.

Locally ``Settings.gcs_endpoint`` points the real google-cloud-storage client at the emulator
(anonymous credentials); on GKE it is unset and the client uses Workload Identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from google.api_core.exceptions import Conflict, NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from churnops.platform.settings import Settings


@dataclass(frozen=True)
class ObjectRef:
    """One object version in a bucket: name plus GCS generation."""

    bucket: str
    name: str
    generation: int
    size: int


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
    try:
        return client.get_bucket(name)
    except NotFound:
        try:
            return client.create_bucket(name)
        except Conflict:
            return client.get_bucket(name)


def list_objects(client: storage.Client, bucket: str, prefix: str) -> Iterator[ObjectRef]:
    """Every live object under ``prefix``, with its generation."""
    for blob in client.list_blobs(bucket, prefix=prefix):
        yield ObjectRef(bucket=bucket, name=blob.name, generation=int(blob.generation), size=int(blob.size or 0))


def read_object(client: storage.Client, ref: ObjectRef) -> bytes:
    """The bytes of exactly this generation (fails if it was overwritten since listing)."""
    blob = client.bucket(ref.bucket).blob(ref.name, generation=ref.generation)
    return blob.download_as_bytes()


def write_object(client: storage.Client, bucket: str, name: str, data: bytes, content_type: str) -> ObjectRef:
    """Upload ``data`` to ``gs://bucket/name`` and return the new generation."""
    blob = client.bucket(bucket).blob(name)
    blob.upload_from_string(data, content_type=content_type)
    return ObjectRef(bucket=bucket, name=name, generation=int(blob.generation), size=len(data))
