"""Fixtures for real guests (the integration and browser tiers): the tiny image, a Celery
worker process on Redis, qemu:///system. Loaded by ``tests/conftest.py`` as a plugin."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.support import make_version, purge
from vdi.folders import make_folders, service_user
from vdi.hypervisor import HypervisorError, get_driver
from vdi.images.tiny import build_tiny_image, find_kernel
from vdi.models import Host, ImageVersion, Pool
from vdi.testing.processes import ROOT, WorkerProcess


def domain_names(prefix: str, uri: str = "") -> list[str]:
    """The domains named ``prefix``-something on the host at ``uri``, by name only: another
    test session's domain that goes away meanwhile is no error (reading every domain is)."""
    connection = get_driver(uri or settings.LIBVIRT_URI).connection()
    return [name for dom in connection.listAllDomains() if (name := dom.name()).startswith(
        prefix + "-")]


def remove_test_domains(uri: str = "") -> None:
    """Remove the test desktops on the host at ``uri`` (a test's, or those an interrupted run
    left), running or not, with their snapshot and checkpoint metadata (``undefine``) and
    their disks in the test disk folder. One that resists does not keep the others."""
    driver = get_driver(uri or settings.LIBVIRT_URI)
    failed = []
    for name in domain_names(settings.DOMAIN_PREFIX, uri):
        try:
            info = driver.lookup(name)
            if info is None:
                continue
            ours = tuple(p for p in info.disk_paths if p.parent == settings.DISK_DIR)
            driver.undefine(name, delete_disks=ours)
        except HypervisorError as exc:
            failed.append(str(exc))
    if failed:
        raise HypervisorError("; ".join(failed))


@pytest.fixture(scope="session")
def tiny_files() -> Any:
    """The tiny image's files, built once per run into the test image folder."""
    remove_test_domains()
    for folder in (settings.IMAGE_DIR, settings.DISK_DIR, settings.LOG_DIR,
                   settings.BACKUP_DIR):
        shutil.rmtree(folder, ignore_errors=True)
    make_folders(service_user())  # made again as the set-up makes them
    return build_tiny_image(find_kernel(settings.KERNEL_DIR), settings.IMAGE_DIR / "tiny-built")


@pytest.fixture
def tiny_version(tiny_files: Any, transactional_db: None) -> ImageVersion:
    return make_version("tiny", str(tiny_files.disk), kernel_path=str(tiny_files.kernel),
                        initrd_path=str(tiny_files.initrd), cmdline=tiny_files.cmdline)


@pytest.fixture
def vm_host(transactional_db: None) -> Iterator[Host]:
    """The test host on qemu:///system; the test's domains are removed when it ends, passed
    or failed (the ``worker`` fixture does too; tests that start their own workers rely on
    this)."""
    yield Host.objects.create(
        name=settings.HOST_NAME, libvirt_uri=settings.LIBVIRT_URI, domain_type="qemu",
        storage_dir=str(settings.DISK_DIR), cpu_capacity=8, memory_capacity_mib=4096,
    )
    remove_test_domains()


@pytest.fixture
def tiny_pool(tiny_version: ImageVersion, vm_host: Host, owner: Any) -> Pool:
    pool = Pool.objects.create(name="Tiny", image=tiny_version.image, vcpus=1, memory_mib=256)
    pool.users.add(owner)
    return pool


@pytest.fixture
def persistent_pool(tiny_pool: Pool) -> Pool:
    """The tiny pool, persistent: its desktops get a data disk."""
    tiny_pool.persistence = "persistent"
    tiny_pool.save()
    return tiny_pool


@pytest.fixture
def worker(transactional_db: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    WorkerProcess
]:
    purge(f"host.{settings.HOST_NAME}")
    process = WorkerProcess(tmp_path_factory.mktemp("worker") / "worker.log")
    try:
        process.start()  # one that never says it is ready is stopped too
        yield process
    finally:
        process.stop()
        remove_test_domains()


def hvhost(*args: str) -> str:
    """``scripts/hvhost`` (a hypervisor host in namespaces of its own); its last line out."""
    env = {"HVHOST_BASE": str(hvhost_base()), "HVHOST_AUTONET": "0",
           "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    done = subprocess.run([str(ROOT / "scripts" / "hvhost"), *args], env=env,
                          capture_output=True, text=True, timeout=180, check=True)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def hvhost_base() -> Path:
    return Path(settings.DATA_DIR) / "hosts"
