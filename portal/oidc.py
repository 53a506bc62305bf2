"""Sign-in through OpenID Connect (django-allauth's ``openid_connect`` provider), configured
from ``VDI_OIDC_*``: off while ``VDI_OIDC_ISSUER`` is empty.

Pure: read by ``portal.settings`` before Django's apps load. The provider's app lives in the
settings (``SOCIALACCOUNT_PROVIDERS``), never in the database."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from portal.directory import parse_role_map
from portal.env import Env

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_PROVIDER_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_CLAIM = re.compile(r"[A-Za-z0-9_.:/-]{1,100}")


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    provider_id: str = "oidc"
    name: str = "single sign-on"
    scopes: tuple[str, ...] = ("openid", "profile", "email", "groups")
    groups_claim: str = "groups"
    username_claim: str = "preferred_username"
    role_map: Mapping[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        """The issuer's scheme, host and port: where the sign-in form sends the browser."""
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def source(self) -> str:
        """The name of this provider's group memberships (``DirectoryMembership.source``)."""
        return f"oidc:{self.provider_id}"


def _issuer(value: str) -> str:
    parts = urlsplit(value)
    loopback = parts.hostname in _LOOPBACK
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ImproperlyConfigured(
            f"VDI_OIDC_ISSUER: expected an https:// URL (http:// only on loopback), got {value!r}")
    if not parts.hostname or parts.query or parts.fragment:
        raise ImproperlyConfigured(
            f"VDI_OIDC_ISSUER: expected the issuer URL (no query, no fragment), got {value!r}")
    return value


def _client_secret(env: Env) -> str:
    secret = env.secret("VDI_OIDC_CLIENT_SECRET")
    if not secret:
        raise ImproperlyConfigured("VDI_OIDC_CLIENT_SECRET: must be set (or "
                                   "VDI_OIDC_CLIENT_SECRET_FILE) when VDI_OIDC_ISSUER is set")
    return secret


def _matching(env: Env, name: str, default: str, pattern: re.Pattern[str], what: str) -> str:
    value = env.text(name, default)
    if not pattern.fullmatch(value):
        raise ImproperlyConfigured(f"{name}: expected {what}, got {value!r}")
    return value


def read_oidc(env: Env) -> OidcConfig | None:
    """The OpenID Connect provider the environment describes, or None when it names none."""
    issuer = env.text("VDI_OIDC_ISSUER", "")
    if not issuer:
        return None
    scopes = tuple(env.text("VDI_OIDC_SCOPES", "openid profile email groups").split())
    if "openid" not in scopes:
        raise ImproperlyConfigured(f"VDI_OIDC_SCOPES: must include openid, got {scopes!r}")
    return OidcConfig(
        issuer=_issuer(issuer),
        client_id=env.required_str("VDI_OIDC_CLIENT_ID", "VDI_OIDC_ISSUER is set"),
        client_secret=_client_secret(env),
        provider_id=_matching(env, "VDI_OIDC_PROVIDER_ID", "oidc", _PROVIDER_ID,
                              "lower-case letters, digits, - and _ (up to 40)"),
        name=env.text("VDI_OIDC_NAME", "single sign-on"),
        scopes=scopes,
        groups_claim=_matching(env, "VDI_OIDC_GROUPS_CLAIM", "groups", _CLAIM, "a claim name"),
        username_claim=_matching(env, "VDI_OIDC_USERNAME_CLAIM", "preferred_username",
                                 _CLAIM, "a claim name"),
        role_map=parse_role_map("VDI_OIDC_ROLE_GROUPS", env.text("VDI_OIDC_ROLE_GROUPS", "")),
    )


def socialaccount_settings(config: OidcConfig | None) -> dict[str, Any]:
    """django-allauth's ``SOCIALACCOUNT_*`` settings for this provider (none: no button)."""
    apps = [] if config is None else [{
        "provider_id": config.provider_id,
        "name": config.name,
        "client_id": config.client_id,
        "secret": config.client_secret,
        "settings": {
            "server_url": config.issuer.rstrip("/"),
            "scope": list(config.scopes),
            "oauth_pkce_enabled": True,
        },
    }]
    return {
        "SOCIALACCOUNT_PROVIDERS": {"openid_connect": {"APPS": apps}},
        "SOCIALACCOUNT_ADAPTER": "vdi.oidc.SocialAccountAdapter",
        # The directory is the authority: its people get an account at their first sign-in,
        # without a form and without a verification mail.
        "SOCIALACCOUNT_AUTO_SIGNUP": True,
        "SOCIALACCOUNT_EMAIL_REQUIRED": False,
        "SOCIALACCOUNT_EMAIL_VERIFICATION": "none",
        # Never sign in to (or connect to) an existing account because an email matches.
        "SOCIALACCOUNT_EMAIL_AUTHENTICATION": False,
        "SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT": False,
        "SOCIALACCOUNT_STORE_TOKENS": False,
        "SOCIALACCOUNT_REQUESTS_TIMEOUT": 10,
    }
