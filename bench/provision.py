"""Provisioning speed: the portal's path against plain qemu-img + virsh, in one run.

1. End to end: ``create_desktop`` (service, DB, Celery on Redis, worker, libvirt) until the
   desktop's status is running, and the worker's own steps timed in-process (linked clone,
   define, start); against ``qemu-img create -b`` then ``virsh create`` of the same XML.
2. Linked clone against a full copy (``cp``) of a 1 GiB image.

Usage: .venv/bin/python bench/provision.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.setup_django import configure  # noqa: E402

configure()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402

from vdi.choices import DesktopStatus  # noqa: E402
from vdi.hypervisor import get_driver  # noqa: E402
from vdi.hypervisor.disks import create_blank  # noqa: E402
from vdi.hypervisor.domain_xml import build_domain_xml  # noqa: E402
from vdi.models import Desktop, GoldenImage, Pool  # noqa: E402
from vdi.services.desktops import create_desktop  # noqa: E402
from vdi.services.hosts import ensure_local_host  # noqa: E402
from vdi.testing.processes import WorkerProcess, wait_for  # noqa: E402
from vdi.worker.specs import domain_spec  # noqa: E402


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def prepare() -> tuple[Pool, User]:
    call_command("migrate", verbosity=0)
    call_command("build_tiny_image", "--if-missing", verbosity=0)
    ensure_local_host()
    image = GoldenImage.objects.get(name="tiny")
    pool, _ = Pool.objects.get_or_create(name="Bench", defaults={"image": image,
                                                                 "memory_mib": 256})
    user, _ = User.objects.get_or_create(username="bench")
    pool.users.add(user)
    return pool, user


def cleanup(desktop: Desktop) -> None:
    get_driver(desktop.host.libvirt_uri).undefine(desktop.domain_name,
                                                  (Path(desktop.disk_path),))
    Path(desktop.serial_log_path).unlink(missing_ok=True)
    Desktop.objects.filter(pk=desktop.pk).delete()


def portal_end_to_end(pool: Pool, user: User) -> float:
    start = time.perf_counter()
    desktop = create_desktop(user, pool)

    def running() -> bool:
        desktop.refresh_from_db()
        if desktop.status == DesktopStatus.ERROR:
            raise RuntimeError(desktop.last_error)
        return desktop.status == DesktopStatus.RUNNING

    wait_for(running, 120, "the desktop to run", every=0.01)
    elapsed = time.perf_counter() - start
    cleanup(desktop)
    return elapsed


def unqueued_desktop(pool: Pool, user: User) -> Desktop:
    """A desktop row like create_desktop makes, with no task sent for it."""
    host = ensure_local_host()
    version = pool.image.latest_ready_version()
    assert version is not None
    name = f"{settings.DOMAIN_PREFIX}-{uuid.uuid4().hex[:12]}"
    return Desktop.objects.create(
        owner=user, pool=pool, host=host, image_version=version,
        domain_name=name, disk_path=str(Path(host.storage_dir) / f"{name}.qcow2"),
        serial_log_path=str(settings.LOG_DIR / f"{name}.log"), vcpus=pool.vcpus,
        memory_mib=pool.memory_mib,
    )


def portal_steps(pool: Pool, user: User) -> dict[str, float]:
    """The worker's steps, timed one by one in this process."""
    desktop = unqueued_desktop(pool, user)
    driver = get_driver(desktop.host.libvirt_uri)
    steps = {
        "linked clone": timed(lambda: driver.clone_disk(Path(desktop.image_version.disk_path),
                                                        Path(desktop.disk_path))),
        "define": timed(lambda: driver.define(domain_spec(desktop))),
        "start": timed(lambda: driver.start(desktop.domain_name)),
    }
    cleanup(desktop)
    return steps


def peer(pool: Pool, user: User) -> float:
    """qemu-img create -b + virsh create of the same XML the portal writes."""
    desktop = unqueued_desktop(pool, user)
    xml = Path(tempfile.mkstemp(suffix=".xml")[1])
    xml.write_text(build_domain_xml(domain_spec(desktop)))
    base, disk = desktop.image_version.disk_path, desktop.disk_path

    def plain() -> None:
        sh("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, disk)
        sh("virsh", "-c", settings.LIBVIRT_URI, "create", str(xml))

    elapsed = timed(plain)
    xml.unlink()
    cleanup(desktop)
    return elapsed


def clone_vs_copy(folder: Path) -> tuple[float, float]:
    base = folder / "base-1g.qcow2"
    create_blank(base, 1024**3)
    sh("qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 1G", str(base))
    linked = timed(lambda: sh("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                              "-b", str(base), str(folder / "linked.qcow2")))
    full = timed(lambda: sh("cp", "--sparse=never", str(base), str(folder / "full.qcow2")))
    return linked, full


def row(name: str, ours: float, theirs: float) -> str:
    return f"| {name:<38} | {ours * 1000:>9.1f} | {theirs * 1000:>9.1f} | {ours / theirs:>6.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    pool, user = prepare()
    worker = WorkerProcess(settings.DATA_DIR / "bench-worker.log")
    worker.start()
    try:
        e2e = [portal_end_to_end(pool, user) for _ in range(runs)]
        steps = [portal_steps(pool, user) for _ in range(runs)]
        plain = [peer(pool, user) for _ in range(runs)]
    finally:
        worker.stop()
    with tempfile.TemporaryDirectory(dir=settings.DATA_DIR) as tmp:
        linked, full = clone_vs_copy(Path(tmp))

    peer_median = statistics.median(plain)
    step_medians = {k: statistics.median(s[k] for s in steps) for k in steps[0]}
    print(f"\nprovision benchmark: median of {runs} runs, domain type "
          f"{ensure_local_host().effective_domain_type}, peer = qemu-img create -b + virsh create")
    print("| measure                                | ours (ms) | peer (ms) |  ratio |")
    print("|----------------------------------------|-----------|-----------|--------|")
    print(row("create desktop -> running (end to end)", statistics.median(e2e), peer_median))
    print(row("worker steps only (clone+define+start)", sum(step_medians.values()), peer_median))
    for name, value in step_medians.items():
        print(f"|   step: {name:<30} | {value * 1000:>9.1f} |           |        |")
    print(row("1 GiB image: linked clone vs full copy", linked, full))


if __name__ == "__main__":
    main()
