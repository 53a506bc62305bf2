"""Hypervisor access: a small driver over libvirt-python. Imports nothing from Django.

The driver (and libvirt with it) loads only when ``Driver`` or ``get_driver`` is first used:
the specs, errors and qcow2 helpers are importable without libvirt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vdi.hypervisor.errors import HypervisorError
from vdi.hypervisor.specs import (
    DiskInfo,
    DiskSpec,
    Display,
    DomainInfo,
    DomainSpec,
    DomainType,
    KernelBoot,
    MachineProfile,
    NicSpec,
    PowerState,
    Screenshot,
    Shutdown,
    VncEndpoint,
)

if TYPE_CHECKING:
    from vdi.hypervisor.driver import Driver, get_driver

__all__ = [
    "DiskInfo",
    "DiskSpec",
    "Display",
    "DomainInfo",
    "DomainSpec",
    "DomainType",
    "Driver",
    "HypervisorError",
    "KernelBoot",
    "MachineProfile",
    "NicSpec",
    "PowerState",
    "Screenshot",
    "Shutdown",
    "VncEndpoint",
    "get_driver",
]


def __getattr__(name: str) -> Any:
    if name in ("Driver", "get_driver"):
        from vdi.hypervisor import driver

        return getattr(driver, name)
    raise AttributeError(f"module 'vdi.hypervisor' has no attribute {name!r}")
