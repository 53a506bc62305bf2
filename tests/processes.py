"""Processes the integration tests and benchmarks start: a real Celery worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class WorkerProcess:
    """A real ``celery worker`` consuming the test host's queue, on the test database."""

    def __init__(self, log: Path, settings_module: str = "tests.settings") -> None:
        self.settings_module = settings_module
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": self.settings_module,
               "DATABASE_URL": _database_url()}
        command = [sys.executable, "-m", "celery", "-A", "portal", "worker", "-l", "INFO",
                   "-Q", f"vdi,host.{settings.HOST_NAME}", "-n", f"test-{os.getpid()}@%h",
                   "--concurrency", "2", "--without-gossip", "--without-mingle"]
        handle = self.log.open("ab")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: b"ready." in self.log.read_bytes(), 60, "the Celery worker to start")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
