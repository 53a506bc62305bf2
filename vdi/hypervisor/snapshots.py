"""Snapshots of a domain's qcow2 disks, as internal snapshots named by a tag. No Django.

Live snapshots go through libvirt: libvirt 9.0 reverts only internal snapshots, and an
internal snapshot of a running domain holds its memory and every disk. Libvirt refuses an
internal snapshot that leaves a disk out, and any internal snapshot of a UEFI domain, so
snapshots of a stopped desktop are made here with ``qemu-img snapshot`` on the disks the
caller names (the system disk, and the data disk if asked): the same qcow2 mechanism, outside
libvirt's metadata, and usable with UEFI firmware. Every verb is idempotent: creating a tag
that exists, or deleting one that does not, changes nothing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import libvirt

from vdi.hypervisor.errors import HypervisorError

if TYPE_CHECKING:
    from vdi.hypervisor.driver import Driver

QEMU_IMG = "qemu-img"


def _qemu_img(args: list[str], what: str) -> str:
    try:
        done = subprocess.run([QEMU_IMG, *args], capture_output=True, text=True, timeout=600,
                              check=False)
    except subprocess.TimeoutExpired:
        raise HypervisorError(f"{what}: qemu-img timed out", retryable=True) from None
    if done.returncode != 0:
        raise HypervisorError(f"{what}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def disk_tags(path: Path) -> dict[str, int]:
    """The internal snapshots of a qcow2 file: tag -> size of the memory saved with it."""
    info: dict[str, Any] = json.loads(_qemu_img(
        ["info", "--output=json", "-U", str(path)], f"list the snapshots of {path}"))
    return {s["name"]: int(s.get("vm-state-size", 0)) for s in info.get("snapshots", [])}


def allocated(path: Path) -> int:
    """Bytes the file takes on its file system."""
    return path.stat().st_blocks * 512 if path.exists() else 0


class Snapshots:
    """The snapshot verbs of one driver (its libvirt connection)."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    # --- live: libvirt, memory and every disk -------------------------------------------------
    def take_live(self, name: str, tag: str, description: str = "") -> None:
        dom = self.driver._require(name)
        if tag in self._libvirt_tags(dom):
            return
        xml = (f"<domainsnapshot><name>{tag}</name><description>{_escape(description)}"
               "</description><memory snapshot='internal'/></domainsnapshot>")
        try:
            dom.snapshotCreateXML(xml, libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"snapshot {name}: {exc.get_error_message()}") from None

    def revert_live(self, name: str, tag: str) -> None:
        """Back to the snapshot: the domain runs again from its saved memory."""
        dom = self.driver._require(name)
        try:
            dom.revertToSnapshot(dom.snapshotLookupByName(tag), 0)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"revert {name} to {tag}: {exc.get_error_message()}") from None

    def delete_live(self, name: str, tag: str) -> None:
        dom = self.driver._domain(name)
        if dom is None or tag not in self._libvirt_tags(dom):
            return
        try:
            dom.snapshotLookupByName(tag).delete(0)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"delete snapshot {tag} of {name}: "
                                  f"{exc.get_error_message()}") from None

    def live_tags(self, name: str) -> set[str]:
        dom = self.driver._domain(name)
        return set() if dom is None else self._libvirt_tags(dom)

    @staticmethod
    def _libvirt_tags(dom: Any) -> set[str]:
        try:
            return set(dom.snapshotListNames(0))
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"list snapshots: {exc.get_error_message()}",
                                  retryable=True) from None

    # --- offline: qemu-img on the named disks of a stopped domain ----------------------------
    def take_offline(self, disks: tuple[Path, ...], tag: str) -> None:
        for disk in disks:
            if tag not in disk_tags(disk):
                _qemu_img(["snapshot", "-c", tag, str(disk)], f"snapshot {disk}")

    def revert_offline(self, disks: tuple[Path, ...], tag: str) -> None:
        missing = [str(d) for d in disks if tag not in disk_tags(d)]
        if missing:
            raise HypervisorError(f"revert to {tag}: not in {', '.join(missing)}")
        for disk in disks:
            _qemu_img(["snapshot", "-a", tag, str(disk)], f"revert {disk} to {tag}")

    def delete_offline(self, disks: tuple[Path, ...], tag: str) -> None:
        for disk in disks:
            if disk.exists() and tag in disk_tags(disk):
                _qemu_img(["snapshot", "-d", tag, str(disk)], f"delete {tag} of {disk}")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
