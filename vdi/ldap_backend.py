"""Sign-in with directory credentials (LDAP, Active Directory), through django-auth-ldap.

Configured by ``portal.ldap`` and tried before the local accounts. At each sign-in the
account's names and email follow the directory, and its groups too (nested groups included):
``vdi.services.directory.sync_groups`` with the operator's role map. A directory account has
no local password; a local account (one with a password) is never signed in by the directory.
A directory that does not answer refuses its users with a message saying so
(``directory_unreachable``), and local accounts keep signing in.
"""

from __future__ import annotations

import logging
from typing import Any

import ldap
from django.conf import settings
from django.http import HttpRequest
from django_auth_ldap.backend import LDAPBackend

from vdi.services.directory import sync_groups

log = logging.getLogger(__name__)
SOURCE = "ldap"  # DirectoryMembership.source of the groups this backend gives
UNREACHABLE = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR)
_FLAG = "_vdi_directory_unreachable"
UNREACHABLE_MESSAGE = ("The username and password were not accepted. If you sign in with "
                       "your directory account: the directory is not answering just now, "
                       "try again in a few minutes.")


def mark_unreachable(request: HttpRequest | None) -> None:
    if request is not None:
        setattr(request, _FLAG, True)


def directory_unreachable(request: HttpRequest | None) -> bool:
    """The directory did not answer while ``request`` tried to sign in."""
    return bool(getattr(request, _FLAG, False))


class DirectoryBackend(LDAPBackend):  # type: ignore[misc]
    def get_or_build_user(self, username: str, ldap_user: Any) -> tuple[Any, bool]:
        user, built = super().get_or_build_user(username, ldap_user)
        if not built and user.has_usable_password():
            log.warning("directory sign-in of %s refused: a local account has that name",
                        username)
            raise ldap_user.AuthenticationFailed("a local account has this name")
        return user, built

    def authenticate_ldap_user(self, ldap_user: Any, password: str) -> Any:
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None or not user.is_active:
            return None
        try:
            groups = set(ldap_user.group_names)
        except ldap.LDAPError as exc:
            # Signed in with groups we could not read, the account would keep groups the
            # directory has taken away: refused instead.
            log.warning("directory groups of %s unreadable, sign-in refused: %s",
                        user.get_username(), exc)
            mark_unreachable(getattr(ldap_user, "_request", None))
            return None
        sync_groups(user, groups, SOURCE, getattr(settings, "LDAP_ROLE_MAP", {}))
        return user
