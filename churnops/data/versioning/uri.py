"""Addresses of lake objects as URIs, and reading them back on either backend.

Training records two forms (see docs/reproducibility.md):

- ``s3://<repository>/<ref>/<path>``: the lakeFS S3-gateway address, the source of the datasets
  logged with ``mlflow.log_input`` (MLflow resolves ``s3://`` sources; it does not know ``lakefs://``);
- ``lakefs://<repository>/<ref>/<path>``: lakeFS's own URI form, used for the feature matrices.

Both name a repository, a ref (commit id or branch) and a path or prefix. The embedded backend
uses the same addresses with ``settings.lakefs_repository`` as its repository name, so a URI
recorded on either backend is read back by :func:`read_uri` on the backend that wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from churnops.data.versioning.base import DataRepository, InvalidArgument, NotFoundError, check_path

SCHEMES: tuple[str, ...] = ("s3://", "lakefs://")


@dataclass(frozen=True)
class LakeLocation:
    """A repository, a ref and a path (an object) or a prefix ending with ``/`` (a table)."""

    repository: str
    ref: str
    path: str

    @property
    def is_prefix(self) -> bool:
        """Whether the URI names a folder (ends with ``/``) rather than one object."""
        return self.path.endswith("/")


def parse_uri(uri: str) -> LakeLocation:
    """Split ``s3://`` or ``lakefs://`` ``<repository>/<ref>/<path>``; :class:`InvalidArgument` on anything else."""
    scheme = next((s for s in SCHEMES if uri.startswith(s)), None)
    if scheme is None:
        raise InvalidArgument(f"{uri!r} is not a lake URI: expected s3://<repository>/<ref>/<path> or lakefs://...")
    parts = uri[len(scheme) :].split("/", 2)
    if len(parts) < 3 or not all(parts):
        raise InvalidArgument(
            f"{uri!r} lacks a repository, a ref or a path: expected {scheme}<repository>/<ref>/<path>"
        )
    repository, ref, path = parts
    check_path(path.rstrip("/"))
    return LakeLocation(repository=repository, ref=ref, path=path)


def locate(uri: str, repository: str) -> LakeLocation:
    """:func:`parse_uri`, refusing a URI of another repository than ``repository`` (the configured one)."""
    location = parse_uri(uri)
    if location.repository != repository:
        raise NotFoundError(
            f"{uri} is in lake repository {location.repository!r}; this lake is {repository!r} "
            "(CHURNOPS_LAKEFS_REPOSITORY)"
        )
    return location


def read_uri(repo: DataRepository, repository: str, uri: str) -> bytes | pa.Table:
    """What ``uri`` names: an object's bytes, or (for a prefix, or a path holding parquet files) a table.

    Raises :class:`NotFoundError` when the ref or the path does not exist at that ref.
    """
    location = locate(uri, repository)
    ref = repo.resolve(location.ref)
    if not location.is_prefix:
        try:
            return repo.get_object(ref, location.path)
        except NotFoundError:
            if not repo.list_paths(ref, location.path + "/"):
                raise
    return repo.read_table(ref, location.path.rstrip("/") + "/")
