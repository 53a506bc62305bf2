"""Who may do what. Object-level checks used by views, the API and the console."""

from __future__ import annotations

import enum

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as Account
from django.db.models import Q, QuerySet

from vdi.actions import DesktopAction
from vdi.models import Desktop, Pool

__all__ = ["Account", "Standing", "User", "can_manage_desktop", "can_use_pool",
           "entitled_pools", "is_admin", "standing"]

User = Account | AnonymousUser


class Standing(enum.Enum):
    """On what footing a user asks for an action on a desktop."""

    NONE = "none"  # may not
    OWNER = "owner"  # self-service on their own desktop: the owner rules apply
    PRIVILEGED = "privileged"  # holds the action's permission


def _active(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active)


def is_admin(user: User) -> bool:
    return _active(user) and bool(getattr(user, "is_staff", False))


def entitled_pools(user: User) -> QuerySet[Pool]:
    """Enabled pools granted to the user or one of their groups (admins: every enabled pool)."""
    pools = Pool.objects.filter(enabled=True)
    if not _active(user):
        return pools.none()
    if is_admin(user):
        return pools
    granted = Q(users=user) | Q(groups__in=user.groups.all())
    return pools.filter(pk__in=Pool.objects.filter(granted).values("pk"))


def can_use_pool(user: User, pool: Pool) -> bool:
    return entitled_pools(user).filter(pk=pool.pk).exists()


def can_manage_desktop(user: User, desktop: Desktop) -> bool:
    if not _active(user):
        return False
    return is_admin(user) or desktop.owner_id == user.pk


def standing(user: User, action: DesktopAction, desktop: Desktop) -> Standing:
    if not _active(user):
        return Standing.NONE
    if user.has_perm(action.permission):
        return Standing.PRIVILEGED
    if action.self_service and desktop.owner_id == user.pk:
        return Standing.OWNER
    return Standing.NONE
