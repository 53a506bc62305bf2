"""Backups of a domain's disks through libvirt's backup API, with checkpoints. No Django.

A backup copies the named disks into qcow2 files (push mode) and leaves a checkpoint: a
persistent dirty bitmap in each disk, so the next backup copies only what changed since
(``incremental_from``). Libvirt 9.0 backs up running domains only, so a stopped domain is
started paused for its backup: QEMU opens the disks with the same bitmaps, the guest runs no
instruction, and the domain is powered off again. Incremental files get their parent as
backing file (``chain``), so the newest file of a chain reads as the whole disk at its point.
QEMU refuses to go back to an internal snapshot while a disk has active bitmaps, so a revert
first drops every checkpoint (``drop_checkpoints``); the next backup is then a full one.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import libvirt

from vdi.hypervisor.errors import HypervisorError

if TYPE_CHECKING:
    from vdi.hypervisor.driver import Driver


def _backup_xml(targets: dict[str, Path], skip: tuple[str, ...],
                incremental_from: str | None) -> str:
    incremental = f"<incremental>{incremental_from}</incremental>" if incremental_from else ""
    disks = "".join(f"<disk name='{dev}' type='file'><target file='{path}'/>"
                    "<driver type='qcow2'/></disk>" for dev, path in targets.items())
    disks += "".join(f"<disk name='{dev}' backup='no'/>" for dev in skip)
    return f"<domainbackup mode='push'>{incremental}<disks>{disks}</disks></domainbackup>"


def _checkpoint_xml(name: str, devices: tuple[str, ...], skip: tuple[str, ...]) -> str:
    disks = "".join(f"<disk name='{dev}' checkpoint='bitmap'/>" for dev in devices)
    disks += "".join(f"<disk name='{dev}' checkpoint='no'/>" for dev in skip)
    return f"<domaincheckpoint><name>{name}</name><disks>{disks}</disks></domaincheckpoint>"


class Backups:
    """The backup verbs of one driver (its libvirt connection)."""

    def __init__(self, driver: Driver, poll: float = 0.05) -> None:
        self.driver = driver
        self.poll = poll

    def checkpoints(self, name: str) -> set[str]:
        dom = self.driver._domain(name)
        if dom is None:
            return set()
        try:
            return {c.getName() for c in dom.listAllCheckpoints(0)}
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"list checkpoints of {name}: {exc.get_error_message()}",
                                  retryable=True) from None

    def drop_checkpoints(self, name: str, disks: tuple[Path, ...]) -> None:
        """Every checkpoint and its bitmaps go (before a revert or a restore). Libvirt deletes
        a stopped domain's checkpoints as metadata only, so their bitmaps are removed from
        the ``disks`` here."""
        dom = self.driver._domain(name)
        if dom is not None:
            active = bool(dom.isActive())
            flags = libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_CHILDREN | (
                0 if active else libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)
            try:
                for checkpoint in dom.listAllCheckpoints(
                        libvirt.VIR_DOMAIN_CHECKPOINT_LIST_ROOTS):
                    checkpoint.delete(flags)
            except libvirt.libvirtError as exc:
                raise HypervisorError(f"drop the checkpoints of {name}: "
                                      f"{exc.get_error_message()}") from None
            if active:
                return
        for disk in disks:
            for bitmap in bitmaps(disk):
                remove_bitmap(disk, bitmap)

    def drop_checkpoint(self, name: str, checkpoint: str, disks: tuple[Path, ...]) -> None:
        """One checkpoint goes (an expired or failed backup's); each checkpoint has a
        bitmap of its own, so the others stay whole. A missing one is not an error."""
        dom = self.driver._domain(name)
        active = dom is not None and bool(dom.isActive())
        if dom is not None and checkpoint in self.checkpoints(name):
            flags = 0 if active else libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY
            try:
                dom.checkpointLookupByName(checkpoint).delete(flags)
            except libvirt.libvirtError as exc:
                raise HypervisorError(f"drop checkpoint {checkpoint} of {name}: "
                                      f"{exc.get_error_message()}") from None
        if not active:
            for disk in disks:
                if checkpoint in bitmaps(disk):
                    remove_bitmap(disk, checkpoint)

    def back_up(self, name: str, targets: dict[str, Path], skip: tuple[str, ...],
                checkpoint: str, incremental_from: str | None,
                progress: Callable[[float], None], timeout: float = 3600) -> None:
        """Copy the disks ``targets`` names (device -> an empty qcow2 file the caller made)
        and leave ``checkpoint``."""
        dom = self.driver._require(name)
        try:
            dom.backupBegin(_backup_xml(targets, skip, incremental_from),
                            _checkpoint_xml(checkpoint, tuple(targets), skip),
                            libvirt.VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"back up {name}: {exc.get_error_message()}") from None
        self._wait(dom, name, progress, timeout)

    def _wait(self, dom: Any, name: str, progress: Callable[[float], None],
              timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = dom.jobInfo()
            if info[0] == libvirt.VIR_DOMAIN_JOB_NONE:
                break
            total, done = info[4], info[5]  # dataTotal, dataProcessed
            if total:
                progress(done / total)
            time.sleep(self.poll)
        else:
            dom.abortJob()
            raise HypervisorError(f"back up {name}: not done after {timeout:.0f} s")
        stats = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        if stats.get("type") != libvirt.VIR_DOMAIN_JOB_COMPLETED:
            raise HypervisorError(f"back up {name}: {stats.get('errmsg') or 'the job failed'}")

    def start_paused(self, name: str) -> None:
        """Open the disks in a QEMU whose guest never runs (a stopped domain's backup)."""
        try:
            self.driver._require(name).createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"start {name} paused: {exc.get_error_message()}") from None


def bitmaps(disk: Path) -> list[str]:
    """The persistent dirty bitmaps in a qcow2 file."""
    done = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(disk)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HypervisorError(f"inspect {disk}: {done.stderr.strip()}")
    data = (json.loads(done.stdout).get("format-specific") or {}).get("data") or {}
    return [b["name"] for b in data.get("bitmaps", [])]


def remove_bitmap(disk: Path, bitmap: str) -> None:
    done = subprocess.run(["qemu-img", "bitmap", "--remove", str(disk), bitmap],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HypervisorError(f"remove bitmap {bitmap} of {disk}: {done.stderr.strip()}")


def chain(child: Path, parent: Path) -> None:
    """Make ``parent`` the backing file of an incremental backup file (metadata only)."""
    done = subprocess.run(["qemu-img", "rebase", "-u", "-F", "qcow2", "-b", str(parent),
                           str(child)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HypervisorError(f"chain {child} to {parent}: {done.stderr.strip()}")


def check(path: Path) -> None:
    """``qemu-img check``: the file is a sound qcow2 (or say what is wrong)."""
    done = subprocess.run(["qemu-img", "check", "-q", str(path)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise HypervisorError(f"{path} failed its check: {done.stderr.strip()}")


def flatten(top: Path, target: Path, fmt: str = "qcow2") -> None:
    """The disk as the chain ending at ``top`` reads, as one file (qcow2, or raw), 0660 as
    every disk the worker makes: while its guest runs, libvirt gives it to QEMU's user and
    group (the mode kept), and the worker, in QEMU's group, still reads it (``qemu-img -U``)."""
    done = subprocess.run(["qemu-img", "convert", "-O", fmt, str(top), str(target)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HypervisorError(f"restore {top}: {done.stderr.strip()}")
    os.chmod(target, 0o660)


def read_file(image: Path, path: str, out: Path) -> None:
    """Copy ``path`` out of the ext2/3/4 file system in the raw ``image`` (debugfs)."""
    if '"' in path or "\n" in path:
        raise HypervisorError(f"{path!r}: not a path debugfs can be given")
    done = subprocess.run(["debugfs", "-R", f'dump "{path}" {out}', str(image)],
                          capture_output=True, text=True, check=False)
    problem = done.stderr.strip().splitlines()[1:]  # its first line is its version
    if done.returncode != 0 or not out.exists() or any("not found" in p for p in problem):
        out.unlink(missing_ok=True)
        raise HypervisorError(f"{path}: " + ("; ".join(problem) or "not found in the backup"))
