"""A real slapd for the directory sign-in tests (``vdi.testing.slapd``), started once per
session and seeded with two directories: an OpenLDAP one and one shaped like Active
Directory, each with nested groups. Loaded by ``tests/conftest.py`` as a plugin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ldap
import pytest

from portal.env import Env
from portal.ldap import BACKEND, ldap_settings
from vdi.testing.slapd import AD, CORP, SLAPD, Slapd

SERVICE_PASSWORD = "portal-service-secret"

CORP_LDIF = f"""
dn: ou=people,dc=corp,dc=example
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=corp,dc=example
objectClass: organizationalUnit
ou: groups

dn: ou=services,dc=corp,dc=example
objectClass: organizationalUnit
ou: services

dn: cn=portal,ou=services,dc=corp,dc=example
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: portal
userPassword: {SERVICE_PASSWORD}
""" + "".join(f"""
dn: uid={uid},ou=people,dc=corp,dc=example
objectClass: inetOrgPerson
uid: {uid}
cn: {first} {last}
givenName: {first}
sn: {last}
mail: {uid}@corp.example
userPassword: {uid}-directory-secret
""" for uid, first, last in (("alice", "Alice", "Liddell"), ("carol", "Carol", "Danvers"),
                             ("erin", "Erin", "Brockovich"), ("owner", "Not", "Local"),
                             ("mallory", "Mallory", "Outside"),
                             ("frank", "Frank", "Castle"))) + "".join(f"""
dn: cn={name},ou=groups,dc=corp,dc=example
objectClass: groupOfNames
cn: {name}
""" + "".join(f"member: {member}\n" for member in members)
    for name, members in (
        ("engineering", ["uid=alice,ou=people,dc=corp,dc=example"]),
        # staff holds engineering: alice is in staff through it (nested)
        ("staff", ["cn=engineering,ou=groups,dc=corp,dc=example"]),
        ("vdi-admins", ["uid=carol,ou=people,dc=corp,dc=example"]),
        ("contractors", ["uid=erin,ou=people,dc=corp,dc=example",
                         "uid=frank,ou=people,dc=corp,dc=example"]),
        ("vdi-users", ["cn=staff,ou=groups,dc=corp,dc=example",
                       "uid=carol,ou=people,dc=corp,dc=example",
                       "uid=erin,ou=people,dc=corp,dc=example",
                       "uid=owner,ou=people,dc=corp,dc=example"]),
    ))

AD_LDIF = f"""
dn: ou=Staff,dc=ad,dc=example
objectClass: organizationalUnit
ou: Staff

dn: ou=Groups,dc=ad,dc=example
objectClass: organizationalUnit
ou: Groups

dn: cn=svc-portal,ou=Staff,dc=ad,dc=example
objectClass: user
cn: svc-portal
sn: portal
sAMAccountName: svc-portal
userPassword: {SERVICE_PASSWORD}

dn: cn=Bob Builder,ou=Staff,dc=ad,dc=example
objectClass: user
cn: Bob Builder
givenName: Bob
sn: Builder
mail: bob@ad.example
sAMAccountName: bbuilder
userPrincipalName: bbuilder@ad.example
userPassword: bob-directory-secret

dn: cn=Desk,ou=Groups,dc=ad,dc=example
objectClass: group
cn: Desk
member: cn=Bob Builder,ou=Staff,dc=ad,dc=example

dn: cn=All Staff,ou=Groups,dc=ad,dc=example
objectClass: group
cn: All Staff
member: cn=Desk,ou=Groups,dc=ad,dc=example

dn: cn=VDI Admins,ou=Groups,dc=ad,dc=example
objectClass: group
cn: VDI Admins
member: cn=All Staff,ou=Groups,dc=ad,dc=example

dn: cn=Elsewhere,ou=Staff,dc=ad,dc=example
objectClass: group
cn: Elsewhere
member: cn=Bob Builder,ou=Staff,dc=ad,dc=example
"""

# Groups in a circle, as directories allow: All Staff is in VDI Admins and the reverse.
AD_CYCLE = ("cn=All Staff,ou=Groups,dc=ad,dc=example", "cn=VDI Admins,ou=Groups,dc=ad,dc=example")


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    if not Path(SLAPD).exists():
        pytest.fail("slapd is not installed (Debian package slapd: scripts/test installs it)")
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.start()
    try:
        server.add(CORP, CORP_LDIF)
        server.add(AD, AD_LDIF)
        server.modify(AD, AD_CYCLE[0], ldap.MOD_ADD, "member", AD_CYCLE[1])
        yield server
    finally:
        server.stop()


def corp_env(uri: str, **extra: str) -> dict[str, str]:
    """The variables of an operator who points the portal at the OpenLDAP directory."""
    return {"VDI_LDAP_URI": uri, "VDI_LDAP_BIND_DN": "cn=portal,ou=services,dc=corp,dc=example",
            "VDI_LDAP_BIND_PASSWORD": SERVICE_PASSWORD,
            "VDI_LDAP_USER_BASE": "ou=people,dc=corp,dc=example",
            "VDI_LDAP_GROUP_BASE": "ou=groups,dc=corp,dc=example",
            "VDI_LDAP_ROLE_GROUPS": "Administrators=vdi-admins",
            "VDI_LDAP_TIMEOUT": "2", **extra}


def ad_env(uri: str, **extra: str) -> dict[str, str]:
    """The variables of an operator who points the portal at Active Directory."""
    return {"VDI_LDAP_URI": uri, "VDI_LDAP_FLAVOUR": "activedirectory",
            "VDI_LDAP_BIND_DN": "cn=svc-portal,ou=Staff,dc=ad,dc=example",
            "VDI_LDAP_BIND_PASSWORD": SERVICE_PASSWORD,
            "VDI_LDAP_USER_BASE": "ou=Staff,dc=ad,dc=example",
            "VDI_LDAP_GROUP_BASE": "ou=Groups,dc=ad,dc=example",
            "VDI_LDAP_ROLE_GROUPS": "Administrators=VDI Admins",
            "VDI_LDAP_TIMEOUT": "2", **extra}


def use_directory(settings, variables: dict[str, str]) -> None:
    """Apply what ``portal.settings`` makes of ``variables`` to this test's settings."""
    for name, value in ldap_settings(Env(variables)).items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = [BACKEND, *settings.AUTHENTICATION_BACKENDS]


@pytest.fixture
def corp_directory(slapd: Slapd, settings, db: None) -> Slapd:
    use_directory(settings, corp_env(slapd.uri))
    return slapd


@pytest.fixture
def ad_directory(slapd: Slapd, settings, db: None) -> Slapd:
    use_directory(settings, ad_env(slapd.uri))
    return slapd
