"""Processes the integration tests and benchmarks start: a real Celery worker, beat, daphne,
the SPICE gateway. Each is started the product's way, through ``scripts/service`` (as
``scripts/run`` starts them): the service user, umask 077, its home in the data folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "scripts" / "service"


def as_service(command: list[str]) -> list[str]:
    """``command`` run as ``scripts/run`` runs the portal's processes (``scripts/service``)."""
    return [str(SERVICE), *command]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port`` now."""
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class WorkerProcess:
    """A real ``celery worker`` consuming the general queue and the hosts' queues (the test
    host's by default), on the test database. ``env`` adds to its environment."""

    def __init__(self, log: Path, settings_module: str = "tests.settings",
                 hosts: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.settings_module = settings_module
        self.log = log
        self.hosts = hosts or (settings.HOST_NAME,)
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": self.settings_module,
               "DATABASE_URL": _database_url(), **self.env}
        queues = ",".join(["vdi", *(f"host.{name}" for name in self.hosts)])
        command = [sys.executable, "-m", "celery", "-A", "portal", "worker", "-l", "INFO",
                   "-Q", queues, "-n", f"test-{os.getpid()}-{self.hosts[0]}@%h",
                   "--concurrency", "2", "--without-gossip", "--without-mingle"]
        handle = self.log.open("ab")
        self.process = subprocess.Popen(as_service(command), cwd=ROOT, env=env, stdout=handle,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: b"ready." in self.log.read_bytes(), 60, "the Celery worker to start")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(30)

    def stop(self) -> None:
        stop_group(self.process, grace=30)


class BeatProcess:
    """A real ``celery beat`` with the settings' schedule; ``env`` shortens its intervals. Its
    schedule file goes where the service user keeps beat's (the data folder's ``run/``)."""

    def __init__(self, log: Path, name: str = "celerybeat-schedule-test",
                 env: dict[str, str] | None = None) -> None:
        self.log = log
        self.schedule = Path(settings.DATA_DIR) / "run" / name
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
               "DATABASE_URL": _database_url(), **self.env}
        command = [sys.executable, "-m", "celery", "-A", "portal", "beat", "-l", "INFO",
                   "-s", str(self.schedule), "--max-interval", "1"]
        handle = self.log.open("ab")
        self.process = subprocess.Popen(as_service(command), cwd=ROOT, env=env, stdout=handle,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: b"beat: Starting" in self.log.read_bytes(), 60, "celery beat to start")

    def stop(self) -> None:
        stop_group(self.process, grace=30)


def stop_group(process: subprocess.Popen[bytes] | None, grace: float = 10) -> None:
    """End a process started in a session of its own, with everything it started: SIGTERM to
    the group, SIGKILL after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(grace)


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """Every process now: its pid and the fields of /proc/<pid>/stat after the command name
    (state, parent, process group, ...); one that ends meanwhile is skipped."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """The portal's ASGI app under a real server process (daphne as scripts/run starts it,
    ``portal.daphne_server``, or uvicorn for comparison),
    or the SPICE gateway for native clients (``spice_gateway``). ``env`` adds to its
    environment (settings read from variables, such as a directory's ``VDI_LDAP_*``)."""

    def __init__(self, log: Path, server: str = "daphne",
                 env: dict[str, str] | None = None) -> None:
        self.log = log
        self.server = server
        self.env = env or {}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.server == "spice_gateway":
            return [sys.executable, "manage.py", "spice_gateway", "--listen",
                    f"127.0.0.1:{self.port}"]
        if self.server == "daphne":
            return [sys.executable, "-m", "portal.daphne_server", "-b", "127.0.0.1",
                    "-p", str(self.port), "--access-log", "-", "portal.asgi:application"]
        return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port),
                "--ws", "websockets", "--log-level", "info", "portal.asgi:application"]

    def start(self) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
               "DATABASE_URL": _database_url(), "VDI_ALLOWED_ORIGINS": self.origin,
               **self.env}
        handle = self.log.open("ab")
        self.process = subprocess.Popen(as_service(self.command()), cwd=ROOT, env=env,
                                        stdout=handle,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: listening(self.port), 30, f"{self.server} to listen")

    def rss_kib(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        stop_group(self.process)
