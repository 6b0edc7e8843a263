"""The domain errors of churnops: what every backend and stage raises when something expected goes wrong.

Every error a user can cause or fix (bad data, a missing commit, a registry with no such model, a
setting that makes no sense, a service that is not there) is a :class:`ChurnopsError`. Backends map
their libraries' exceptions (``lakefs_sdk.ApiException``, ``requests.ConnectionError``,
``MlflowException``, ...) to these at their boundary, so callers handle one hierarchy. The CLI prints
a ``ChurnopsError`` as one line and exits 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ChurnopsError(Exception):
    """Base of every domain error; its message is one line a person can act on."""


class ConfigurationError(ChurnopsError):
    """A setting is missing, malformed or inconsistent."""


class ServiceUnavailable(ChurnopsError):
    """A service the operation needs (object store, lake, tracking server, model server) cannot be reached."""


class DataContractError(ChurnopsError):
    """Raw data, or the accounting of what happened to it, breaks the data contract."""


class VersioningError(ChurnopsError):
    """The data lake refused or could not carry out an operation."""


class RegistryError(ChurnopsError):
    """The model registry has no such model, version or alias, or refused a change."""


class DeploymentError(ChurnopsError):
    """Rendering, applying or verifying a deployment failed (the cluster said no, or the model server did)."""
