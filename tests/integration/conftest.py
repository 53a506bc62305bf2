"""Real guests: the tiny image, a Celery worker process on Redis, qemu:///system."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.conftest import make_version
from vdi.hypervisor import get_driver
from vdi.images.tiny import build_tiny_image, find_kernel
from vdi.models import Host, ImageVersion, Pool

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def remove_test_domains() -> None:
    driver = get_driver(settings.LIBVIRT_URI)
    prefix = settings.DOMAIN_PREFIX + "-"
    for info in driver.list_domains():
        if info.name.startswith(prefix):
            driver.undefine(info.name)


@pytest.fixture(scope="session")
def tiny_files() -> Any:
    """The tiny image's files, built once per run into the test image folder."""
    remove_test_domains()
    for folder in (settings.IMAGE_DIR, settings.DISK_DIR, settings.LOG_DIR):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(mode=0o755, parents=True)
        folder.chmod(0o755)
    return build_tiny_image(find_kernel(settings.KERNEL_DIR), settings.IMAGE_DIR / "tiny-built")


@pytest.fixture
def tiny_version(tiny_files: Any, transactional_db: None) -> ImageVersion:
    return make_version("tiny", str(tiny_files.disk), kernel_path=str(tiny_files.kernel),
                        initrd_path=str(tiny_files.initrd), cmdline=tiny_files.cmdline)


@pytest.fixture
def vm_host(transactional_db: None) -> Host:
    return Host.objects.create(
        name=settings.HOST_NAME, libvirt_uri=settings.LIBVIRT_URI, domain_type="qemu",
        storage_dir=str(settings.DISK_DIR), cpu_capacity=8, memory_capacity_mib=4096,
    )


@pytest.fixture
def tiny_pool(tiny_version: ImageVersion, vm_host: Host) -> Pool:
    return Pool.objects.create(name="Tiny", image=tiny_version.image, vcpus=1, memory_mib=256)


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class WorkerProcess:
    """A real ``celery worker`` consuming the test host's queue, on the test database."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
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


@pytest.fixture
def worker(transactional_db: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    WorkerProcess
]:
    from tests.queues import purge

    purge(f"host.{settings.HOST_NAME}")
    process = WorkerProcess(tmp_path_factory.mktemp("worker") / "worker.log")
    process.start()
    yield process
    process.stop()
    remove_test_domains()
