"""The kserve private members the model server relies on are all there, as the server uses them."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from kserve import ModelServer
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.rest.server import RESTServer

from serving import kserve_private
from serving.kserve_private import MEMBERS, Private, problems

SERVER = Path(kserve_private.__file__).with_name("server.py")


def test_every_private_member_is_there_on_the_installed_kserve() -> None:
    assert not problems(), "\n".join(problems())


def test_a_member_that_is_gone_or_changed_fails_naming_it() -> None:
    gone = Private(ModelServer, "_start_rest_server", "method", "probe", ("self",))
    renamed_attribute = Private(GRPCServer, "_servicer", "attribute", "probe")
    changed = dataclasses.replace(MEMBERS[0], parameters=("self", "app", "config"))
    not_called = Private(RESTServer, "_add_middlewares", "method", "probe", ("self", "app"), called_by="start")
    assert problems((gone, renamed_attribute, changed, not_called)) == [
        "kserve.model_server.ModelServer._start_rest_server is gone",
        "kserve.protocol.grpc.server.GRPCServer._servicer is no longer assigned",
        "kserve.protocol.rest.server.RESTServer._add_middlewares takes ('self', 'app'), not ('self', 'app', 'config')",
        "kserve.protocol.rest.server.RESTServer._add_middlewares is no longer called by RESTServer.start",
    ]


def test_the_list_names_every_private_member_the_server_touches() -> None:
    """Each private name serving/server.py reads, sets or overrides is a method it defines or listed."""
    tree = ast.parse(SERVER.read_text(encoding="utf-8"))
    ours = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
    }
    listed = {member.name for member in MEMBERS}
    assert used - ours - listed == set()
