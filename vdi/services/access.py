"""Who may do what. Object-level checks used by views, the API and the console."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as Account

from vdi.models import Desktop, Pool

__all__ = ["Account", "User", "can_manage_desktop", "can_use_pool", "is_admin"]

User = Account | AnonymousUser


def is_admin(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active and getattr(user, "is_staff", False))


def can_use_pool(user: User, pool: Pool) -> bool:
    return bool(user.is_authenticated and user.is_active and pool.enabled)


def can_manage_desktop(user: User, desktop: Desktop) -> bool:
    if not (user.is_authenticated and user.is_active):
        return False
    return is_admin(user) or desktop.owner_id == user.pk
