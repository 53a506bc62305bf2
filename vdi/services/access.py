"""Who may do what: roles (``vdi.roles``) checked per action and, where a pool scopes them,
per object. Used by views, the admin, the console and the API; none of it reads ``is_staff``.
"""

from __future__ import annotations

import enum

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as Account
from django.db.models import Q, QuerySet

from vdi.actions import CONSOLE, SHADOW, DesktopAction
from vdi.auth_backends import operated_pool_ids
from vdi.choices import DisplayProtocol
from vdi.models import Desktop, Pool
from vdi.roles import OPERATOR_PERMISSIONS

__all__ = ["Account", "ConsoleMode", "ScreenAccess", "Standing", "User", "can_see_desktop",
           "can_use_pool", "console_mode", "desktops_for", "entitled_pools", "holds",
           "owner_may_keep", "screen_access", "standing", "visible_desktops", "visible_pools"]

User = Account | AnonymousUser


class Standing(enum.Enum):
    """On what footing a user asks for an action on a desktop."""

    NONE = "none"  # may not
    OWNER = "owner"  # self-service on their own desktop: the owner rules apply
    PRIVILEGED = "privileged"  # holds the action's permission (everywhere, or on its pool)


class ConsoleMode(enum.Enum):
    INTERACTIVE = "interactive"
    VIEW_ONLY = "view_only"


class ScreenAccess(enum.Enum):
    """Who may see a desktop's screen: one rule for its console and the dashboard's
    thumbnails alike (``screen_access``)."""

    USE = "use"  # its console, interactive (a thumbnail too)
    WATCH = "watch"  # watch it, view only, unasked (a thumbnail too)
    WATCH_IF_ASKED = "watch_if_asked"  # watch it once its user says yes live: no thumbnail
    NONE = "none"

    @property
    def pictures(self) -> bool:
        """Whether a picture of the screen may be shown (a picture cannot ask its user)."""
        return self in (ScreenAccess.USE, ScreenAccess.WATCH)


def active(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active)


def holds(user: User, permission: str, obj: Desktop | Pool | None = None) -> bool:
    """``user`` holds ``permission`` everywhere, or on ``obj`` (a pool they operate)."""
    if not active(user):
        return False
    return user.has_perm(permission) or (obj is not None and user.has_perm(permission, obj))


def entitled_pools(user: User) -> QuerySet[Pool]:
    """Enabled pools granted to the user or one of their groups (or all, for those who may
    use any pool)."""
    pools = Pool.objects.filter(enabled=True)
    if not active(user):
        return pools.none()
    if holds(user, "vdi.use_any_pool"):
        return pools
    granted = Q(users=user) | Q(groups__in=user.groups.all())
    return pools.filter(pk__in=Pool.objects.filter(granted).values("pk"))


def visible_pools(user: User) -> QuerySet[Pool]:
    """Pools the user may use, operates, or may view everywhere."""
    if not active(user):
        return Pool.objects.none()
    if holds(user, "vdi.view_pool"):
        return Pool.objects.all()
    return Pool.objects.filter(Q(pk__in=entitled_pools(user).values("pk"))
                               | Q(pk__in=operated_pool_ids(user)))


def visible_desktops(user: User) -> QuerySet[Desktop]:
    """Their own desktops, those of the pools they operate, or all for those who may view
    every desktop (helpdesk, administrators)."""
    if not active(user):
        return Desktop.objects.none()
    if holds(user, "vdi.view_desktop"):
        return Desktop.objects.all()
    return Desktop.objects.filter(Q(owner_id=user.pk) | Q(pool_id__in=operated_pool_ids(user)))


def can_use_pool(user: User, pool: Pool) -> bool:
    return entitled_pools(user).filter(pk=pool.pk).exists()


def owner_may_keep(user: User, desktop: Desktop) -> bool:
    """The owner may still use ``desktop``: its pool is granted to them (an install desktop:
    they may still install from media)."""
    if desktop.pool is None:
        return holds(user, "vdi.install_from_media")
    return can_use_pool(user, desktop.pool)


def can_see_desktop(user: User, desktop: Desktop) -> bool:
    """Its owner, or someone who may view it (helpdesk, its pool's operators, admins)."""
    if not active(user):
        return False
    return desktop.owner_id == user.pk or holds(user, "vdi.view_desktop", desktop)


def console_mode(user: User, desktop: Desktop) -> ConsoleMode | None:
    """How ``user`` may open ``desktop``'s console, if at all."""
    if not active(user):
        return None
    if desktop.owner_id == user.pk or holds(user, CONSOLE, desktop):
        return ConsoleMode.INTERACTIVE
    if holds(user, SHADOW, desktop):
        return ConsoleMode.VIEW_ONLY
    return None


def screen_access(user: User, desktop: Desktop) -> ScreenAccess:
    """Whether ``user`` may see ``desktop``'s screen, and how. A SPICE display shows a desktop
    to one viewer at a time: it is never watched, nor pictured for a watcher; a pool that
    asks its user before a watch gives watchers no picture."""
    mode = console_mode(user, desktop)
    if mode is ConsoleMode.INTERACTIVE:
        return ScreenAccess.USE
    if mode is None or desktop.display_protocol == DisplayProtocol.SPICE:
        return ScreenAccess.NONE
    if desktop.pool is not None and desktop.pool.watch_consent:
        return ScreenAccess.WATCH_IF_ASKED
    return ScreenAccess.WATCH


def standing(user: User, action: DesktopAction, desktop: Desktop) -> Standing:
    if not active(user):
        return Standing.NONE
    if holds(user, action.permission, desktop):
        return Standing.PRIVILEGED
    if action.self_service and desktop.owner_id == user.pk:
        return Standing.OWNER
    return Standing.NONE


def desktops_for(user: User, action: DesktopAction) -> QuerySet[Desktop]:
    """The desktops on which ``user``'s ``standing`` for ``action`` is not NONE, as a query:
    all of them with its permission everywhere, else their own (a self-service action) and
    those of the pools they operate (an operator's action)."""
    if not active(user):
        return Desktop.objects.none()
    if holds(user, action.permission):
        return Desktop.objects.all()
    mine = Q(owner_id=user.pk) if action.self_service else Q(pk__in=[])
    operated = (operated_pool_ids(user) if action.permission in OPERATOR_PERMISSIONS
                else frozenset())
    return Desktop.objects.filter(mine | Q(pool_id__in=operated))
