"""Choosing a host for a new desktop: of the enabled hosts that offer its pool's network
(``vdi.networks``), the one with the most free memory."""

from __future__ import annotations

from django.db.models import Sum
from django.db.models.functions import Coalesce

from vdi import networks
from vdi.models import Host, Pool
from vdi.services.errors import NoCapacity, NoHostForNetwork


def choose_host(memory_mib: int, vcpus: int, pool: Pool | None = None) -> Host:
    """Raises NoHostForNetwork when no enabled host offers ``pool``'s network, NoCapacity
    when those that do have no room."""
    hosts = list(Host.objects.filter(enabled=True).annotate(
        used_memory=Coalesce(Sum("desktops__memory_mib"), 0),
        used_vcpus=Coalesce(Sum("desktops__vcpus"), 0),
    ))
    if pool is not None:
        hosts = [host for host in hosts if networks.fits(pool, host)]
        if not hosts:
            raise NoHostForNetwork(networks.unfit(pool.name, pool))
    candidates = [
        host for host in hosts
        if host.memory_capacity_mib - host.used_memory >= memory_mib
    ]
    if not candidates:
        raise NoCapacity("No host has room for another desktop right now; try again later.")
    return max(
        candidates,
        key=lambda h: (h.memory_capacity_mib - h.used_memory,
                       h.cpu_capacity - h.used_vcpus),
    )
