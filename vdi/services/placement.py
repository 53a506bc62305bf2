"""Choosing a host for a new desktop: the enabled host with the most free memory."""

from __future__ import annotations

from django.db.models import Sum
from django.db.models.functions import Coalesce

from vdi.models import Host
from vdi.services.errors import NoCapacity


def choose_host(memory_mib: int, vcpus: int) -> Host:
    hosts = Host.objects.filter(enabled=True).annotate(
        used_memory=Coalesce(Sum("desktops__memory_mib"), 0),
        used_vcpus=Coalesce(Sum("desktops__vcpus"), 0),
    )
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
