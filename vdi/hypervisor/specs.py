"""Plain data that goes into and comes out of the driver."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class DomainType(enum.StrEnum):
    KVM = "kvm"
    QEMU = "qemu"


class Display(enum.StrEnum):
    """The guest's remote display: VNC, or SPICE (with sound)."""

    VNC = "vnc"
    SPICE = "spice"


class MachineProfile(enum.StrEnum):
    """The virtual hardware a guest gets (``vdi.hypervisor.domain_xml`` builds each)."""

    TINY = "tiny"  # pc, VGA, USB tablet: the busybox test image
    LINUX_DESKTOP = "linux-desktop"  # q35, virtio everything, guest agent, VNC clipboard
    WINDOWS = "windows"  # q35, UEFI Secure Boot, TPM 2.0, Hyper-V, SATA, e1000e, USB tablet


class Shutdown(enum.StrEnum):
    """How a guest went off when asked to."""

    ACPI = "acpi"  # it answered the power button
    AGENT = "agent"  # it ignored ACPI; its guest agent powered it off
    POWER_OFF = "power-off"  # it answered neither in time: the plug was pulled


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
    """A file attached as a disk (``vda``...) or a CD-ROM (an ISO, a cloud-init seed)."""

    path: Path
    target: str = "vda"
    read_only: bool = False
    bus: str = "virtio"  # virtio, sata
    device: str = "disk"  # disk, cdrom
    format: str = "qcow2"  # qcow2, raw


@dataclass(frozen=True)
class NicSpec:
    """A network card with a fixed MAC, on a libvirt network or an existing bridge."""

    mac: str
    network: str | None = None
    bridge: str | None = None
    model: str = "virtio"


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
    vnc_socket: Path | None = None  # VNC on a unix socket (a host in its own namespaces)
    display: Display = Display.VNC  # the vnc_* settings above then apply to SPICE's server
    clipboard: bool = True  # SPICE: copy and paste between client and guest
    metadata: dict[str, str] = field(default_factory=dict)
    profile: MachineProfile = MachineProfile.TINY
    nics: tuple[NicSpec, ...] = ()
    boot: tuple[str, ...] = ("hd",)  # ("cdrom", "hd") for an install desktop


@dataclass(frozen=True)
class VncEndpoint:
    host: str
    port: int
    password: str | None = None
    socket: Path | None = None  # set instead of host and port for VNC on a unix socket
    display: Display = Display.VNC


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
    other_files: tuple[Path, ...] = ()  # an external data file, vmdk extents elsewhere


@dataclass(frozen=True)
class Screenshot:
    """What a running guest's screen shows, as its hypervisor encoded it (``image/png`` from
    QEMU 7.1+, ``image/x-portable-pixmap`` from older ones)."""

    mime: str
    data: bytes
