"""From a Desktop row to the driver's DomainSpec."""

from __future__ import annotations

from pathlib import Path

from vdi.hypervisor import DiskSpec, DomainSpec, KernelBoot
from vdi.models import Desktop
from vdi.worker.hosts import domain_type_for


def disks_of(desktop: Desktop) -> tuple[DiskSpec, ...]:
    system = DiskSpec(Path(desktop.disk_path), "vda")
    if not desktop.data_disk_path:
        return (system,)
    return (system, DiskSpec(Path(desktop.data_disk_path), "vdb"))


def domain_spec(desktop: Desktop) -> DomainSpec:
    version = desktop.image_version
    kernel_boot = None
    if version.kernel_path:
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
        metadata={"desktop": str(desktop.pk), "pool": str(desktop.pool_id)},
    )
