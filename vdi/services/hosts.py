"""The local hypervisor host record, created from settings on first start."""

from __future__ import annotations

import os

from django.conf import settings

from vdi.models import Host


def _memory_mib() -> int:
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return int(pages * page_size // (1024 * 1024))


def ensure_local_host() -> Host:
    """The host named ``VDI_HOST_NAME``, created with this machine's capacity if missing.

    Settings that an operator may change in the admin (capacity, enabled) are left alone on an
    existing host; the URI, domain type and storage folder follow the environment.
    """
    host, created = Host.objects.get_or_create(
        name=settings.HOST_NAME,
        defaults={
            "libvirt_uri": settings.LIBVIRT_URI,
            "domain_type": settings.DOMAIN_TYPE,
            "storage_dir": str(settings.DISK_DIR),
            "cpu_capacity": (os.cpu_count() or 1) * 4,
            "memory_capacity_mib": max(_memory_mib() - 1024, 512),
        },
    )
    if not created:
        changed = {
            "libvirt_uri": settings.LIBVIRT_URI,
            "domain_type": settings.DOMAIN_TYPE,
            "storage_dir": str(settings.DISK_DIR),
        }
        if any(getattr(host, k) != v for k, v in changed.items()):
            if host.domain_type != settings.DOMAIN_TYPE:
                host.resolved_domain_type = ""
            for key, value in changed.items():
                setattr(host, key, value)
            host.save()
    return host
