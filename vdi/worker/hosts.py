"""Per-host facts the worker needs: its driver and its resolved domain type."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings

from vdi.hypervisor import DomainType, Driver, get_driver
from vdi.hypervisor.probe import kvm_boots
from vdi.images.tiny import PROBE_MARKER
from vdi.models import Host, ImageVersion

log = logging.getLogger(__name__)


def driver_for(host: Host) -> Driver:
    return get_driver(host.libvirt_uri)


def domain_type_for(host: Host) -> DomainType:
    """The host's domain type; ``auto`` is probed once and the outcome stored on the host."""
    if host.effective_domain_type:
        return DomainType(host.effective_domain_type)
    resolved = _probe(host)
    Host.objects.filter(pk=host.pk).update(resolved_domain_type=resolved.value)
    host.resolved_domain_type = resolved.value
    return resolved


def _probe(host: Host) -> DomainType:
    version = ImageVersion.objects.exclude(kernel_path="").exclude(initrd_path="").first()
    if version is None:
        log.warning("Host %s: domain type 'auto' but no image with a kernel to probe KVM with; "
                    "using 'qemu' (software emulation, slow)", host.name)
        return DomainType.QEMU
    works = kvm_boots(driver_for(host), Path(version.kernel_path), Path(version.initrd_path),
                      settings.LOG_DIR, PROBE_MARKER, settings.PROBE_TIMEOUT)
    if works:
        log.info("Host %s: KVM works; guests use domain type 'kvm'", host.name)
        return DomainType.KVM
    log.warning("!!! Host %s: KVM does NOT work here (the probe guest did not boot within %s s); "
                "falling back to domain type 'qemu' (software emulation, much slower) !!!",
                host.name, settings.PROBE_TIMEOUT)
    return DomainType.QEMU

