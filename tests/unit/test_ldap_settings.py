"""The directory sign-in's settings (portal/ldap.py): off without VDI_LDAP_URI, the two
flavours' defaults, and a wrong value named by its variable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import ldap
import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.env import Env
from portal.ldap import BACKEND, ldap_backends, ldap_settings
from portal.ldap_groups import MemberOfGroupType
from tests.unit.test_settings import start_django

ROOT = Path(__file__).resolve().parents[2]
BASE = {"VDI_LDAP_URI": "ldap://ldap.corp.example",
        "VDI_LDAP_USER_BASE": "ou=people,dc=corp,dc=example"}


def built(**variables: str) -> dict[str, Any]:
    return ldap_settings(Env({**BASE, **variables}))


def test_without_a_uri_the_directory_is_off():
    assert ldap_settings(Env({"VDI_LDAP_USER_BASE": "not even a dn"})) == {}
    assert ldap_backends({}) == []


def test_openldap_defaults():
    config = built()
    assert config["AUTH_LDAP_USER_SEARCH"].filterstr == "(uid=%(user)s)"
    assert config["AUTH_LDAP_USER_SEARCH"].base_dn == "ou=people,dc=corp,dc=example"
    assert type(config["AUTH_LDAP_GROUP_TYPE"]).__name__ == "NestedGroupOfNamesType"
    assert config["AUTH_LDAP_GROUP_SEARCH"].base_dn == "dc=corp,dc=example"  # the domain
    assert config["AUTH_LDAP_GROUP_SEARCH"].filterstr == "(objectClass=groupOfNames)"
    assert config["AUTH_LDAP_USER_ATTR_MAP"] == {"first_name": "givenName", "last_name": "sn",
                                                 "email": "mail"}
    assert config["AUTH_LDAP_BIND_DN"] == "" and config["AUTH_LDAP_REQUIRE_GROUP"] is None
    assert config["AUTH_LDAP_CACHE_TIMEOUT"] == 0 and config["LDAP_ROLE_MAP"] == {}
    assert config["AUTH_LDAP_CONNECTION_OPTIONS"] == {
        ldap.OPT_NETWORK_TIMEOUT: 5, ldap.OPT_TIMEOUT: 5, ldap.OPT_REFERRALS: 0}


def test_active_directory_defaults():
    config = built(VDI_LDAP_FLAVOUR="activedirectory",
                   VDI_LDAP_USER_BASE="OU=Staff,DC=ad,DC=example",
                   VDI_LDAP_ROLE_GROUPS="Administrators=VDI Admins, Helpdesk=Desk")
    assert config["AUTH_LDAP_USER_SEARCH"].filterstr == "(sAMAccountName=%(user)s)"
    assert "memberOf" in config["AUTH_LDAP_USER_SEARCH"].attrlist
    assert isinstance(config["AUTH_LDAP_GROUP_TYPE"], MemberOfGroupType)
    assert config["AUTH_LDAP_GROUP_SEARCH"].filterstr == "(objectClass=group)"
    assert config["AUTH_LDAP_GROUP_SEARCH"].base_dn == "DC=ad,DC=example"
    assert config["AUTH_LDAP_CONNECTION_OPTIONS"][ldap.OPT_REFERRALS] == 0
    assert config["LDAP_ROLE_MAP"] == {"Administrators": "VDI Admins", "Helpdesk": "Desk"}


def test_every_default_can_be_overridden(tmp_path):
    secret = tmp_path / "bind-password"
    secret.write_text("from-a-file\n")
    config = built(VDI_LDAP_BIND_DN="cn=portal,dc=corp,dc=example",
                   VDI_LDAP_BIND_PASSWORD_FILE=str(secret), VDI_LDAP_START_TLS="true",
                   VDI_LDAP_USER_FILTER="(&(objectClass=person)(mail=%(user)s))",
                   VDI_LDAP_GROUP_TYPE="activedirectory", VDI_LDAP_GROUP_BASE="ou=g,dc=x",
                   VDI_LDAP_GROUP_FILTER="(objectClass=group)", VDI_LDAP_TIMEOUT="9",
                   VDI_LDAP_REQUIRE_GROUP="cn=vdi, ou=g, dc=x", VDI_LDAP_EMAIL_ATTR="upn")
    assert config["AUTH_LDAP_BIND_PASSWORD"] == "from-a-file"
    assert config["AUTH_LDAP_START_TLS"] is True
    assert config["AUTH_LDAP_USER_SEARCH"].filterstr == "(&(objectClass=person)(mail=%(user)s))"
    assert config["AUTH_LDAP_GROUP_SEARCH"].base_dn == "ou=g,dc=x"
    assert config["AUTH_LDAP_REQUIRE_GROUP"] == "cn=vdi,ou=g,dc=x"  # as servers write DNs
    assert config["AUTH_LDAP_USER_ATTR_MAP"]["email"] == "upn"
    assert config["AUTH_LDAP_CONNECTION_OPTIONS"][ldap.OPT_TIMEOUT] == 9


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"VDI_LDAP_URI": "ldap.corp.example"}, "VDI_LDAP_URI: expected ldap://"),
        ({"VDI_LDAP_URI": "http://ldap.corp.example"}, "VDI_LDAP_URI: expected ldap://"),
        ({"VDI_LDAP_USER_BASE": ""}, "VDI_LDAP_USER_BASE: must be set"),
        ({"VDI_LDAP_USER_BASE": "people"}, "VDI_LDAP_USER_BASE: not a distinguished name"),
        ({"VDI_LDAP_FLAVOUR": "novell"}, "VDI_LDAP_FLAVOUR: expected one of openldap, "),
        ({"VDI_LDAP_GROUP_TYPE": "posix"}, "VDI_LDAP_GROUP_TYPE: expected one of"),
        ({"VDI_LDAP_USER_FILTER": "uid=%(user)s"}, "VDI_LDAP_USER_FILTER: an LDAP filter is in"),
        ({"VDI_LDAP_USER_FILTER": "(uid=%s)"}, "VDI_LDAP_USER_FILTER: must name the user"),
        ({"VDI_LDAP_USER_FILTER": "(uid=%(login)s)"}, "VDI_LDAP_USER_FILTER: must name the"),
        ({"VDI_LDAP_USER_FILTER": "(uid=alice)"}, "VDI_LDAP_USER_FILTER: must name the user"),
        ({"VDI_LDAP_GROUP_FILTER": "objectClass=group"}, "VDI_LDAP_GROUP_FILTER: an LDAP"),
        ({"VDI_LDAP_BIND_DN": "cn=portal,dc=corp"}, "VDI_LDAP_BIND_PASSWORD: must be set"),
        ({"VDI_LDAP_BIND_PASSWORD": "x", "VDI_LDAP_BIND_PASSWORD_FILE": "/x"},
         "VDI_LDAP_BIND_PASSWORD_FILE: set it or VDI_LDAP_BIND_PASSWORD, not both"),
        ({"VDI_LDAP_BIND_PASSWORD_FILE": "/nonexistent/pw"},
         "VDI_LDAP_BIND_PASSWORD_FILE: cannot read '/nonexistent/pw'"),
        ({"VDI_LDAP_URI": "ldaps://ldap.corp.example", "VDI_LDAP_START_TLS": "yes"},
         "VDI_LDAP_START_TLS: not with an ldaps://"),
        ({"VDI_LDAP_START_TLS": "perhaps"}, "VDI_LDAP_START_TLS: expected true or false"),
        ({"VDI_LDAP_TIMEOUT": "0"}, "VDI_LDAP_TIMEOUT: must be at least 1"),
        ({"VDI_LDAP_CA_FILE": "/nonexistent/ca.pem"}, "VDI_LDAP_CA_FILE: no such file"),
        ({"VDI_LDAP_REQUIRE_GROUP": "vdi users"}, "VDI_LDAP_REQUIRE_GROUP: not a distinguished"),
        ({"VDI_LDAP_ROLE_GROUPS": "Admins=vdi-admins"}, "VDI_LDAP_ROLE_GROUPS: 'Admins' is not"),
    ],
)
def test_a_wrong_value_is_named(variables, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        built(**variables)
    assert message in str(refused.value)


def test_the_portal_asks_the_directory_first_then_the_local_accounts():
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings",
               "VDI_SECRET_KEY": "k" * 40, **BASE}
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(*s.AUTHENTICATION_BACKENDS[:2], s.AUTH_LDAP_SERVER_URI)")
    shown = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                           text=True, check=False)
    assert shown.stdout.split() == [BACKEND, "django.contrib.auth.backends.ModelBackend",
                                    "ldap://ldap.corp.example"], shown.stderr


def test_a_wrong_value_stops_the_portal():
    result = start_django(**{**BASE, "VDI_LDAP_TIMEOUT": "soon"})
    assert result.returncode != 0
    assert "VDI_LDAP_TIMEOUT: expected an integer, got 'soon'" in result.stderr


@pytest.mark.parametrize("document", ["README.md", "docker/.env.example"])
def test_every_variable_is_documented(document):
    source = (ROOT / "portal" / "ldap.py").read_text()
    read = set(re.findall(r'"(VDI_LDAP_[A-Z_]+)"', source))
    read |= {f"{name}_FILE" for name in re.findall(r'secret\("(VDI_LDAP_[A-Z_]+)"\)', source)}
    documented = set(re.findall(r"VDI_LDAP_[A-Z_]+", (ROOT / document).read_text()))
    assert len(read) > 15 and read <= documented, read - documented
