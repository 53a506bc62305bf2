"""Backups of a persistent tiny desktop: a full one, an incremental one of a running desktop
(a 1 MiB change: at most a tenth of the full), an incremental one of a stopped desktop, a
restore drill that gets back exactly the files of each point, the next backup full after a
restore, and a worker killed in the middle of a backup."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from tests.guest import ask, booted, present, wait_serial, write
from tests.support import done, process_ended, wait_status
from vdi.choices import BackupKind, BackupStatus, DesktopStatus
from vdi.images.tiny import READY_MARKER
from vdi.models import Backup, Desktop, FileTransfer
from vdi.services import backups
from vdi.services.desktops import request_action
from vdi.testing.processes import WorkerProcess, wait_for
from vdi.worker.reconcile import reconcile

pytestmark = [pytest.mark.vm, pytest.mark.django_db(transaction=True)]
FILES = ["alpha", "beta", "gamma"]


def back_up(owner, desktop: Desktop) -> Backup:
    origin = Desktop.objects.get(pk=desktop.pk).status
    done(backups.back_up(owner, desktop), desktop, origin)
    backup = Backup.objects.filter(desktop=desktop).first()
    assert backup is not None and backup.status == BackupStatus.READY and backup.verified_at
    return backup


def fill(desktop: Desktop, name: str, mib: int) -> None:
    mark = secrets.token_hex(3)
    ask(desktop, f"dd if=/dev/urandom of=/root/{name} bs=65536 count={mib * 16}; sync; "
                 f"echo F{mark} > /dev/ttyS0", f"F{mark}")


def restored(owner, desktop: Desktop, backup: Backup, boots: int) -> dict[str, tuple[bool, bool]]:
    done(backups.restore(owner, backup), desktop, DesktopStatus.STOPPED)
    done(request_action(owner, desktop, "start"), desktop, DesktopStatus.RUNNING)
    wait_serial(desktop.serial_log_path, READY_MARKER, count=boots)
    return present(desktop, FILES)


def test_full_and_incremental_backups_and_a_restore_drill(worker, persistent_pool, owner):
    desktop = booted(owner, persistent_pool)
    fill(desktop, "base", 32)
    write(desktop, "alpha")
    full = back_up(owner, desktop)
    assert full.kind == BackupKind.FULL and set(full.files) == {"vda", "vdb"}

    fill(desktop, "change", 1)
    write(desktop, "beta")
    running = back_up(owner, desktop)
    assert (running.kind, running.parent) == (BackupKind.INCREMENTAL, full)
    assert running.size_bytes <= full.size_bytes / 10, (running.size_bytes, full.size_bytes)

    fill(desktop, "change2", 1)
    write(desktop, "gamma")
    done(request_action(owner, desktop, "stop"), desktop, DesktopStatus.STOPPED)
    stopped = back_up(owner, desktop)
    assert (stopped.kind, stopped.parent) == (BackupKind.INCREMENTAL, running)
    assert stopped.size_bytes <= full.size_bytes / 10
    assert Desktop.objects.get(pk=desktop.pk).status == DesktopStatus.STOPPED

    expected = {full: 1, running: 2, stopped: 3}
    for boots, (backup, count) in enumerate(expected.items(), start=2):
        files = restored(owner, desktop, backup, boots)
        assert files == {name: (i < count, i < count) for i, name in enumerate(FILES)}, backup
    # one file of the data disk as it was in the running desktop's incremental backup
    transfer = backups.restore_file(owner, running, "/data/beta")
    wait_for(lambda: FileTransfer.objects.get(pk=transfer.pk).finished_at is not None, 120,
             "the file's restore")
    transfer.refresh_from_db()
    assert transfer.status == FileTransfer.Status.DONE, transfer.error
    assert Path(transfer.spool_path).read_text() == "beta\n"
    missing = backups.restore_file(owner, full, "beta")  # written after the full backup
    wait_for(lambda: FileTransfer.objects.get(pk=missing.pk).finished_at is not None, 120,
             "the missing file's restore")
    missing.refresh_from_db()
    assert missing.status == FileTransfer.Status.FAILED and "not found" in missing.error

    # the stopped desktop's backup as a new desktop, its files all there
    persistent_pool.max_per_user = 2
    persistent_pool.save()
    copy = backups.restore_as_new(owner, stopped)
    wait_status(copy, DesktopStatus.RUNNING)
    wait_serial(copy.serial_log_path, READY_MARKER)
    assert present(copy, FILES) == {name: (True, True) for name in FILES}
    assert Backup.objects.filter(desktop=copy).count() == 0

    # retention: keep only the newest; the next backup is full (a restore started a new chain)
    persistent_pool.backup_keep_last, persistent_pool.backup_keep_daily = 1, 1
    persistent_pool.save()
    old = [Path(b.folder) for b in (full, running, stopped)]
    newest = back_up(owner, desktop)
    assert newest.kind == BackupKind.FULL, "a restore starts a new chain"
    assert list(Backup.objects.filter(desktop=desktop)) == [newest], "the rest expired"
    assert not any(folder.exists() for folder in old), "and their files went with them"
    assert all(Path(str(f["path"])).exists() for f in newest.files.values())


def test_a_worker_killed_in_a_backup_leaves_nothing_half_made(persistent_pool, owner, tmp_path,
                                                              monkeypatch):
    healthy = WorkerProcess(tmp_path / "worker.log")
    healthy.start()
    try:
        desktop = booted(owner, persistent_pool)
    finally:
        healthy.stop()
    monkeypatch.setenv("VDI_CRASH_AT", "backup")
    doomed = WorkerProcess(tmp_path / "worker-backup.log")
    doomed.start()
    try:
        backups.back_up(owner, desktop)
        assert doomed.process is not None
        wait_for(process_ended(doomed.process), 120, "the worker to die in the backup")
    finally:
        doomed.stop()  # one that did not die is not left consuming the queue
    monkeypatch.delenv("VDI_CRASH_AT")
    folder = Path(Backup.objects.get().folder)
    assert folder.exists(), "the crash came after the backup's folder was made"
    reconcile(desktop.host, now=timezone.now() + timedelta(seconds=settings.STUCK_AFTER + 1))
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.ERROR and "stuck" in desktop.error_detail
    assert not Backup.objects.exists() and not folder.exists()
    assert desktop.backup_chain_broken
