"""Personal API tokens: made and revoked by their owner; checked on each API request."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from vdi.models import ApiToken
from vdi.names import refused_character
from vdi.services import audit
from vdi.services.access import Account, active
from vdi.services.errors import ServiceError

KEY_PREFIX = "vdi_"
USE_RECORD_SECONDS = 60  # last_used_at is written at most this often per token


@dataclass(frozen=True)
class MadeToken:
    token: ApiToken
    key: str  # shown once, never stored


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def make(user: Account, name: str, scopes: list[str], days: int,
         source_address: str | None = None) -> MadeToken:
    """A new token for ``user``; refused with a reason for a bad name, scope or lifetime."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ServiceError("Give the token a name of 1 to 100 characters.")
    if (char := refused_character(name)) is not None:
        raise ServiceError(f"A token's name may not hold {char}.")
    unknown = sorted(set(scopes) - set(ApiToken.SCOPES))
    if unknown or not scopes:
        raise ServiceError(f"Choose scopes among {', '.join(ApiToken.SCOPES)}.")
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        raise ServiceError(
            f"A token lives 1 to {settings.API_TOKEN_MAX_DAYS} days.")
    live = ApiToken.objects.filter(user=user, revoked_at__isnull=True).count()
    if live >= settings.API_TOKENS_PER_USER:
        raise ServiceError(f"You have {settings.API_TOKENS_PER_USER} tokens already: revoke one "
                           "first.")
    secret = secrets.token_urlsafe(32)
    prefix = secret[:8]
    key = f"{KEY_PREFIX}{secret}"
    token = ApiToken.objects.create(
        user=user, name=name, prefix=prefix, key_hash=digest(key),
        scopes=sorted(set(scopes)), expires_at=timezone.now() + timedelta(days=days))
    audit.record(user, "api_token.create", token, source_address, scopes=token.scopes,
                 days=days)
    return MadeToken(token, key)


def revoke(user: Account, token_id: int, source_address: str | None = None) -> ApiToken:
    """Revoke one of ``user``'s own tokens (at once: its next request is refused)."""
    token = ApiToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).first()
    if token is None:
        raise ServiceError("No such token (or it is revoked already).")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit.record(user, "api_token.revoke", token, source_address)
    return token


def revoke_all(user: Account, reason: str) -> int:
    """Revoke every live token of ``user`` (its password changed or was reset: a token made
    with a stolen password must not outlive the reset); each revocation audited with why."""
    now = timezone.now()
    revoked = list(ApiToken.objects.filter(user=user, revoked_at__isnull=True))
    for token in revoked:
        token.revoked_at = now
        token.save(update_fields=["revoked_at"])
        audit.record(user, "api_token.revoke", token, None, reason=reason)
    return len(revoked)


def authenticate(key: str) -> ApiToken | None:
    """The live token with this key, its owner still active; None otherwise."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    now = timezone.now()
    token = (ApiToken.objects.select_related("user")
             .filter(key_hash=digest(key), revoked_at__isnull=True, expires_at__gt=now)
             .first())
    if token is None or not active(token.user):
        return None
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > \
            USE_RECORD_SECONDS:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
