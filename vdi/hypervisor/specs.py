"""Plain data that goes into and comes out of the driver."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class DomainType(enum.StrEnum):
    KVM = "kvm"
    QEMU = "qemu"


class PowerState(enum.StrEnum):
    """What libvirt says a domain is doing, reduced to what the portal cares about."""

    RUNNING = "running"
    SHUTOFF = "shutoff"
    PAUSED = "paused"
    SHUTTING_DOWN = "shutting_down"
    CRASHED = "crashed"
    OTHER = "other"


@dataclass(frozen=True)
class DiskSpec:
    """A qcow2 file attached as a virtio disk (``vda``, ``vdb``...)."""

    path: Path
    target: str = "vda"
    read_only: bool = False


@dataclass(frozen=True)
class KernelBoot:
    """Direct kernel boot: the guest starts from these files instead of a boot loader."""

    kernel: Path
    initrd: Path | None = None
    cmdline: str = ""


@dataclass(frozen=True)
class DomainSpec:
    """Everything needed to describe one desktop guest."""

    name: str
    uuid: str
    domain_type: DomainType
    memory_mib: int
    vcpus: int
    disks: tuple[DiskSpec, ...]
    serial_log: Path
    kernel_boot: KernelBoot | None = None
    vnc_listen: str = "127.0.0.1"
    vnc_password: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VncEndpoint:
    host: str
    port: int
    password: str | None = None


@dataclass(frozen=True)
class DomainInfo:
    name: str
    uuid: str
    state: PowerState
    persistent: bool
    disk_paths: tuple[Path, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DiskInfo:
    path: Path
    format: str
    virtual_size: int
    actual_size: int
    backing_file: Path | None
