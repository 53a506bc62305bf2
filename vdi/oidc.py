"""Sign-in through OpenID Connect (``portal.oidc`` reads its settings): how the directory's
people become portal accounts, and how their groups follow the directory at every sign-in.

- A new identity gets a new account: username from the username claim (made valid and
  unique), email and name from the claims, no form, no verification mail.
- An identity is never joined to an existing account by email, nor by a signed-in person
  ("connect"): an administrator links one, if ever, by adding the social account in the admin.
- The ID token's signature is checked always (allauth skips it for tokens fetched from the
  token endpoint), and the discovery document must name the configured issuer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from allauth.account.adapter import get_adapter as get_account_adapter
from allauth.account.utils import filter_users_by_email
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.helpers import render_authentication_error
from allauth.socialaccount.internal import jwtkit
from allauth.socialaccount.models import SocialApp, SocialLogin
from allauth.socialaccount.providers.base.constants import AuthProcess
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.oauth2.views import (
    OAuth2CallbackView,
    OAuth2LoginView,
)
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from requests import RequestException

from portal.oidc import OidcConfig
from vdi.services import audit
from vdi.services.access import Account
from vdi.services.directory import sync_groups

log = logging.getLogger(__name__)


def config_for(provider_id: str) -> OidcConfig | None:
    """The configured provider, when ``provider_id`` is the one of the settings."""
    config: OidcConfig | None = settings.OIDC
    return config if config is not None and config.provider_id == provider_id else None


def claims_of(extra_data: Mapping[str, Any]) -> dict[str, Any]:
    """The identity's claims: the ID token's, overlaid by userinfo's (the fresher)."""
    return {**extra_data.get("id_token", {}), **extra_data.get("userinfo", {})}


def directory_groups(claims: Mapping[str, Any], claim: str) -> list[str]:
    """The group names of the groups claim: a list, or one name; anything else is none."""
    value = claims.get(claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    if value is not None:
        log.warning("OIDC claim %r is neither a list nor a string: no groups", claim)
    return []


def sync_directory_groups(user: Account, sociallogin: SocialLogin) -> None:
    """Make the account's groups from this provider what its groups claim says now."""
    config = config_for(sociallogin.account.provider)
    if config is None:
        return
    claims = claims_of(sociallogin.account.extra_data)
    if config.groups_claim not in claims:
        log.warning("OIDC sign-in of %s without a %r claim: no groups from %s",
                    user.get_username(), config.groups_claim, config.source)
    sync_groups(user, directory_groups(claims, config.groups_claim), config.source,
                config.role_map)


class SocialAccountAdapter(DefaultSocialAccountAdapter):  # type: ignore[misc]
    """Sign-up stays closed for local accounts (``vdi.accounts``), open for the directory."""

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return config_for(sociallogin.account.provider) is not None

    def is_auto_signup_allowed(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return True

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        if sociallogin.state.get("process") == AuthProcess.CONNECT:
            audit.record(request.user, "auth.oidc_connect_refused", None,
                         request.META.get("REMOTE_ADDR"), provider=sociallogin.account.provider)
            raise ImmediateHttpResponse(HttpResponseForbidden(
                "Directory identities are not joined to existing accounts here: "
                "ask an administrator."))

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin,
                      data: dict[str, Any]) -> Any:
        user = super().populate_user(request, sociallogin, data)
        config = config_for(sociallogin.account.provider)
        if config is None:
            return user
        claims = claims_of(sociallogin.account.extra_data)
        wanted = claims.get(config.username_claim)
        user.username = get_account_adapter(request).generate_unique_username(
            [wanted if isinstance(wanted, str) else None, "user"])
        if user.email and filter_users_by_email(user.email):
            # Another account has this address: the new one goes without (an address that
            # two accounts share would reset both passwords and confuse who is who).
            log.warning("OIDC account %s made without email: %s is taken", user.username,
                        user.email)
            user.email = ""
            sociallogin.email_addresses = []
        return user

    def on_authentication_error(self, request: HttpRequest, provider: Any, error: Any = None,
                                exception: Exception | None = None,
                                extra_context: Any = None) -> None:
        reason = str(exception or error or "unknown")
        if exception is not None and exception.__cause__ is not None:
            reason = f"{reason}: {exception.__cause__}"
        audit.record(None, "auth.login_failed", None, request.META.get("REMOTE_ADDR"),
                     provider=getattr(provider, "sub_id", str(provider)), reason=reason[:500])


class CheckedAdapter(OpenIDConnectOAuth2Adapter):  # type: ignore[misc]
    """allauth's adapter, with the issuer of discovery and the ID token's signature checked."""

    @property
    def openid_config(self) -> dict[str, Any]:
        document: dict[str, Any] = super().openid_config
        config = config_for(self.provider_id)
        issuer = str(document.get("issuer", ""))
        if config is not None and issuer.rstrip("/") != config.issuer.rstrip("/"):
            raise OAuth2Error(f"the provider names issuer {issuer!r}, not {config.issuer!r}")
        return document

    def _decode_id_token(self, app: SocialApp, id_token: str) -> dict[str, Any]:
        data: dict[str, Any] = jwtkit.verify_and_decode(
            credential=id_token, keys_url=self.openid_config["jwks_uri"],
            issuer=self.openid_config["issuer"], audience=app.client_id,
            lookup_kid=jwtkit.lookup_kid_jwk, verify_signature=True)
        return data


def _run(view: Any, request: HttpRequest, adapter: CheckedAdapter) -> HttpResponse:
    try:
        response: HttpResponse = view.adapter_view(adapter)(request)
    except SocialApp.DoesNotExist:
        raise Http404 from None
    except (OAuth2Error, RequestException) as exc:  # discovery failed, or named another issuer
        response = render_authentication_error(request, adapter.get_provider(), exception=exc)
    return response


def login(request: HttpRequest, provider_id: str) -> HttpResponse:
    """The sign-in button's POST: on to the provider."""
    return _run(OAuth2LoginView, request, CheckedAdapter(request, provider_id))


def callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    """The provider sends the browser back here with the authorization code."""
    return _run(OAuth2CallbackView, request, CheckedAdapter(request, provider_id))
