"""Every private member of kserve that the model server (:mod:`serving.server`) relies on, in one list.

kserve (pinned in ``requirements.lock``) offers no public hook for what the server changes: the
interface it binds, its own REST routes and error handlers, the gRPC interceptor, and the REST and
gRPC server objects :class:`kserve.ModelServer` builds. The server therefore overrides or reads the
members below. :func:`problems` checks them against the installed kserve: a method must exist with
the parameters listed, a hook must still be called where listed, an attribute must still be
assigned by the class; ``tests/unit/serving/test_kserve_private.py`` fails naming each one that
is gone or changed, so a kserve upgrade cannot change them silently.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

from kserve import ModelServer
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess
from kserve.protocol.rest.server import RESTServer


@dataclass(frozen=True)
class Private:
    """One private member: where it is, what kind it is, and what the server does with it."""

    owner: type
    name: str
    kind: str  # "method" (parameters must match), "attribute" (assigned in the class)
    use: str
    parameters: tuple[str, ...] = ()
    called_by: str = ""  # a method of ``owner`` that must still call it (for overridden hooks)

    @property
    def qualified(self) -> str:
        """``module.Class.member``."""
        return f"{self.owner.__module__}.{self.owner.__qualname__}.{self.name}"


MEMBERS: tuple[Private, ...] = (
    Private(
        RESTServer,
        "_add_middlewares",
        "method",
        "overridden: authentication and the strict infer route instead of kserve's timing middleware",
        ("self", "app"),
        called_by="create_application",
    ),
    Private(
        RESTServer,
        "_register_endpoints",
        "method",
        "overridden: the model metadata routes, repository load/unload refused",
        ("self", "app"),
        called_by="create_application",
    ),
    Private(
        RESTServer,
        "_add_exception_handlers",
        "method",
        "overridden: JSON errors that repeat no client value",
        ("self", "app"),
        called_by="create_application",
    ),
    Private(RESTServerMultiProcess, "_rest_server", "attribute", "replaced by the server's REST server (its host)"),
    Private(GRPCServer, "_data_plane", "attribute", "read: the servicer's data plane"),
    Private(GRPCServer, "_model_repository_extension", "attribute", "read: the servicer's repository extension"),
    Private(GRPCServer, "_kwargs", "attribute", "read: the message size limits"),
    Private(GRPCServer, "_port", "attribute", "read: the port to bind on the server's host"),
    Private(GRPCServer, "_server", "attribute", "set: the started aio server, which kserve stops"),
    Private(
        ModelServer,
        "_register_and_check_atleast_one_model_is_ready",
        "method",
        "called: register the models before the servers start",
        ("self", "models"),
    ),
    Private(ModelServer, "_serve", "method", "called: kserve's serving loop", ("self",)),
    Private(ModelServer, "_rest_server", "attribute", "set: the single-process REST server"),
    Private(ModelServer, "_rest_multiprocess_server", "attribute", "set: the multiprocess REST server"),
    Private(ModelServer, "_grpc_server", "attribute", "set: the gRPC server"),
)


def _assigned(owner: type, name: str) -> bool:
    """Whether a method of ``owner`` (or of a base in kserve) assigns ``self.<name>``."""
    pattern = re.compile(rf"self\.{re.escape(name)}\s*(?::[^=\n]*)?=(?!=)")
    for cls in owner.__mro__:
        if cls.__module__.startswith("kserve") and pattern.search(inspect.getsource(cls)):
            return True
    return False


def problem(member: Private) -> str | None:
    """What is wrong with ``member`` on the installed kserve, or None."""
    if member.kind == "attribute":
        return None if _assigned(member.owner, member.name) else f"{member.qualified} is no longer assigned"
    found = getattr(member.owner, member.name, None)
    if not callable(found):
        return f"{member.qualified} is gone"
    parameters = tuple(inspect.signature(found).parameters)
    if parameters != member.parameters:
        return f"{member.qualified} takes {parameters}, not {member.parameters}"
    if member.called_by:
        caller = inspect.getsource(getattr(member.owner, member.called_by))
        if f"self.{member.name}(" not in caller:
            return f"{member.qualified} is no longer called by {member.owner.__qualname__}.{member.called_by}"
    return None


def problems(members: tuple[Private, ...] = MEMBERS) -> list[str]:
    """One line per private member that is gone or changed on the installed kserve."""
    return [found for found in map(problem, members) if found is not None]
