"""The worker's backup and restore steps (``vdi.actions`` BACKUP, RESTORE).

A backup goes into ``VDI_BACKUP_DIR/<domain>/<id>/``, one qcow2 file per disk, full or
incremental from the desktop's last backup whose checkpoint libvirt still has. Each file is
checked (``qemu-img check``) and its SHA-256 kept. A restore flattens a backup's chain into
new disk files and puts them in place; the desktop's snapshots and checkpoints go (the disks
they describe are gone), and its next backup is a full one.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from vdi.causes import explain
from vdi.choices import BackupKind, BackupStatus
from vdi.folders import shared_folder
from vdi.hypervisor import HypervisorError, PowerState
from vdi.hypervisor.backups import chain, check, flatten, read_file
from vdi.hypervisor.disks import create_blank, disk_info, sha256_file
from vdi.live import events as live
from vdi.models import Backup, Desktop, FileTransfer, Snapshot
from vdi.services.backups import expired
from vdi.worker import operations
from vdi.worker.faults import crash_point
from vdi.worker.hosts import driver_for
from vdi.worker.jobs import (
    FAILURE_CLEANUPS,
    PROVISION_SOURCES,
    StepRefused,
    prepare_host,
    record_endpoint,
    step,
)
from vdi.worker.specs import disks_of

log = logging.getLogger(__name__)


def _devices(desktop: Desktop) -> tuple[dict[str, Path], tuple[str, ...]]:
    """The disks a backup copies (device -> file) and the read-only ones it leaves out."""
    copied, skipped = {}, []
    for disk in disks_of(desktop):
        if disk.device != "disk":
            continue
        if disk.read_only or disk.format != "qcow2":
            skipped.append(disk.target)
        else:
            copied[disk.target] = disk.path
    return copied, tuple(skipped)


def _parent(desktop: Desktop, checkpoints: set[str]) -> Backup | None:
    """The backup an incremental one builds on: the newest ready one whose checkpoint is
    still there, unless a revert or restore broke the chain."""
    if desktop.backup_chain_broken:
        return None
    last = Backup.objects.filter(desktop=desktop, status=BackupStatus.READY).first()
    return last if last is not None and last.checkpoint in checkpoints else None


@step("backup")
def _back_up(desktop: Desktop, operation_id: int) -> None:
    driver = driver_for(desktop.host)
    parent = _parent(desktop, driver.backups.checkpoints(desktop.domain_name))
    disks, skipped = _devices(desktop)
    tag = uuid.uuid4().hex[:12]
    folder = Path(settings.BACKUP_DIR) / desktop.domain_name / tag
    backup = Backup.objects.create(
        desktop=desktop, desktop_name=str(desktop), host=desktop.host, pool=desktop.pool,
        owner=desktop.owner,
        kind=BackupKind.INCREMENTAL if parent else BackupKind.FULL, parent=parent,
        checkpoint=f"vdi-{tag}", folder=str(folder))
    operations.params_update(operation_id, backup=backup.pk)
    shared_folder(folder)  # 0755 whatever the umask: QEMU writes each disk's copy in it
    targets = {dev: folder / f"{dev}.qcow2" for dev in disks}
    for dev, target in targets.items():  # made here, so the worker owns what QEMU writes
        create_blank(target, disk_info(disks[dev]).virtual_size)
    paused = driver.state(desktop.domain_name) != PowerState.RUNNING
    if paused:  # libvirt backs up running domains only: a QEMU whose guest never runs
        prepare_host(desktop)
        driver.backups.start_paused(desktop.domain_name)
    try:
        crash_point("backup")
        driver.backups.back_up(
            desktop.domain_name, targets, skipped, backup.checkpoint,
            parent.checkpoint if parent else None,
            lambda done: operations.progress(operation_id, 10 + int(done * 70),
                                             f"copying the disks ({backup.kind})"))
    finally:
        if paused:
            driver.power_off(desktop.domain_name)
    operations.progress(operation_id, 85, "checking the backup")
    files = _verified(targets, parent)
    Backup.objects.filter(pk=backup.pk).update(
        status=BackupStatus.READY, files=files, verified_at=timezone.now(),
        size_bytes=sum(f["bytes"] for f in files.values()))
    Desktop.objects.filter(pk=desktop.pk).update(backup_chain_broken=False)
    try:
        _apply_retention(desktop, operation_id)
    except (HypervisorError, OSError) as exc:  # the backup is made; the next one tries again
        log.error("retention after the backup of %s: %s", desktop, explain(exc))
        operations.progress(operation_id, 100, "backed up; expired backups not removed: "
                            f"{explain(exc)}")


def _apply_retention(desktop: Desktop, operation_id: int) -> None:
    """What the pool's retention lets go is removed, newest first (children before the
    backups they build on)."""
    pool = desktop.pool
    assert pool is not None  # backups are of persistent (pool) desktops
    doomed = expired(Backup.objects.filter(desktop=desktop), pool.backup_keep_last,
                     pool.backup_keep_daily, pool.backup_keep_weekly)
    if doomed:
        operations.progress(operation_id, 95, f"removing {len(doomed)} expired backup(s)")
    for backup in doomed:
        remove(backup)


def remove(backup: Backup) -> None:
    """A backup goes: its checkpoint (libvirt merges its bitmap into the next), its files,
    its row."""
    desktop = backup.desktop
    if desktop is not None:
        driver_for(desktop.host).backups.drop_checkpoint(
            desktop.domain_name, backup.checkpoint, tuple(_devices(desktop)[0].values()))
    shutil.rmtree(backup.folder, ignore_errors=True)
    backup.delete()


def _verified(targets: dict[str, Path], parent: Backup | None) -> dict[str, dict[str, object]]:
    files: dict[str, dict[str, object]] = {}
    for dev, path in targets.items():
        if parent is not None:
            chain(path, Path(str(parent.files[dev]["path"])))
        check(path)
        files[dev] = {"path": str(path), "bytes": path.stat().st_blocks * 512,
                      "sha256": sha256_file(path)}
    return files


def _backup_id(operation_id: int) -> int:
    return int(operations.params(operation_id).get("backup") or 0)


def _forget_backup(desktop: Desktop, operation_id: int) -> list[str]:
    """A backup that failed leaves no file, no row and no checkpoint; the next is full."""
    Desktop.objects.filter(pk=desktop.pk).update(backup_chain_broken=True)
    backup = Backup.objects.filter(pk=_backup_id(operation_id),
                                   status=BackupStatus.RUNNING).first()
    return [] if backup is None else discard(backup)


FAILURE_CLEANUPS["backup"] = _forget_backup


def discard(backup: Backup) -> list[str]:
    """An unfinished backup goes: its checkpoint, its files and its row. The row goes even
    when the rest can't (a row left running would say "being made" for ever); what was left,
    in words for operators."""
    left, pk = [], backup.pk  # (delete() clears the pk)
    desktop = backup.desktop
    try:
        if desktop is not None:
            driver = driver_for(desktop.host)
            if driver.state(desktop.domain_name) == PowerState.PAUSED:
                driver.power_off(desktop.domain_name)  # left paused by a backup that died
            driver.backups.drop_checkpoint(desktop.domain_name, backup.checkpoint,
                                           tuple(_devices(desktop)[0].values()))
    except (HypervisorError, OSError) as exc:
        left.append(f"the checkpoint {backup.checkpoint} of the unfinished backup {pk} "
                    f"may be left ({explain(exc)})")
    finally:
        shutil.rmtree(backup.folder, ignore_errors=True)
        backup.delete()
    if Path(backup.folder).exists():
        left.append(f"the unfinished backup's folder {backup.folder} could not be removed")
    return left or [f"removed the unfinished backup {pk}"]


@step("restore")
def _restore(desktop: Desktop, operation_id: int) -> None:
    backup = Backup.objects.filter(pk=_backup_id(operation_id),
                                   status=BackupStatus.READY).first()
    if backup is None:
        raise StepRefused("The backup is gone.", "no such ready backup")
    driver = driver_for(desktop.host)
    record_endpoint(desktop.pk, None)
    driver.power_off(desktop.domain_name)
    disks, _skipped = _devices(desktop)
    operations.progress(operation_id, 20, "reading the backup")
    staged: dict[Path, Path] = {}
    try:
        for dev, disk in disks.items():
            if dev not in backup.files:
                continue  # a disk the backup did not have (a data disk made later) stays
            staged[disk] = disk.with_name(f".restore-{disk.name}")
            flatten(Path(str(backup.files[dev]["path"])), staged[disk])
        crash_point("restore")
        operations.progress(operation_id, 80, "putting the disks in place")
        driver.backups.drop_checkpoints(desktop.domain_name, tuple(disks.values()))
        for disk, new in staged.items():
            new.replace(disk)  # atomic on one file system
    finally:
        for new in staged.values():  # what a failed restore flattened goes (none if done)
            new.unlink(missing_ok=True)
    with transaction.atomic():
        Snapshot.objects.filter(desktop=desktop).delete()  # of disks that are gone
        Desktop.objects.filter(pk=desktop.pk).update(backup_chain_broken=True)


def materialize(desktop: Desktop, backup_id: int) -> None:
    """A new desktop made from a backup: its disks are the backup's, flattened, before the
    provisioning defines and boots it (it then clones nothing and makes no data disk)."""
    backup = Backup.objects.filter(pk=backup_id, status=BackupStatus.READY).first()
    if backup is None:
        raise StepRefused("The backup to restore is gone.", f"no ready backup {backup_id}")
    sources = {"vda": Path(desktop.disk_path)}
    if desktop.data_disk_path:
        sources["vdb"] = Path(desktop.data_disk_path)
    for dev, target in sources.items():
        if dev in backup.files and not target.exists():
            flatten(Path(str(backup.files[dev]["path"])), target)
            target.chmod(0o660)


PROVISION_SOURCES["backup"] = materialize


def settle(desktop: Desktop) -> list[str]:
    """After a crash: unfinished backups of the desktop go (files, checkpoint, row)."""
    done = []
    for backup in Backup.objects.filter(desktop=desktop, status=BackupStatus.RUNNING):
        done += discard(backup)
    if done:
        Desktop.objects.filter(pk=desktop.pk).update(backup_chain_broken=True)
    return done



def restore_file(transfer_id: int, backup_id: int, path: str) -> str:
    """The backup's data disk, flattened to a scratch raw image, read with ``debugfs``
    (no NBD or loop device, nothing mounted): the file lands in the spool."""
    transfer = FileTransfer.objects.get(pk=transfer_id)
    backup = Backup.objects.filter(pk=backup_id, status=BackupStatus.READY).first()
    if backup is None:
        return _transfer_failed(transfer, "the backup is gone (expired or removed)")
    spool = Path(settings.SPOOL_DIR)
    scratch, out = spool / f"restore-{transfer.pk}.raw", spool / f"out-{transfer.pk}"
    try:
        spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        flatten(Path(str(backup.files["vdb"]["path"])), scratch, fmt="raw")
        read_file(scratch, "/" + path, out)
        size = out.stat().st_size
        if size > settings.FILE_TRANSFER_MAX_BYTES:
            out.unlink()
            return _transfer_failed(transfer, f"{size} bytes: files take at most "
                                              f"{settings.FILE_TRANSFER_MAX_BYTES} bytes")
    except (HypervisorError, OSError) as exc:
        out.unlink(missing_ok=True)
        return _transfer_failed(transfer, f"not restored from the backup: {explain(exc)}")
    finally:
        scratch.unlink(missing_ok=True)
    FileTransfer.objects.filter(pk=transfer.pk).update(
        spool_path=str(out), status=FileTransfer.Status.DONE, size_bytes=size,
        finished_at=timezone.now())
    live.desktop_changed(transfer.desktop_id)  # its backups page lists it
    return str(out)


def _transfer_failed(transfer: FileTransfer, why: str) -> str:
    FileTransfer.objects.filter(pk=transfer.pk).update(
        status=FileTransfer.Status.FAILED, error=why, finished_at=timezone.now())
    live.desktop_changed(transfer.desktop_id)
    return why
