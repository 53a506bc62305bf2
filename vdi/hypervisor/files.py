"""Files on a hypervisor host: disks, serial logs, the quarantine. No Django.

The worker touches a host's files only through these verbs (reached as ``Driver.files``), so
that a host whose libvirt is remote can get an implementation that works there (libvirt storage
volumes, or an agent) without changing the jobs or the reconciler.
"""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

from vdi.hypervisor import disks
from vdi.hypervisor.errors import HypervisorError

QUARANTINE = "quarantine"


class LocalFiles:
    """The files of a host whose folders this process sees (its worker runs on it)."""

    def exists(self, path: Path) -> bool:
        return path.exists()

    def remove(self, path: Path) -> bool:
        """Delete a file; True if it existed. Never follows into a backing file."""
        return disks.remove_disk(path)

    def glob(self, folder: Path, pattern: str) -> list[Path]:
        return sorted(folder.glob(pattern)) if folder.is_dir() else []

    def quarantine(self, path: Path) -> Path:
        """Move a file aside into ``<its folder>/quarantine/`` (a user's data is never deleted
        by the system); returns where it went."""
        folder = path.parent / QUARANTINE
        folder.mkdir(mode=0o750, exist_ok=True)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        target = folder / f"{stamp}-{path.name}"
        try:
            shutil.move(path, target)
        except OSError as exc:
            raise HypervisorError(f"quarantine {path}: {exc.strerror}", retryable=True) from None
        return target

    def prepare_log(self, path: Path) -> None:
        """Create the guest's serial log before it boots: virtlogd (root) then appends to a
        file the worker's own user owns and can read, instead of creating a root-only one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        os.close(descriptor)

    def create_data_disk(self, path: Path, size_gib: int, label: str = "vdi-data") -> None:
        """An empty ext4 file system as qcow2 (any Linux guest mounts it at once)."""
        if path.exists():
            raise HypervisorError(f"data disk {path} already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.unlink(missing_ok=True)
        try:
            disks.create_ext4(partial, f"{size_gib}G", label)
        except Exception as exc:
            partial.unlink(missing_ok=True)
            raise HypervisorError(f"could not create data disk {path}: {exc}") from exc
        os.chmod(partial, 0o660)
        partial.rename(path)
