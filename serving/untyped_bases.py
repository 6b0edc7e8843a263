"""The classes of kserve and grpc that serving extends, each subclassed here once: the boundary between
typed serving code and those libraries, which ship no type information.

To a type checker each of these classes is ``Any``, and strict mypy refuses a class that extends
``Any`` (``disallow_subclassing_any``). This module alone is exempt (``pyproject.toml``) and holds
nothing but these empty subclasses; :mod:`serving.predictor`, :mod:`serving.transformer` and
:mod:`serving.server` extend them under the full strict check. The private kserve members the server
relies on are listed in :mod:`serving.kserve_private`.
"""

from __future__ import annotations

from grpc import aio
from kserve import Model, ModelServer
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess
from kserve.protocol.rest.server import RESTServer


class KServeModel(Model):
    """``kserve.Model``: the predictor and the transformer."""


class KServeModelServer(ModelServer):
    """``kserve.ModelServer``."""


class KServeRESTServer(RESTServer):
    """``kserve.protocol.rest.server.RESTServer``."""


class KServeRESTServerMultiProcess(RESTServerMultiProcess):
    """``kserve.protocol.rest.multiprocess.server.RESTServerMultiProcess``."""


class KServeGRPCServer(GRPCServer):
    """``kserve.protocol.grpc.server.GRPCServer``."""


class KServeExceptionToStatusInterceptor(ExceptionToStatusInterceptor):
    """``kserve.protocol.grpc.interceptors.ExceptionToStatusInterceptor``."""


class GRPCServerInterceptor(aio.ServerInterceptor):  # pylint: disable=abstract-method  # still abstract: subclasses implement it
    """``grpc.aio.ServerInterceptor``."""
