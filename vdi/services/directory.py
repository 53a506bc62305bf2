"""Accounts whose groups come from a directory (LDAP, Active Directory, OpenID Connect).

At each directory sign-in the account's groups follow what the directory says:

- a directory group becomes a portal group of the same name, so that pools can be granted
  to it like to any group;
- a role (Helpdesk, Pool operators, Administrators) comes only through the operator's role
  map (``portal.directory.parse_role_map``), never from a directory group's name;
- a membership the directory gave and no longer asserts is taken away; one an administrator
  gave by hand is left alone.

Group changes reach open consoles through the account receivers, like any other change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from django.contrib.auth.models import Group
from django.db import transaction

from vdi.models import DirectoryMembership
from vdi.roles import ROLE_GROUPS
from vdi.services import audit
from vdi.services.access import Account

log = logging.getLogger(__name__)
GROUP_NAME_MAX = Group._meta.get_field("name").max_length or 150


def wanted_groups(directory_groups: Iterable[str],
                  role_map: Mapping[str, str]) -> dict[str, str]:
    """Portal group name -> the directory group that gives it."""
    names = {name.strip() for name in directory_groups if name and name.strip()}
    wanted = {}
    for name in sorted(names):
        if name in ROLE_GROUPS:
            continue
        if len(name) > GROUP_NAME_MAX:
            log.warning("directory group name longer than %d characters skipped: %.60s...",
                        GROUP_NAME_MAX, name)
            continue
        wanted[name] = name
    for role, directory_group in role_map.items():
        if directory_group in names:
            wanted[role] = directory_group
    return wanted


@transaction.atomic
def sync_groups(user: Account, directory_groups: Iterable[str], source: str,
                role_map: Mapping[str, str]) -> None:
    """Make the account's directory-given groups what the directory says now."""
    wanted = wanted_groups(directory_groups, role_map)
    given = {m.group.name: m for m in DirectoryMembership.objects.filter(
        user=user, source=source).select_related("group")}
    for name in sorted(set(given) - set(wanted)):
        membership = given[name]
        user.groups.remove(membership.group)
        membership.delete()
        audit.record(user, "directory.group_removed", membership.group, source=source,
                     directory_group=membership.directory_group)
    held = set(user.groups.values_list("name", flat=True))
    for name in sorted(set(wanted) - set(given)):
        group, _ = Group.objects.get_or_create(name=name)
        if name in held:
            continue  # given by hand: the administrator's to take away
        user.groups.add(group)
        DirectoryMembership.objects.create(user=user, group=group, source=source,
                                           directory_group=wanted[name])
        audit.record(user, "directory.group_added", group, source=source,
                     directory_group=wanted[name])
