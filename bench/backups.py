"""Backups: a full and an incremental backup through the portal against ``qemu-img convert``
of the same disk (what a plain copy costs every time), in the same run: time and size.

The desktop is a stopped persistent tiny desktop whose system disk gets 32 MiB written with
``qemu-io`` before the full backup and 1 MiB before the incremental one (``qemu-io`` keeps
the disk's persistent bitmaps, as a running guest's writes would). Usage:
.venv/bin/python bench/backups.py [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
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
from vdi.models import Backup, Desktop, GoldenImage, Operation, Pool  # noqa: E402
from vdi.services import backups  # noqa: E402
from vdi.services.claims import claim_desktop  # noqa: E402
from vdi.services.desktops import request_action  # noqa: E402
from vdi.services.hosts import ensure_local_host  # noqa: E402
from vdi.testing.processes import WorkerProcess, wait_for  # noqa: E402


def stopped_desktop() -> tuple[Desktop, User]:
    call_command("migrate", verbosity=0)
    call_command("build_tiny_image", "--if-missing", verbosity=0)
    ensure_local_host()
    image = GoldenImage.objects.get(name="tiny")
    pool, _ = Pool.objects.update_or_create(
        name="Backup bench", defaults={"image": image, "assignment": "dedicated",
                                       "persistence": "persistent", "backup_keep_last": 100})
    user, _ = User.objects.get_or_create(username="bench-backups")
    pool.users.add(user)
    for old in Desktop.objects.filter(pool=pool):  # a run that stopped half-way
        remove(old)
    desktop = claim_desktop(user, pool)
    wait_for(lambda: _status(desktop) == DesktopStatus.RUNNING, 180, "the desktop")
    _finished(request_action(user, desktop, "stop"), desktop, DesktopStatus.STOPPED)
    return desktop, user


def remove(desktop: Desktop) -> None:
    get_driver(settings.LIBVIRT_URI).undefine(
        desktop.domain_name, (Path(desktop.disk_path), Path(desktop.data_disk_path)))
    shutil.rmtree(Path(settings.BACKUP_DIR) / desktop.domain_name, ignore_errors=True)
    for backup in Backup.objects.filter(desktop=desktop):  # newest first: children first
        backup.delete()
    Desktop.objects.filter(pk=desktop.pk).delete()


def _status(desktop: Desktop) -> str:
    desktop.refresh_from_db()
    if desktop.status == DesktopStatus.ERROR:
        raise RuntimeError(desktop.last_error)
    return desktop.status


def _finished(operation: Operation, desktop: Desktop, status: str) -> None:
    def ended() -> bool:
        operation.refresh_from_db()
        return operation.finished_at is not None

    wait_for(ended, 600, operation.kind, every=0.02)
    if operation.error:
        raise RuntimeError(operation.detail or operation.error)
    wait_for(lambda: _status(desktop) == status, 60, status, every=0.02)


def write(disk: str, offset_mib: int, mib: int) -> None:
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a {offset_mib}M {mib}M",
                    disk], check=True, capture_output=True)


def portal_backup(desktop: Desktop, user: User) -> tuple[float, int, str]:
    start = time.perf_counter()
    _finished(backups.back_up(user, desktop), desktop, DesktopStatus.STOPPED)
    elapsed = time.perf_counter() - start
    backup = Backup.objects.filter(desktop=desktop).first()
    assert backup is not None
    return elapsed, backup.size_bytes, backup.kind


def plain_copy(desktop: Desktop) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as folder:
        targets = [Path(folder) / f"{n}.qcow2" for n in ("system", "data")]
        start = time.perf_counter()
        for disk, target in zip((desktop.disk_path, desktop.data_disk_path), targets,
                                strict=True):
            subprocess.run(["qemu-img", "convert", "-O", "qcow2", disk, str(target)],
                           check=True, capture_output=True)
        elapsed = time.perf_counter() - start
        return elapsed, sum(t.stat().st_blocks * 512 for t in targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    worker = WorkerProcess(settings.DATA_DIR / "bench-backup-worker.log")
    worker.start()
    rows: dict[str, list[tuple[float, int]]] = {"portal full": [], "portal incremental": [],
                                                "qemu-img convert": []}
    desktop = None
    try:
        desktop, user = stopped_desktop()
        write(desktop.disk_path, 8, 32)
        for run in range(runs):
            Desktop.objects.filter(pk=desktop.pk).update(backup_chain_broken=True)
            took, size, kind = portal_backup(desktop, user)
            assert kind == "full"
            rows["portal full"].append((took, size))
            rows["qemu-img convert"].append(plain_copy(desktop))
            write(desktop.disk_path, 48 + run, 1)
            took, size, kind = portal_backup(desktop, user)
            assert kind == "incremental"
            rows["portal incremental"].append((took, size))
    finally:
        worker.stop()
        if desktop is not None:
            remove(desktop)
    peer_s = statistics.median(s for s, _ in rows["qemu-img convert"])
    peer_b = statistics.median(b for _, b in rows["qemu-img convert"])
    print(f"\nbackup benchmark: median of {runs}, a stopped tiny desktop (system disk with "
          "32 MiB written, then 1 MiB more); peer = qemu-img convert of the same disks")
    print("| what               | seconds | x peer | MiB    | x peer |")
    print("|--------------------|---------|--------|--------|--------|")
    for name, values in rows.items():
        took = statistics.median(s for s, _ in values)
        stored = statistics.median(b for _, b in values)
        print(f"| {name:<18} | {took:7.2f} | {took / peer_s:6.2f} | "
              f"{stored / 1024**2:6.1f} | {stored / peer_b:6.2f} |")


if __name__ == "__main__":
    main()
