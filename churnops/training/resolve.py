"""A registry reference (an alias such as ``production``, or a version number) resolved to one registered version.

Scoring and the drift and performance checks read the model a reference names at one moment: the pipelines resolve
it once, in a step of its own whose output is the model (a KFP ``Model`` artifact with the version in its metadata),
so the run's lineage shows which version the later steps used, and an alias moved meanwhile changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from churnops.errors import RegistryError
from churnops.model import registry
from churnops.platform.settings import Settings


@dataclass(frozen=True)
class ResolvedModel:
    """The registered version ``ref`` named when it was resolved: its model URI, the run that logged it and the
    data commit it was trained on."""

    name: str
    ref: str
    version: str
    model_uri: str
    run_id: str
    data_commit: str

    def metadata(self) -> dict[str, str]:
        """What the pipelines' ``Model`` artifact carries."""
        return {
            "registered_model": self.name,
            "model_ref": self.ref,
            "version": self.version,
            "model_uri": self.model_uri,
            "run_id": self.run_id,
            "data_commit": self.data_commit,
        }


def resolve_model(settings: Settings, ref: str) -> ResolvedModel:
    """The version of the settings' registered model that ``ref`` (an alias, or a version number) names now;
    :class:`RegistryError` when no version holds the alias or the version does not exist."""
    client = registry.use_tracking(settings)
    name = settings.registered_model
    version = ref if ref.isdigit() else registry.alias_holder(client, name, ref)
    if version is None:
        raise RegistryError(f"no version of {name!r} holds the {ref!r} alias")
    found = registry.model_version(client, name, version)
    return ResolvedModel(
        name=name,
        ref=ref,
        version=str(found.version),
        model_uri=f"models:/{name}/{found.version}",
        run_id=registry.run_id_of(found),
        data_commit=(found.tags or {}).get("data_commit", ""),
    )
