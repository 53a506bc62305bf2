"""Personal API tokens: made and revoked by their owner, with scopes and an expiry."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A bearer token for the REST API. Only its SHA-256 is kept; the key is shown once.

    ``read`` lets it read what its owner may see; ``write`` lets it also act (claim, power
    actions, drain) as its owner may. It never does more than its owner could."""

    READ, WRITE = "read", "write"
    SCOPES = (READ, WRITE)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What it is for, in the owner's words.")
    prefix = models.CharField(max_length=12, unique=True, editable=False,
                              help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes
