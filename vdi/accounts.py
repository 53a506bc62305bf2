"""How django-allauth behaves here: accounts are made by administrators, not by sign-up; a
sign-in refused by the rate limit is audited; a directory that does not answer is named in
the refusal. Accounts without a local password (directory accounts) get none by self-service:
no reset mail, no "set password" form."""

from __future__ import annotations

import logging
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.forms import SetPasswordForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from vdi.ldap_backend import UNREACHABLE_MESSAGE, directory_unreachable
from vdi.services import audit

log = logging.getLogger(__name__)
DIRECTORY_ACCOUNT = ("This account signs in through your organisation's directory: its "
                     "password is changed there, not here.")


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            audit.record(None, "auth.login_throttled", None,
                         request.META.get("REMOTE_ADDR") or None,
                         username=str(credentials.get("username", ""))[:150])
            raise

    def authentication_failed(self, request: HttpRequest, **credentials: Any) -> None:
        super().authentication_failed(request, **credentials)
        if directory_unreachable(request):
            raise ValidationError(UNREACHABLE_MESSAGE)

    def send_password_reset_mail(self, user: Any, email: str, context: dict[str, Any]) -> None:
        if not user.has_usable_password():
            log.info("no password reset mail for %s: a directory account", user.get_username())
            return
        super().send_password_reset_mail(user, email, context)


class NoDirectoryPasswordForm(SetPasswordForm):  # type: ignore[misc]
    """allauth's "set password" form, refused to accounts without a local password."""

    def clean(self) -> dict[str, Any]:
        raise ValidationError(DIRECTORY_ACCOUNT)
