"""Snapshots: take and revert through the portal against ``virsh snapshot-create-as`` and
``virsh snapshot-revert`` of the same running domain, in the same run.

The portal's path is the whole one: the service's checks and row, the Celery task, the
worker's step (libvirt underneath), the desktop back in its state. The peer is virsh alone on
the same desktop's domain. Usage: .venv/bin/python bench/snapshots.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
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
from vdi.images.tiny import READY_MARKER  # noqa: E402
from vdi.models import Desktop, GoldenImage, Operation, Pool, Snapshot  # noqa: E402
from vdi.services import snapshots  # noqa: E402
from vdi.services.claims import claim_desktop  # noqa: E402
from vdi.services.hosts import ensure_local_host  # noqa: E402
from vdi.testing.processes import WorkerProcess, wait_for  # noqa: E402


def desktop_for_bench() -> tuple[Desktop, User]:
    call_command("migrate", verbosity=0)
    call_command("build_tiny_image", "--if-missing", verbosity=0)
    ensure_local_host()
    image = GoldenImage.objects.get(name="tiny")
    pool, _ = Pool.objects.update_or_create(
        name="Snapshot bench", defaults={"image": image, "assignment": "dedicated",
                                         "persistence": "persistent", "max_snapshots": 1000,
                                         "max_snapshot_gib": 1000})
    user, _ = User.objects.get_or_create(username="bench-snapshots")
    pool.users.add(user)
    desktop = claim_desktop(user, pool)
    wait_for(lambda: _status(desktop) == DesktopStatus.RUNNING, 180, "the desktop")
    wait_for(lambda: READY_MARKER in Path(desktop.serial_log_path).read_text(errors="replace"),
             120, "the guest to boot")
    return desktop, user


def _status(desktop: Desktop) -> str:
    desktop.refresh_from_db(fields=["status", "last_error"])
    if desktop.status == DesktopStatus.ERROR:
        raise RuntimeError(desktop.last_error)
    return desktop.status


def _finished(operation: Operation, desktop: Desktop) -> None:
    def ended() -> bool:
        operation.refresh_from_db()
        return operation.finished_at is not None

    wait_for(ended, 300, operation.kind, every=0.02)
    if operation.error:
        raise RuntimeError(operation.detail or operation.error)
    wait_for(lambda: _status(desktop) == DesktopStatus.RUNNING, 60, "running",
             every=0.02)


def portal_take(desktop: Desktop, user: User, name: str) -> float:
    start = time.perf_counter()
    _finished(snapshots.take(user, desktop, name), desktop)
    return time.perf_counter() - start


def portal_revert(desktop: Desktop, user: User, name: str) -> float:
    start = time.perf_counter()
    _finished(snapshots.revert(user, Snapshot.objects.get(desktop=desktop, name=name)), desktop)
    return time.perf_counter() - start


def virsh(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run(["virsh", "-c", settings.LIBVIRT_URI, *args], check=True,
                   capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    worker = WorkerProcess(settings.DATA_DIR / "bench-snapshot-worker.log")
    worker.start()
    results: dict[str, list[float]] = {k: [] for k in (
        "portal take", "virsh snapshot-create-as", "portal revert", "virsh snapshot-revert")}
    desktop = None
    try:
        desktop, user = desktop_for_bench()
        domain = desktop.domain_name
        # Takes first, then reverts (the first snapshot after a revert costs more, whoever
        # takes it), each pair in alternating order.
        for run in range(runs):
            pair = [lambda r=run: results["portal take"].append(
                        portal_take(desktop, user, f"portal {r}")),
                    lambda r=run: results["virsh snapshot-create-as"].append(
                        virsh("snapshot-create-as", domain, f"peer-{r}"))]
            for measure in pair[::(-1 if run % 2 else 1)]:
                measure()
        for run in range(runs):
            pair = [lambda r=run: results["portal revert"].append(
                        portal_revert(desktop, user, f"portal {r}")),
                    lambda r=run: results["virsh snapshot-revert"].append(
                        virsh("snapshot-revert", domain, f"peer-{r}"))]
            for measure in pair[::(-1 if run % 2 else 1)]:
                measure()
    finally:
        worker.stop()
        if desktop is not None:
            get_driver(settings.LIBVIRT_URI).undefine(
                desktop.domain_name, (Path(desktop.disk_path), Path(desktop.data_disk_path)))
            Desktop.objects.filter(pk=desktop.pk).delete()
    print(f"\nsnapshot benchmark: median of {runs}, a running tiny desktop (256 MiB); "
          "peer = virsh on the same domain, same run")
    print("| what                     | seconds | x peer |")
    print("|--------------------------|---------|--------|")
    pairs = (("portal take", "virsh snapshot-create-as"),
             ("portal revert", "virsh snapshot-revert"))
    for ours, peer in pairs:
        for name in (ours, peer):
            value = statistics.median(results[name])
            print(f"| {name:<24} | {value:7.3f} | "
                  f"{value / statistics.median(results[peer]):6.2f} |")


if __name__ == "__main__":
    main()
