"""Roles, built on Django groups and permissions.

- *user*: anyone signed in: their own desktops, from the pools granted to them.
- *helpdesk* (group "Helpdesk"): sees desktops, console sessions, hosts and the reconciler's
  findings; may watch a user's console view-only (the proxy drops their input; the user is
  told); no power actions.
- *pool operator* (group "Pool operators" plus being made operator of a pool, a relation
  separate from being entitled to use it): manages those pools and their desktops. The group
  holds only the marker permission ``vdi.operate_pools``; ``PoolOperatorBackend`` grants
  ``OPERATOR_PERMISSIONS`` on the pools (and their desktops) the person operates.
- *administrator* (group "Administrators", or a superuser): everything.

``sync_roles`` keeps the groups and their permissions as defined here (after each migrate).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission

from vdi import actions

HELPDESK = "Helpdesk"
POOL_OPERATORS = "Pool operators"
ADMINISTRATORS = "Administrators"
ROLE_GROUPS = (HELPDESK, POOL_OPERATORS, ADMINISTRATORS)

HELPDESK_PERMISSIONS = frozenset({
    "vdi.view_desktop", "vdi.view_consolesession", "vdi.view_pool", "vdi.view_operation",
    # the dashboard, read-only: hosts' load and heartbeats, the reconciler's findings
    "vdi.view_host", "vdi.view_reconcilerun", "vdi.view_stray",
    actions.SHADOW,
})
OPERATOR_PERMISSIONS = frozenset({
    *(a.permission for a in actions.REQUESTABLE), actions.SNAPSHOT.permission,
    actions.BACKUP.permission,
    actions.CONSOLE, actions.SHADOW,
    actions.HANDOVER, "vdi.view_desktop", "vdi.view_pool", "vdi.change_pool",
    "vdi.view_consolesession", "vdi.view_operation",
})
ADMINISTRATOR_APPS = ("vdi", "auth", "mfa", "usersessions", "account", "socialaccount")


def _permissions(names: frozenset[str]) -> list[Permission]:
    found = []
    for name in sorted(names):
        app_label, codename = name.split(".")
        found.append(Permission.objects.get(content_type__app_label=app_label,
                                            codename=codename))
    return found


def sync_roles(**kwargs: Any) -> None:
    """Create the role groups and give each exactly its permissions."""
    roles = {
        HELPDESK: _permissions(HELPDESK_PERMISSIONS),
        POOL_OPERATORS: _permissions(frozenset({"vdi.operate_pools"})),
        ADMINISTRATORS: list(Permission.objects.filter(
            content_type__app_label__in=ADMINISTRATOR_APPS)),
    }
    for name, permissions in roles.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions)


def is_privileged(user: Any) -> bool:
    """Holds a role beyond *user*: a superuser, staff, or a member of a role group."""
    if user.is_superuser or user.is_staff:
        return True
    return bool(user.groups.filter(name__in=ROLE_GROUPS).exists())
