"""Cleaning an installed disk for cloning with libguestfs' ``virt-sysprep``. No Django.

An explicit list of operations: the default list includes ``customize``, which fills the
emptied ``/etc/machine-id`` again (every clone would share one), and future libguestfs
versions would add defaults silently. Left out on purpose: ``ssh-userdir`` (keys the
administrator set up), ``user-account``, ``cron-spool``, ``fs-uuids`` (a fstab by UUID
breaks), ``lvm-uuids`` and ``net-nmconn`` (NetworkManager profiles someone made).

The appliance: a fixed one (``libguestfs-make-fixed-appliance``, made by the set-up scripts
where the host has no kernel of its own) is used when ``appliance`` holds one; under software
emulation its QEMU must not try KVM (``force_tcg``: it hangs under this machine's KVM).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from vdi.hypervisor.errors import HypervisorError

OPERATIONS = (
    "machine-id", "ssh-hostkeys", "logfiles", "bash-history", "tmp-files", "dhcp-client-state",
    "dhcp-server-state", "udev-persistent-net", "net-hwaddr", "net-hostname", "utmp",
    "package-manager-cache", "backup-files", "crash-data", "passwd-backups", "blkid-tab",
    "pacct-log",
)
APPLIANCE_FILES = ("kernel", "initrd", "root")
_ERROR = re.compile(r"^virt-sysprep: error: (.+)$", re.MULTILINE)
EXPLAINED = {
    "no operating systems were found in the guest image":
        "the disk has no operating system that libguestfs recognizes: finish the installation "
        "first (or publish without cleaning)",
}


def environment(appliance: Path | None, force_tcg: bool) -> dict[str, str]:
    env = {**os.environ, "LIBGUESTFS_BACKEND": "direct"}
    if appliance is not None and all((appliance / f).is_file() for f in APPLIANCE_FILES):
        env["LIBGUESTFS_PATH"] = str(appliance)
    if force_tcg:
        env["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
    return env


def sysprep(disk: Path, appliance: Path | None, force_tcg: bool, timeout: int = 900) -> None:
    """Clean ``disk`` (a qcow2 no guest is using) in place; HypervisorError with the reason."""
    command = ["virt-sysprep", "-q", "--format", "qcow2", "-a", str(disk),
               "--operations", ",".join(OPERATIONS)]
    try:
        done = subprocess.run(command, env=environment(appliance, force_tcg),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        raise HypervisorError("virt-sysprep is not installed (package libguestfs-tools)") \
            from None
    except subprocess.TimeoutExpired:
        raise HypervisorError(f"virt-sysprep did not finish within {timeout} s") from None
    if done.returncode != 0:
        found = _ERROR.search(done.stderr)
        reason = found.group(1).strip() if found else (done.stderr.strip() or "it failed")
        raise HypervisorError(f"cleaning for cloning failed: {EXPLAINED.get(reason, reason)}")
