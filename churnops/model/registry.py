"""The model registry: one registered model whose versions move through aliases.

Aliases, in order: ``candidate`` (set by training when a model passes the gate) -> ``staging`` ->
``production``. :func:`promote` moves a version one step: it takes the version holding the previous
stage's alias, gives it the target alias and removes the previous alias. :func:`rollback` gives
``production`` back to the version that held it before the current one.

MLflow keeps no alias history, so every alias change is recorded as a tag on the version that
receives the alias: key ``alias_event.NNNN`` (numbered per version), value JSON with the alias, the
action (``assign``, ``promote``, ``rollback``), the version that held the alias before, the time
(UTC) and the actor (:func:`resolve_actor`: an explicit actor, the CI build, the service account, or
the OS user as a last resort). :func:`production_history` rebuilds the production timeline from those tags.

:func:`find_version` finds a version by its tags (training uses it to register a result once).
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import mlflow
import requests
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from churnops.errors import RegistryError, ServiceUnavailable
from churnops.platform import cluster_proxy
from churnops.platform.mlflow_login import FORWARDED_HEADER, mlflow_authorization, use_mlflow_credentials
from churnops.platform.retry import chain
from churnops.platform.settings import Settings

ALIASES: tuple[str, ...] = ("candidate", "staging", "production")
PREVIOUS_ALIAS: dict[str, str] = {"staging": "candidate", "production": "staging"}
EVENT_TAG_PREFIX = "alias_event."


class RegistryUnavailable(RegistryError, ServiceUnavailable):
    """The tracking server (which holds the registry) cannot be reached."""


class RegistryNotFound(RegistryError):
    """The registry has no such model, version, alias or run."""


# What MLflow's REST client chains to its MlflowException when the server did not answer (refused,
# timed out, or kept failing until the retries ran out).
UNREACHABLE: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.RetryError,
)
MISSING_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})


def domain_error(exc: MlflowException) -> RegistryError:
    """The domain error an MLflow exception stands for, decided by type and error code (never by its text).

    A server that did not answer (a ``requests`` connection error, timeout or exhausted retries in
    the chain) -> :class:`RegistryUnavailable`; no such model, version, alias or run ->
    :class:`RegistryNotFound`; any other refusal -> :class:`RegistryError` with MLflow's error code.
    """
    first_line = exc.message.splitlines()[0] if exc.message else ""
    if any(isinstance(cause, UNREACHABLE) for cause in chain(exc)):
        return RegistryUnavailable(f"MLflow tracking server unreachable: {first_line}")
    if exc.error_code in MISSING_CODES:
        return RegistryNotFound(f"not in the MLflow registry: {first_line}")
    return RegistryError(f"MLflow refused: {exc.error_code}: {first_line}")


@dataclass(frozen=True)
class Actor:
    """Who changes the registry, and how that was found out."""

    name: str
    source: str  # "explicit", "ci", "service-account" or "os-user"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class AliasEvent:
    """One alias change, as stored in a version tag."""

    alias: str
    action: str
    version: str
    from_version: str | None
    at: str
    by: str
    note: str = ""
    by_source: str = ""

    def to_json(self) -> str:
        """Compact JSON for the tag value."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "AliasEvent":
        """Parse a tag value written by :meth:`to_json`."""
        return cls(**json.loads(text))


def use_tracking(settings: Settings) -> MlflowClient:
    """Point this process's MLflow at the settings' tracking server and registry; return a client for them.

    Runs, ``runs:/`` and ``models:/`` URIs (whose artifacts resolve through the server) need both.
    """
    client = client_for(settings)
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client.tracking_uri)
    return client


@functools.cache
def _proxied_tracking(
    address: str, kubeconfig: Path | None, context: str | None, login: str | None
) -> cluster_proxy.Forwarder:
    """The tracking server behind ``address``, resolved from the kubeconfig and probed once per process
    (MLflow's own error for a refusal names neither cause nor remedy), at a loopback address that holds
    the credentials: one per address, kubeconfig, context and MLflow login."""
    service = cluster_proxy.resolve(address, kubeconfig, context)
    try:
        cluster_proxy.probe(service, "/health", f"MLflow at {address}")
    except ServiceUnavailable as exc:
        raise RegistryUnavailable(str(exc)) from exc
    headers = {FORWARDED_HEADER: login} if login else {}
    return cluster_proxy.Forwarder(service, headers)


def tracking_uri(settings: Settings) -> str:
    """The settings' tracking URI as MLflow takes it.

    A direct address is itself, and MLflow's clients in this process log in as the settings' MLflow
    user (:func:`churnops.platform.mlflow_login.use_mlflow_credentials`). A ``k8s://mlflow/mlflow:5000``
    address (a build outside the cluster, :mod:`churnops.platform.cluster_proxy`) becomes the address
    of a :class:`~churnops.platform.cluster_proxy.Forwarder` to the API server's proxy URL, which holds
    the kubeconfig's token and CA certificate and the MLflow user's credentials (in
    ``X-MLflow-Authorization``: the API server keeps ``Authorization`` for itself); nothing of them
    enters the environment, so clients of two settings (two MLflow users) work side by side.
    """
    if not settings.mlflow_tracking_uri:
        raise RegistryError("no MLflow tracking URI is configured (CHURNOPS_MLFLOW_TRACKING_URI)")
    if not cluster_proxy.is_proxied(settings.mlflow_tracking_uri):
        use_mlflow_credentials(settings)
        return settings.mlflow_tracking_uri
    return _proxied_tracking(
        settings.mlflow_tracking_uri, settings.kubeconfig, settings.kube_context, mlflow_authorization(settings)
    ).url


@contextlib.contextmanager
def resume_run(run_id: str) -> Iterator[mlflow.ActiveRun]:
    """Log into the existing run ``run_id``, whichever experiment this process last made active.

    ``mlflow.start_run(run_id=...)`` refuses a run outside the active experiment, which a
    long-lived process (a drift check followed by a reproduction, a test session) may have moved.
    """
    mlflow.set_experiment(experiment_id=mlflow.get_run(run_id).info.experiment_id)
    with mlflow.start_run(run_id=run_id) as run:
        yield run


def client_for(settings: Settings) -> MlflowClient:
    """An MLflow client for the settings' tracking server (the registry lives there too)."""
    uri = tracking_uri(settings)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def current_user() -> str:
    """The operating-system user running this process ("unknown" when it has no name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def resolve_actor(settings: Settings | None = None, explicit: str | None = None) -> Actor:
    """The actor of a registry change: ``explicit`` (``--actor``), else ``settings.actor``, the CI build
    (``ci:<build id>``), the service account (``sa:<name>``), and the OS user only as a last resort."""
    if explicit:
        return Actor(explicit, "explicit")
    if settings is not None:
        if settings.actor:
            return Actor(settings.actor, "explicit")
        if settings.ci_build_id:
            return Actor(f"ci:{settings.ci_build_id}", "ci")
        if settings.service_account:
            return Actor(f"sa:{settings.service_account}", "service-account")
    return Actor(current_user(), "os-user")


def _is_missing(exc: MlflowException) -> bool:
    return exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def _model_absent(client: MlflowClient, name: str, exc: MlflowException) -> bool:
    """Whether ``exc`` means that no registered model ``name`` exists. MLflow's basic-auth app answers a
    request about a model that does not exist with 403 (no permission can be looked up): a search, which
    it filters instead of refusing, tells the two apart."""
    if _is_missing(exc):
        return True
    return exc.error_code == "PERMISSION_DENIED" and not client.search_registered_models(
        filter_string=f"name = '{_quoted(name)}'"
    )


def model_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    """Version ``version`` of model ``name``; :class:`RegistryNotFound` naming both when either does not exist
    (which MLflow's basic-auth app answers with 403 for a model that does not exist)."""
    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        if _model_absent(client, name, exc):
            raise RegistryNotFound(f"model {name!r} has no version {version}") from exc
        raise


def run_id_of(version: ModelVersion) -> str:
    """The id of the MLflow run that logged ``version``; :class:`RegistryError` for a version registered
    from a source outside any run (MLflow allows it, churnops never registers one)."""
    if not version.run_id:
        raise RegistryError(f"version {version.version} of model {version.name!r} was not logged by a run")
    return version.run_id


def alias_holder(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version holding ``alias`` on model ``name``, or None (also when the model does not exist)."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if _model_absent(client, name, exc):
            return None
        raise


def _events_of(version: ModelVersion) -> list[tuple[int, AliasEvent]]:
    events = []
    for key, value in (version.tags or {}).items():
        if key.startswith(EVENT_TAG_PREFIX):
            events.append((int(key[len(EVENT_TAG_PREFIX) :]), AliasEvent.from_json(value)))
    return sorted(events, key=lambda item: item[0])


def _record(client: MlflowClient, name: str, event: AliasEvent) -> None:
    version = client.get_model_version(name, event.version)
    number = len(_events_of(version)) + 1
    client.set_model_version_tag(name, event.version, f"{EVENT_TAG_PREFIX}{number:04d}", event.to_json())


def assign_alias(  # pylint: disable=too-many-arguments
    client: MlflowClient,
    name: str,
    alias: str,
    version: str,
    action: str = "assign",
    note: str = "",
    actor: Actor | None = None,
) -> AliasEvent:
    """Point ``alias`` at ``version`` and record the change, and who made it, on that version."""
    if alias not in ALIASES:
        raise RegistryError(f"unknown alias {alias!r}; expected one of {list(ALIASES)}")
    actor = actor or resolve_actor()
    previous = alias_holder(client, name, alias)
    client.set_registered_model_alias(name, alias, str(version))
    event = AliasEvent(
        alias=alias,
        action=action,
        version=str(version),
        from_version=previous,
        at=datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        by=actor.name,
        note=note,
        by_source=actor.source,
    )
    _record(client, name, event)
    return event


def register_version(name: str, model_uri: str, tags: dict[str, str]) -> str:
    """Register ``model_uri`` as a new version of ``name`` (created if needed); return the version.

    Uses the tracking URI already set with :func:`mlflow.set_tracking_uri`.
    """
    version = mlflow.register_model(model_uri, name, tags=tags)
    return str(version.version)


def find_version(client: MlflowClient, name: str, tags: dict[str, str]) -> str | None:
    """The oldest version of ``name`` whose tags include every item of ``tags`` (None if none, or no model)."""
    try:
        versions = client.search_model_versions(f"name = '{_quoted(name)}'")
    except MlflowException as exc:
        if _is_missing(exc):
            return None
        raise
    matching = [int(v.version) for v in versions if all((v.tags or {}).get(k) == value for k, value in tags.items())]
    return str(min(matching)) if matching else None


def find_run(client: MlflowClient, experiment_id: str, tags: dict[str, str]) -> str | None:
    """The oldest active run of the experiment whose tags include every item of ``tags`` (None if none)."""
    query = " and ".join(f"tags.{key} = '{_quoted(value)}'" for key, value in sorted(tags.items()))
    runs = client.search_runs([experiment_id], query, order_by=["attributes.start_time ASC"], max_results=1)
    return str(runs[0].info.run_id) if runs else None


def promote(client: MlflowClient, name: str, to: str, actor: Actor | None = None) -> AliasEvent:
    """Move the version holding the previous stage's alias to ``to`` ("staging" or "production")."""
    if to not in PREVIOUS_ALIAS:
        raise RegistryError(f"can only promote to {sorted(PREVIOUS_ALIAS)}, not {to!r}")
    source = PREVIOUS_ALIAS[to]
    version = alias_holder(client, name, source)
    if version is None:
        raise RegistryError(f"no version of {name!r} holds the {source!r} alias: nothing to promote to {to!r}")
    event = assign_alias(client, name, to, version, action="promote", note=f"from alias {source}", actor=actor)
    client.delete_registered_model_alias(name, source)
    return event


def all_events(client: MlflowClient, name: str) -> list[AliasEvent]:
    """Every recorded alias change of every version of ``name``, oldest first."""
    versions = client.search_model_versions(f"name = '{_quoted(name)}'")
    ordered = []
    for version in versions:
        for number, event in _events_of(version):
            ordered.append((event.at, int(event.version), number, event))
    return [item[-1] for item in sorted(ordered, key=lambda item: item[:3])]


def production_history(client: MlflowClient, name: str) -> list[str]:
    """Versions that held ``production``, oldest first, with rolled-back versions removed (a stack)."""
    return production_stack(all_events(client, name))


def production_stack(events: list[AliasEvent]) -> list[str]:
    """Replay alias events (oldest first): promotions push a version, a rollback pops the rolled-back one."""
    stack: list[str] = []
    for event in events:
        if event.alias != "production":
            continue
        if event.action == "rollback" and stack and stack[-1] == event.from_version:
            stack.pop()
        if not stack or stack[-1] != event.version:
            stack.append(event.version)
    return stack


def rollback(client: MlflowClient, name: str, actor: Actor | None = None) -> AliasEvent:
    """Give ``production`` back to the version that held it before the current one."""
    current = alias_holder(client, name, "production")
    if current is None:
        raise RegistryError(f"no version of {name!r} holds the 'production' alias: nothing to roll back")
    history = production_history(client, name)
    if not history or history[-1] != current:
        raise RegistryError(
            f"the 'production' alias of {name!r} (version {current}) was set outside churnops; "
            "its previous holder is unknown"
        )
    if len(history) < 2:
        raise RegistryError(f"version {current} is the first production version of {name!r}: no earlier one")
    return assign_alias(
        client, name, "production", history[-2], action="rollback", note=f"rolled back {current}", actor=actor
    )


def _alias_order(alias: str) -> tuple[int, str]:
    return (ALIASES.index(alias) if alias in ALIASES else len(ALIASES), alias)


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")


def describe(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """One row per version, newest first: version, aliases, run, data commit, test ROC-AUC, created."""
    try:
        aliases_by_name = client.get_registered_model(name).aliases or {}
    except MlflowException as exc:
        if _model_absent(client, name, exc):
            return []
        raise
    held: dict[str, list[str]] = {}
    for alias, version in aliases_by_name.items():
        held.setdefault(str(version), []).append(alias)
    rows = []
    for version in client.search_model_versions(f"name = '{_quoted(name)}'"):
        tags = version.tags or {}
        rows.append(
            {
                "version": str(version.version),
                "aliases": ",".join(sorted(held.get(str(version.version), []), key=_alias_order)),
                "run_id": version.run_id,
                "data_commit": tags.get("data_commit", ""),
                "test_roc_auc": tags.get("test_roc_auc", ""),
                "created": datetime.fromtimestamp(version.creation_timestamp / 1000, timezone.utc).isoformat(
                    timespec="seconds"
                ),
            }
        )
    return sorted(rows, key=lambda row: int(row["version"]), reverse=True)
