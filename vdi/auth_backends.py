"""Per-object permissions of pool operators: on the pools they are made operators of (by
name or through a group), and on those pools' desktops, they hold ``OPERATOR_PERMISSIONS``
(``vdi.roles``). Everything else comes from Django's ModelBackend."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import BaseBackend
from django.db.models import Q

from vdi.models import Desktop, Pool
from vdi.roles import OPERATOR_PERMISSIONS

CACHE = "_vdi_operated_pools"


def operated_pool_ids(user: Any) -> frozenset[int]:
    """The pools ``user`` operates (empty without the operator role); cached on the user."""
    cached = getattr(user, CACHE, None)
    if cached is None:
        if user.is_active and user.has_perm("vdi.operate_pools"):
            mine = Q(operators=user) | Q(operator_groups__in=user.groups.all())
            cached = frozenset(Pool.objects.filter(mine).values_list("pk", flat=True))
        else:
            cached = frozenset()
        setattr(user, CACHE, cached)
    return cached


class PoolOperatorBackend(BaseBackend):
    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        if obj is None or perm not in OPERATOR_PERMISSIONS or not user_obj.is_active:
            return False
        pool_id: int | None = None
        if isinstance(obj, Pool):
            pool_id = obj.pk
        elif isinstance(obj, Desktop):
            pool_id = obj.pool_id  # None for an install desktop: no pool operator's
        if pool_id is None:
            return False
        return pool_id in operated_pool_ids(user_obj)
