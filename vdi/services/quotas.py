"""Per-user limits (desktops, vCPUs, memory) and the per-pool limit of desktops per user."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Sum
from django.db.models.functions import Coalesce

from vdi.models import Desktop, Pool, UserQuota
from vdi.services.access import Account
from vdi.services.errors import ServiceError


class QuotaExceeded(ServiceError):
    pass


@dataclass(frozen=True)
class Limits:
    desktops: int
    vcpus: int
    memory_mib: int


def limits_for(user: Account) -> Limits:
    quota = UserQuota.objects.filter(user=user).first()
    if quota is None:
        return Limits(settings.DEFAULT_MAX_DESKTOPS, settings.DEFAULT_MAX_VCPUS,
                      settings.DEFAULT_MAX_MEMORY_MIB)
    return Limits(quota.max_desktops, quota.max_vcpus, quota.max_memory_mib)


@dataclass(frozen=True)
class Usage:
    desktops: int
    vcpus: int
    memory_mib: int


def usage(user: Account) -> Usage:
    """What ``user``'s desktops hold now."""
    used = Desktop.objects.filter(owner=user).aggregate(
        n=Count("pk"), vcpus=Coalesce(Sum("vcpus"), 0), memory=Coalesce(Sum("memory_mib"), 0))
    return Usage(used["n"], used["vcpus"], used["memory"])


def check_room(user: Account, pool: Pool) -> None:
    """Raise QuotaExceeded, saying which limit, if one more desktop of ``pool`` is too many."""
    in_pool = Desktop.objects.filter(owner=user, pool=pool).count()
    if in_pool >= pool.max_per_user:
        raise QuotaExceeded(
            f"You already have {in_pool} desktop(s) from {pool.name}; "
            f"the pool allows {pool.max_per_user} per user."
        )
    used = usage(user)
    limits = limits_for(user)
    if used.desktops + 1 > limits.desktops:
        raise QuotaExceeded(f"You already have {used.desktops} desktop(s), your limit is "
                            f"{limits.desktops}. Release or delete one first.")
    if used.vcpus + pool.vcpus > limits.vcpus:
        raise QuotaExceeded(f"This desktop needs {pool.vcpus} vCPU(s); you use "
                            f"{used.vcpus} of your {limits.vcpus}.")
    if used.memory_mib + pool.memory_mib > limits.memory_mib:
        raise QuotaExceeded(f"This desktop needs {pool.memory_mib} MiB of memory; you use "
                            f"{used.memory_mib} of your {limits.memory_mib} MiB.")
