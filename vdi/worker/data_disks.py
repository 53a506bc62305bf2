"""Users' data disks: an ext4 file system in a qcow2 file, made on the host.

Made formatted so that a guest (the tiny image included) can mount it at once; any Linux
guest can. It lives beside the system disk and is never part of a reset.
"""

from __future__ import annotations

import os
from pathlib import Path

from vdi.hypervisor import HypervisorError
from vdi.images.tiny import build_ext4_disk


def create(path: Path, size_gib: int) -> None:
    if path.exists():
        raise HypervisorError(f"data disk {path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        build_ext4_disk(partial, f"{size_gib}G", "vdi-data")
    except Exception as exc:
        partial.unlink(missing_ok=True)
        raise HypervisorError(f"could not create data disk {path}: {exc}") from exc
    os.chmod(partial, 0o660)
    partial.rename(path)
