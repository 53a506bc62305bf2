"""From a Desktop row to the driver's DomainSpec: its disks (system, data, the cloud-init seed
of a Linux desktop), its network card, where its VNC listens, its machine profile."""

from __future__ import annotations

from pathlib import Path

from django.utils.text import slugify

from vdi import networks
from vdi.choices import ClipboardPolicy, NetworkMode, Profile
from vdi.hypervisor import (
    DiskSpec,
    Display,
    DomainSpec,
    KernelBoot,
    MachineProfile,
    NicSpec,
)
from vdi.hypervisor.network_xml import NetworkSpec, pool_network
from vdi.models import Desktop
from vdi.worker.hosts import domain_type_for


def seed_path(desktop: Desktop) -> Path:
    return Path(desktop.disk_path).with_name(f"{desktop.domain_name}-seed.img")


def hostname(desktop: Desktop) -> str:
    """A unique host name a desktop takes at its first boot (from its seed)."""
    if desktop.pool is not None:
        name = desktop.pool.name
    else:
        name = "maintenance" if desktop.is_maintenance else "install"
    return f"{slugify(name)[:40] or 'desktop'}-{desktop.pk}"


def has_seed(desktop: Desktop) -> bool:
    """Linux desktops from an image get a cloud-init seed (install desktops: the installer)."""
    return desktop.profile == Profile.LINUX_DESKTOP and not desktop.is_install


def disks_of(desktop: Desktop) -> tuple[DiskSpec, ...]:
    """System disk, data disk, seed; an install desktop's installer ISO on a SATA CD-ROM
    (q35 has no IDE; every installer knows SATA)."""
    windows = desktop.profile == Profile.WINDOWS
    bus, prefix = ("sata", "sd") if windows else ("virtio", "vd")
    disks = [DiskSpec(Path(desktop.disk_path), f"{prefix}a", bus=bus)]
    if desktop.data_disk_path:
        disks.append(DiskSpec(Path(desktop.data_disk_path), f"{prefix}b", bus=bus))
    if has_seed(desktop):
        disks.append(DiskSpec(seed_path(desktop), "vdc", read_only=True, format="raw"))
    if desktop.install_media is not None:
        disks.append(DiskSpec(Path(desktop.install_media.path), "sdb" if windows else "sda",
                              bus="sata", device="cdrom", format="raw"))
    return tuple(disks)


def network(desktop: Desktop) -> networks.Network:
    """The network the desktop joins on its host: its pool's, or its host's default. A
    maintenance desktop joins its host's default when that reaches out (NAT or a bridge), to
    fetch updates; an install desktop none."""
    if desktop.pool is not None:
        return networks.of_pool(desktop.pool, desktop.host)
    default = networks.host_default(desktop.host)
    if desktop.is_maintenance and default.mode in (NetworkMode.NAT, NetworkMode.BRIDGE):
        return default
    return networks.NO_NETWORK


def network_of(desktop: Desktop) -> NetworkSpec | None:
    """The network the worker makes on the host for the desktop's pool (isolated only)."""
    if desktop.pool is None or network(desktop).mode != NetworkMode.ISOLATED:
        return None
    return pool_network(desktop.pool.pk)


def nics_of(desktop: Desktop) -> tuple[NicSpec, ...]:
    joins = network(desktop)
    if not joins.has_nic or not desktop.mac_address:
        return ()
    model = "e1000e" if desktop.profile == Profile.WINDOWS else "virtio"
    if joins.mode == NetworkMode.BRIDGE:
        return (NicSpec(desktop.mac_address, bridge=joins.name, model=model),)
    if joins.mode == NetworkMode.NAT:
        return (NicSpec(desktop.mac_address, network=joins.name, model=model),)
    if desktop.pool is None:  # only a pool has an isolated network
        return ()
    isolated = pool_network(desktop.pool.pk)
    return (NicSpec(desktop.mac_address, network=isolated.name, model=model),)


def vnc_socket(desktop: Desktop) -> Path | None:
    folder = desktop.host.vnc_socket_dir
    return Path(folder) / f"{desktop.domain_name}.sock" if folder else None


def domain_spec(desktop: Desktop) -> DomainSpec:
    version = desktop.image_version
    kernel_boot = None
    if version is not None and version.kernel_path:
        kernel_boot = KernelBoot(
            kernel=Path(version.kernel_path),
            initrd=Path(version.initrd_path) if version.initrd_path else None,
            cmdline=version.cmdline,
        )
    return DomainSpec(
        name=desktop.domain_name,
        uuid=str(desktop.domain_uuid),
        domain_type=domain_type_for(desktop.host),
        memory_mib=desktop.memory_mib,
        vcpus=desktop.vcpus,
        disks=disks_of(desktop),
        serial_log=Path(desktop.serial_log_path),
        kernel_boot=kernel_boot,
        vnc_password=desktop.vnc_password or None,
        vnc_socket=vnc_socket(desktop),
        display=Display(desktop.pool.display_protocol if desktop.pool else Display.VNC),
        clipboard=not desktop.pool or desktop.pool.clipboard != ClipboardPolicy.OFF,
        metadata={"desktop": str(desktop.pk), "pool": str(desktop.pool_id or "")},
        profile=MachineProfile(desktop.profile),
        nics=nics_of(desktop),
        boot=("cdrom", "hd") if desktop.is_install else ("hd",),
    )
