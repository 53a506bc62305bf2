"""How django-allauth behaves here: accounts are made by administrators, not by sign-up; a
sign-in refused by the rate limit is audited; an account that belongs to the configured
OpenID Connect provider signs in through it only (a password it was given, by a reset or
an administrator, would outlive its closing in the directory)."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.models import SocialAccount
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from portal.oidc import OidcConfig
from vdi.services import audit
from vdi.services.access import Account


def owning_provider(user: Account) -> OidcConfig | None:
    """The configured OpenID Connect provider, if it owns this account."""
    oidc: OidcConfig | None = settings.OIDC
    if oidc is not None and SocialAccount.objects.filter(
            user_id=user.pk, provider=oidc.provider_id).exists():
        return oidc
    return None


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
