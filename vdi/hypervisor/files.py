"""Files on a hypervisor host: disks, serial logs, the quarantine. No Django.

The worker touches a host's files only through these verbs (reached as ``Driver.files``), so
that a host whose libvirt is remote can get an implementation that works there (libvirt storage
volumes, or an agent) without changing the jobs or the reconciler.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from vdi.folders import shared_folder
from vdi.hypervisor import disks, sysprep
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

    def contains(self, path: Path, text: str, tail: int = 4 * 1024 * 1024) -> bool:
        """Whether the last ``tail`` bytes of a (log) file contain ``text``."""
        try:
            with path.open("rb") as handle:
                handle.seek(max(0, path.stat().st_size - tail))
                return text.encode() in handle.read()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise HypervisorError(f"read {path}: {exc.strerror}", retryable=True) from None

    def prepare_log(self, path: Path) -> None:
        """Create the guest's serial log before it boots: virtlogd (root) then appends to a
        file the worker's own user owns and can read, instead of creating a root-only one."""
        shared_folder(path.parent)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        os.close(descriptor)

    def create_seed(self, path: Path, hostname: str, instance_id: str) -> None:
        """A cloud-init NoCloud seed (a small FAT volume labelled CIDATA with ``meta-data`` and
        ``user-data``): the guest takes its hostname from it at first boot. Made without
        mounting anything; replaced if it exists."""
        with tempfile.TemporaryDirectory(prefix="vdi-seed-") as tmp:
            meta, user = Path(tmp) / "meta-data", Path(tmp) / "user-data"
            meta.write_text(f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n")
            user.write_text("#cloud-config\npreserve_hostname: false\n")
            partial = path.with_name(path.name + ".partial")
            shared_folder(path.parent)
            partial.unlink(missing_ok=True)
            with partial.open("wb") as handle:
                handle.truncate(1024 * 1024)
            for command in (["mkfs.vfat", "-n", "CIDATA", str(partial)],
                            ["mcopy", "-o", "-i", str(partial), str(user), str(meta), "::"]):
                try:
                    subprocess.run(command, check=True, capture_output=True, text=True,
                                   timeout=60)
                except (OSError, subprocess.CalledProcessError) as exc:
                    partial.unlink(missing_ok=True)
                    detail = getattr(exc, "stderr", "") or str(exc)
                    raise HypervisorError(f"seed {path}: {command[0]}: {detail}") from None
            os.chmod(partial, 0o644)
            partial.rename(path)

    def create_blank_disk(self, path: Path, size_gib: int) -> None:
        """An empty qcow2 (an install desktop's system disk)."""
        disks.create_blank(path, size_gib * 1024**3)

    def flatten(self, source: Path, target: Path, progress: Callable[[float], None]) -> None:
        """A standalone copy of the qcow2 ``source`` (no backing file), the guest's disk left
        as it is; ``target`` must not exist."""
        if target.exists():
            raise HypervisorError(f"copy of {source}: {target} already exists")
        disks.convert_with_progress(source, "qcow2", target, progress)

    def sysprep(self, disk: Path, appliance: Path | None, force_tcg: bool) -> None:
        """Clean a guest's disk for cloning (``vdi.hypervisor.sysprep``)."""
        sysprep.sysprep(disk, appliance, force_tcg)

    def create_data_disk(self, path: Path, size_gib: int, label: str = "vdi-data") -> None:
        """An empty ext4 file system as qcow2 (any Linux guest mounts it at once)."""
        if path.exists():
            raise HypervisorError(f"data disk {path} already exists")
        shared_folder(path.parent)
        partial = path.with_name(path.name + ".partial")
        partial.unlink(missing_ok=True)
        try:
            disks.create_ext4(partial, f"{size_gib}G", label)
        except Exception as exc:
            partial.unlink(missing_ok=True)
            raise HypervisorError(f"could not create data disk {path}: {exc}") from exc
        os.chmod(partial, 0o660)
        partial.rename(path)
