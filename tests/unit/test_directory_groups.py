"""Groups from a directory: mirrored by name, roles only through the role map, and only the
memberships the directory gave are taken away again."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured

from portal.directory import ROLES, parse_role_map
from vdi.models import AuditEvent, DirectoryMembership
from vdi.roles import ADMINISTRATORS, HELPDESK, ROLE_GROUPS
from vdi.services.directory import sync_groups

ROLE_MAP = {ADMINISTRATORS: "vdi-admins"}


def group_names(user) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def test_directory_groups_become_portal_groups(owner):
    sync_groups(owner, ["engineering", "finance"], "ldap", ROLE_MAP)
    assert group_names(owner) == {"engineering", "finance"}
    assert AuditEvent.objects.filter(action="directory.group_added", actor=owner).count() == 2


def test_a_group_the_directory_no_longer_asserts_is_taken_away(owner):
    sync_groups(owner, ["engineering", "finance"], "ldap", ROLE_MAP)
    sync_groups(owner, ["engineering"], "ldap", ROLE_MAP)
    assert group_names(owner) == {"engineering"}
    assert not DirectoryMembership.objects.filter(user=owner, group__name="finance").exists()
    assert AuditEvent.objects.filter(action="directory.group_removed").count() == 1


def test_groups_given_by_hand_stay(owner):
    owner.groups.add(Group.objects.create(name="engineering"))
    sync_groups(owner, ["engineering"], "ldap", ROLE_MAP)
    sync_groups(owner, [], "ldap", ROLE_MAP)
    assert group_names(owner) == {"engineering"}


def test_a_role_comes_only_through_the_role_map(owner):
    sync_groups(owner, [ADMINISTRATORS, HELPDESK], "ldap", ROLE_MAP)
    assert group_names(owner) == set()
    sync_groups(owner, ["vdi-admins"], "ldap", ROLE_MAP)
    assert group_names(owner) == {"vdi-admins", ADMINISTRATORS}
    sync_groups(owner, [], "ldap", ROLE_MAP)
    assert group_names(owner) == set()


def test_sources_keep_their_own_memberships(owner):
    sync_groups(owner, ["engineering"], "ldap", ROLE_MAP)
    sync_groups(owner, ["engineering"], "oidc:corp", ROLE_MAP)
    sync_groups(owner, [], "ldap", ROLE_MAP)
    assert group_names(owner) == set()  # the OIDC row found it already held: nothing of its own
    sync_groups(owner, ["engineering"], "oidc:corp", ROLE_MAP)
    assert group_names(owner) == {"engineering"}


def test_role_map_parsing():
    assert parse_role_map("V", "Administrators=vdi-admins, Helpdesk = help desk") == {
        ADMINISTRATORS: "vdi-admins", HELPDESK: "help desk"}
    assert parse_role_map("V", "") == {}
    with pytest.raises(ImproperlyConfigured, match="V: 'Admins' is not a role"):
        parse_role_map("V", "Admins=x")
    with pytest.raises(ImproperlyConfigured, match="V: expected ROLE=DIRECTORY_GROUP"):
        parse_role_map("V", "Administrators")


def test_the_settings_know_the_same_roles():
    assert tuple(ROLES) == tuple(ROLE_GROUPS)
