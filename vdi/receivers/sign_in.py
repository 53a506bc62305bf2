"""Sign-in events: audited (with the method: password, or the OpenID Connect provider; a
directory that does not answer, noted for the page); an OpenID Connect sign-in brings the
account's groups in line with the directory; automatic pools take their desktops back on
sign-out."""

from __future__ import annotations

import logging
from typing import Any

from allauth.account.authentication import get_authentication_records
from allauth.account.signals import user_logged_in as allauth_logged_in
from allauth.socialaccount.models import SocialLogin
from allauth.usersessions.models import UserSession
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest
from django_auth_ldap.backend import ldap_error

from vdi.console.codes import CloseCode
from vdi.console.notify import close_user_consoles
from vdi.ldap_backend import UNREACHABLE, mark_unreachable
from vdi.models import ConsoleTicket, Desktop
from vdi.oidc import sync_directory_groups
from vdi.services import audit
from vdi.services.desktops import request_action
from vdi.services.errors import ServiceError
from vdi.state import TransitionRefused

log = logging.getLogger(__name__)


@receiver(user_logged_out)
def release_automatic_desktops(sender: Any, request: HttpRequest | None, user: Any,
                               **kwargs: Any) -> None:
    if user is None:
        return
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    desktops = Desktop.objects.filter(owner=user, pool__assignment="automatic")
    for desktop in desktops.select_related("pool", "host"):
        try:
            request_action(user, desktop, "release", address, reason="sign-out")
        except (ServiceError, TransitionRefused) as exc:
            log.info("sign-out release of %s skipped: %s", desktop, exc)


def _address(request: HttpRequest | None) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


def _method(request: HttpRequest | None, user: Any) -> dict[str, str]:
    """How this session signed in, as allauth recorded it (first step: password or
    socialaccount, with its provider)."""
    if request is None or not hasattr(request, "session"):
        return {}
    records = get_authentication_records(request, user)
    if not records:
        return {}
    first = records[0]
    found = {"method": str(first.get("method", ""))}
    if "provider" in first:
        found["provider"] = str(first["provider"])
    return found


@receiver(user_logged_in)
def audit_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit.record(user, "auth.login", user, _address(request), **_method(request, user))


@receiver(allauth_logged_in)
def follow_the_directory(sender: Any, request: HttpRequest, user: Any,
                         sociallogin: SocialLogin | None = None, **kwargs: Any) -> None:
    """At every OpenID Connect sign-in, not only the first."""
    if sociallogin is not None:
        sync_directory_groups(user, sociallogin)


@receiver(user_login_failed)
def audit_login_failure(sender: Any, credentials: dict[str, Any],
                        request: HttpRequest | None = None, **kwargs: Any) -> None:
    audit.record(None, "auth.login_failed", None, _address(request),
                 username=str(credentials.get("username", ""))[:150])


@receiver(ldap_error)
def note_unreachable_directory(sender: Any, context: str, request: HttpRequest | None = None,
                               exception: Exception | None = None, **kwargs: Any) -> None:
    """The directory did not answer a sign-in: the page says so (``vdi.accounts``)."""
    if isinstance(exception, UNREACHABLE):
        mark_unreachable(request)


@receiver(user_logged_out)
def audit_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit.record(user, "auth.logout", user, _address(request))
        # Signing out ends the user's sessions everywhere, and their consoles with them.
        for session in UserSession.objects.filter(user_id=user.pk):
            session.end()
        ConsoleTicket.objects.filter(user=user, used_at__isnull=True).delete()
        close_user_consoles(user.pk, CloseCode.SESSION_ENDED, "signed out")
