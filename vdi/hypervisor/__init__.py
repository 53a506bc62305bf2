"""Hypervisor access: a small driver over libvirt-python. Imports nothing from Django."""

from vdi.hypervisor.driver import Driver, get_driver
from vdi.hypervisor.errors import HypervisorError
from vdi.hypervisor.specs import (
    DiskInfo,
    DiskSpec,
    DomainInfo,
    DomainSpec,
    DomainType,
    KernelBoot,
    PowerState,
    VncEndpoint,
)

__all__ = [
    "DiskInfo",
    "DiskSpec",
    "DomainInfo",
    "DomainSpec",
    "DomainType",
    "Driver",
    "HypervisorError",
    "KernelBoot",
    "PowerState",
    "VncEndpoint",
    "get_driver",
]
