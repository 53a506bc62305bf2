"""Directory sign-in (LDAP, Active Directory): django-auth-ldap's settings from ``VDI_LDAP_*``.

Pure: read by ``portal.settings`` before Django's apps load. Without ``VDI_LDAP_URI`` the
directory is off and ``ldap_settings`` returns nothing. ``VDI_LDAP_FLAVOUR`` picks the
defaults of an OpenLDAP directory or of Active Directory; every other variable overrides one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ldap
import ldap.dn
from django.core.exceptions import ImproperlyConfigured
from django_auth_ldap.config import LDAPGroupType, LDAPSearch, NestedGroupOfNamesType

from portal.directory import parse_role_map
from portal.env import Env
from portal.ldap_groups import MemberOfGroupType

BACKEND = "vdi.ldap_backend.DirectoryBackend"
FLAVOURS = {
    "openldap": {"user_filter": "(uid=%(user)s)", "group_type": "groupOfNames"},
    "activedirectory": {"user_filter": "(sAMAccountName=%(user)s)",
                        "group_type": "activedirectory"},
}
GROUP_TYPES = {  # name -> (group type, the filter that finds the groups)
    "groupOfNames": (NestedGroupOfNamesType, "(objectClass=groupOfNames)"),
    "activedirectory": (MemberOfGroupType, "(objectClass=group)"),
}


def ldap_settings(env: Env) -> dict[str, Any]:
    """The ``AUTH_LDAP_*`` settings (and ``LDAP_ROLE_MAP``), or ``{}`` when LDAP is off."""
    uri = _uri(env)
    if not uri:
        return {}
    flavour = FLAVOURS[env.choice("VDI_LDAP_FLAVOUR", "openldap", tuple(FLAVOURS))]
    group_type_name = env.choice("VDI_LDAP_GROUP_TYPE", flavour["group_type"],
                                 tuple(GROUP_TYPES))
    group_type, group_filter = GROUP_TYPES[group_type_name]
    user_base = _dn(env, "VDI_LDAP_USER_BASE", required=True)
    start_tls = env.flag("VDI_LDAP_START_TLS", False)
    if start_tls and uri.startswith("ldaps://"):
        raise ImproperlyConfigured("VDI_LDAP_START_TLS: not with an ldaps:// VDI_LDAP_URI "
                                   "(that is TLS already)")
    bind_dn = _dn(env, "VDI_LDAP_BIND_DN")
    return {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_START_TLS": start_tls,
        "AUTH_LDAP_CONNECTION_OPTIONS": _connection_options(env),
        "AUTH_LDAP_BIND_DN": bind_dn,
        "AUTH_LDAP_BIND_PASSWORD": _bind_password(env, bind_dn),
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(
            user_base, ldap.SCOPE_SUBTREE, _user_filter(env, flavour["user_filter"]),
            # memberOf is operational in OpenLDAP: asked for by name.
            attrlist=["*", "memberOf"] if group_type is MemberOfGroupType else None),
        "AUTH_LDAP_USER_ATTR_MAP": {
            "first_name": env.text("VDI_LDAP_FIRST_NAME_ATTR", "givenName"),
            "last_name": env.text("VDI_LDAP_LAST_NAME_ATTR", "sn"),
            "email": env.text("VDI_LDAP_EMAIL_ATTR", "mail"),
        },
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(
            _dn(env, "VDI_LDAP_GROUP_BASE") or _domain_of(user_base), ldap.SCOPE_SUBTREE,
            _filter(env, "VDI_LDAP_GROUP_FILTER", group_filter)),
        "AUTH_LDAP_GROUP_TYPE": _group_type(group_type),
        "AUTH_LDAP_REQUIRE_GROUP": _dn(env, "VDI_LDAP_REQUIRE_GROUP") or None,
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,  # names and email follow the directory
        "AUTH_LDAP_CACHE_TIMEOUT": 0,  # groups are read afresh at each sign-in
        "AUTH_LDAP_FIND_GROUP_PERMS": False,  # permissions come from the portal's groups
        "LDAP_ROLE_MAP": parse_role_map("VDI_LDAP_ROLE_GROUPS",
                                        env.text("VDI_LDAP_ROLE_GROUPS", "")),
    }


def ldap_backends(ldap_config: dict[str, Any]) -> list[str]:
    """The directory's backend, to be tried before the local accounts' ModelBackend."""
    return [BACKEND] if ldap_config else []


def _uri(env: Env) -> str:
    uri = env.text("VDI_LDAP_URI", "")
    for server in uri.split():
        scheme, sep, rest = server.partition("://")
        if not sep or scheme not in ("ldap", "ldaps") or not rest.strip("/"):
            raise ImproperlyConfigured(
                f"VDI_LDAP_URI: expected ldap://host[:port] or ldaps://host[:port] "
                f"(several separated by spaces), got {server!r}")
    return uri


def _dn(env: Env, name: str, required: bool = False) -> str:
    value = env.text(name, "")
    if not value and required:
        raise ImproperlyConfigured(f"{name}: must be set (VDI_LDAP_URI is)")
    if value and not ldap.dn.is_dn(value):
        raise ImproperlyConfigured(f"{name}: not a distinguished name: {value!r}")
    return str(ldap.dn.dn2str(ldap.dn.str2dn(value))) if value else ""  # as servers write it


def _domain_of(dn: str) -> str:
    """``ou=people,dc=corp,dc=example`` -> ``dc=corp,dc=example`` (or ``dn`` without dc=)."""
    parts = ldap.dn.str2dn(dn)
    domain = [rdn for rdn in parts if all(attr.lower() == "dc" for attr, _v, _f in rdn)]
    return ldap.dn.dn2str(domain) if domain else dn


def _filter(env: Env, name: str, default: str) -> str:
    value = env.text(name, default)
    if not (value.startswith("(") and value.endswith(")")):
        raise ImproperlyConfigured(f"{name}: an LDAP filter is in parentheses, got {value!r}")
    return value


def _user_filter(env: Env, default: str) -> str:
    value = _filter(env, "VDI_LDAP_USER_FILTER", default)
    try:
        value % {"user": "someone"}  # it must format with the user name alone
    except (KeyError, ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"VDI_LDAP_USER_FILTER: must name the user as %(user)s, got {value!r} "
            f"({type(exc).__name__}: {exc})") from None
    if "%(user)s" not in value:
        raise ImproperlyConfigured(
            f"VDI_LDAP_USER_FILTER: must name the user as %(user)s, got {value!r}")
    return value


def _bind_password(env: Env, bind_dn: str) -> str:
    password = env.secret("VDI_LDAP_BIND_PASSWORD")
    if bind_dn and not password:
        raise ImproperlyConfigured(
            "VDI_LDAP_BIND_PASSWORD: must be set (or VDI_LDAP_BIND_PASSWORD_FILE), "
            "VDI_LDAP_BIND_DN is")
    return password


def _connection_options(env: Env) -> dict[int, Any]:
    # A directory that does not answer must not hang the sign-in page: seconds to connect,
    # and to wait for each answer.
    timeout = env.number("VDI_LDAP_TIMEOUT", 5, minimum=1, maximum=120)
    options: dict[int, Any] = {
        ldap.OPT_NETWORK_TIMEOUT: timeout,
        ldap.OPT_TIMEOUT: timeout,
        ldap.OPT_REFERRALS: 0,  # Active Directory's referrals would be chased anonymously
    }
    ca_file = env.text("VDI_LDAP_CA_FILE", "")
    if ca_file:
        if not Path(ca_file).is_file():
            raise ImproperlyConfigured(f"VDI_LDAP_CA_FILE: no such file: {ca_file!r}")
        options[ldap.OPT_X_TLS_CACERTFILE] = ca_file
        options[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
        options[ldap.OPT_X_TLS_NEWCTX] = 0  # last: applies the two above
    return options


def _group_type(kind: type[LDAPGroupType]) -> LDAPGroupType:
    return kind(name_attr="cn")
