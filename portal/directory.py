"""Settings shared by the directory sign-ins (LDAP, Active Directory, OpenID Connect).

Pure: read by ``portal.settings`` before Django's apps load."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

# The portal's role groups (``vdi.roles.ROLE_GROUPS``; a test keeps the two the same).
ROLES = ("Helpdesk", "Pool operators", "Administrators")


def parse_role_map(variable: str, value: str) -> dict[str, str]:
    """``"Administrators=vdi-admins,Helpdesk=helpdesk"`` -> role -> directory group.

    A directory group gives a role only through this map: a directory group that happens to
    be named like a role gives nothing."""
    roles: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        role, sep, group = (text.strip() for text in entry.partition("="))
        if not sep or not group:
            raise ImproperlyConfigured(
                f"{variable}: expected ROLE=DIRECTORY_GROUP pairs, got {entry!r}")
        if role not in ROLES:
            raise ImproperlyConfigured(
                f"{variable}: {role!r} is not a role (one of: {', '.join(ROLES)})")
        roles[role] = group
    return roles
