"""How django-allauth behaves here: accounts are made by administrators, not by sign-up; a
sign-in refused by the rate limit is audited; a directory that does not answer is named in
the refusal. Accounts without a local password (directory accounts) get none by self-service:
no reset mail, no "set password" or "change password" form; a local account changes its own
from the settings page and stays signed in. An account that belongs to the configured OpenID
Connect provider signs in through it only (a password an administrator gave it would outlive
its closing in the directory)."""

from __future__ import annotations

import logging
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.forms import ChangePasswordForm, SetPasswordForm
from allauth.core.internal.ratelimit import get_ip
from allauth.socialaccount.models import SocialAccount
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from portal.oidc import OidcConfig
from vdi.ldap_backend import UNREACHABLE_MESSAGE, directory_unreachable
from vdi.services import audit
from vdi.services.access import Account

log = logging.getLogger(__name__)
DIRECTORY_ACCOUNT = ("This account signs in through your organisation's directory: its "
                     "password is changed there, not here.")


def owning_provider(user: Account) -> OidcConfig | None:
    """The configured OpenID Connect provider, if it owns this account."""
    oidc: OidcConfig | None = settings.OIDC
    if oidc is not None and SocialAccount.objects.filter(
            user_id=user.pk, provider=oidc.provider_id).exists():
        return oidc
    return None


def has_local_password(user: Account) -> bool:
    """Whether the account signs in with a password kept here, which its owner may change
    (a directory account's is kept, and changed, in the directory)."""
    return bool(user.has_usable_password()) and owning_provider(user) is None


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        """The "key" of the failed sign-in limit (VDI_LOGIN_RATE_LIMIT's ``/key`` rules): the
        account tried *and* the address trying it, so that nobody elsewhere can lock an
        account (the administrator's) out with wrong passwords; the ``/ip`` rule still limits
        each address across accounts. (allauth 65 keys the rule by this method alone.)"""
        account = super()._get_login_attempts_cache_key(request, **credentials)
        return f"{account}:{get_ip(request)}"

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

    def pre_login(self, request: HttpRequest, user: Account,
                  **kwargs: Any) -> HttpResponse | None:
        response: HttpResponse | None = super().pre_login(request, user, **kwargs)
        if response is not None or "sociallogin" in (kwargs.get("signal_kwargs") or {}):
            return response
        if (provider := owning_provider(user)) is not None:
            audit.record(user, "auth.login_refused", user, request.META.get("REMOTE_ADDR"),
                         reason="directory account: signs in through its provider")
            messages.error(request, f"{user.get_username()} signs in with {provider.name}, "
                                    "not with a password.")
            response = HttpResponseRedirect(reverse("account_login"))
        return response

    def get_password_change_redirect_url(self, request: HttpRequest) -> str:
        return reverse("preferences")  # the settings page, which links to the change

    def send_password_reset_mail(self, user: Any, email: str, context: dict[str, Any]) -> None:
        if not user.has_usable_password():
            log.info("no password reset mail for %s: a directory account", user.get_username())
            return
        super().send_password_reset_mail(user, email, context)


class NoDirectoryPasswordForm(SetPasswordForm):  # type: ignore[misc]
    """allauth's "set password" form, refused to accounts without a local password."""

    refusal = DIRECTORY_ACCOUNT  # its page says so instead of showing the form

    def clean(self) -> dict[str, Any]:
        raise ValidationError(DIRECTORY_ACCOUNT)


class LocalPasswordChangeForm(ChangePasswordForm):  # type: ignore[misc]
    """allauth's "change password" form, for accounts with a local password only (an
    account of the OpenID Connect provider may hold one an administrator gave it)."""

    @property
    def refusal(self) -> str | None:
        return None if has_local_password(self.user) else DIRECTORY_ACCOUNT

    def clean(self) -> dict[str, Any]:
        if self.refusal is not None:
            raise ValidationError(self.refusal)
        cleaned: dict[str, Any] = super().clean()
        return cleaned
