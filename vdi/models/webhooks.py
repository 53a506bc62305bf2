from __future__ import annotations

import secrets

from django.core.validators import URLValidator
from django.db import models

from vdi.models.audit import AuditEvent
from vdi.names import validate_name

http_url_validator = URLValidator(schemes=["http", "https"],
                                  message="Enter an http:// or https:// URL.")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class Webhook(models.Model):
    """An HTTP endpoint told about audit events of the kinds it asks for, each delivery
    signed with its secret (``vdi.services.webhooks``)."""

    name = models.CharField(max_length=100, unique=True, validators=[validate_name])
    url = models.URLField(max_length=500, validators=[http_url_validator],
                          help_text="http:// or https://; redirects are not followed.")
    events = models.CharField(
        max_length=500, default="*",
        help_text="Audit actions to send, separated by spaces or commas; * matches any "
                  "characters: 'desktop.*', 'user.add console.open', '*'.")
    secret = models.CharField(
        max_length=200, default=new_secret,
        help_text="Shared with the receiver, which checks the X-VDI-Signature header with it.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def patterns(self) -> list[str]:
        return [p for p in self.events.replace(",", " ").split() if p]


class WebhookDelivery(models.Model):
    """One event on its way to one webhook: each attempt, its answer, and the next try."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        DELIVERED = "delivered", "delivered"
        FAILED = "failed", "failed (no more tries)"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    audit_event = models.ForeignKey(AuditEvent, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")
    event = models.CharField(max_length=64, help_text="The audit action.")
    payload = models.JSONField(help_text="The JSON body sent (signed at each attempt).")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING,
                              db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    next_try_at = models.DateTimeField(
        null=True, blank=True, db_index=True,
        help_text="Pending: when the next attempt is due. Sending: until when the attempt "
                  "under way holds it (a worker that died lets it go then).")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} to {self.webhook_id} ({self.status})"
