"""Groups as Active Directory publishes them: ``memberOf`` on a user lists the groups it is
a direct member of, and ``memberOf`` on a group the groups that group is in. Followed to the
top, that is the user's nested groups (OpenLDAP's memberof overlay keeps the same attribute).

Pure: no Django apps needed; an instance sits in the settings as ``AUTH_LDAP_GROUP_TYPE``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import ldap
import ldap.dn
from django_auth_ldap.config import LDAPGroupType, LDAPSearch

MAX_GROUPS = 1000  # a guard against a directory that lists groups without end


def member_of(attrs: Mapping[str, Any] | None) -> list[str]:
    """The ``memberOf`` values of an entry's attributes, whatever their case."""
    for name, values in (attrs or {}).items():
        if name.lower() == "memberof":
            return [str(value) for value in values]
    return []


def normal_dn(dn: str) -> str:
    return str(ldap.dn.dn2str(ldap.dn.str2dn(dn))).lower()


def is_under(dn: str, base: str) -> bool:
    return dn == base or dn.endswith("," + base)


class MemberOfGroupType(LDAPGroupType):  # type: ignore[misc]
    """Reads ``memberOf`` of the user, then of each group found, one level at a time. Only
    groups under the group search's base that match its filter count (and are followed)."""

    def user_groups(self, ldap_user: Any, group_search: LDAPSearch) -> list[tuple[str, Any]]:
        base = normal_dn(group_search.base_dn)
        found: dict[str, tuple[str, Any]] = {}
        todo = self._candidates(member_of(ldap_user.attrs), base, found)
        while todo and len(found) < MAX_GROUPS:
            level: list[str] = []
            for dn in todo:
                info = self._read_group(dn, group_search, ldap_user.connection)
                if info is not None:
                    found[dn] = info
                    level += member_of(info[1])
            todo = self._candidates(level, base, found)
        return list(found.values())

    @staticmethod
    def _candidates(dns: Iterable[str], base: str, found: Mapping[str, Any]) -> list[str]:
        normal = {normal_dn(dn) for dn in dns}
        return sorted(dn for dn in normal if is_under(dn, base) and dn not in found)

    def _read_group(self, dn: str, group_search: LDAPSearch,
                    connection: Any) -> tuple[str, Any] | None:
        search = LDAPSearch(dn, ldap.SCOPE_BASE, group_search.filterstr,
                            attrlist=[self.name_attr, "memberOf"])
        try:
            results = search.execute(connection)
        except ldap.NO_SUCH_OBJECT:
            return None  # a stale memberOf value
        return results[0] if results else None
