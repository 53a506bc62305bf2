"""Webhooks (edited like any record, audited) and their deliveries (read-only, with "retry
now")."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from vdi import webhook_targets
from vdi.admin.base import AuditedAdmin, address
from vdi.models import Webhook, WebhookDelivery
from vdi.services import webhooks


class WebhookForm(forms.ModelForm):  # type: ignore[type-arg]
    """Refuses at once a URL that delivery would refuse (a literal address, or a name that
    resolves only to refused ones); delivery checks again, and that check is the one that
    counts (a name's addresses can change)."""

    url = forms.URLField(
        max_length=500, assume_scheme="https",
        help_text="http:// or https://; redirects are not followed. Loopback, link-local, "
                  "private, unspecified, multicast and reserved addresses are refused unless "
                  "VDI_WEBHOOK_ALLOWED_NETWORKS lists them.")

    class Meta:
        model = Webhook
        fields = ("name", "url", "events", "secret", "enabled")

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        problem = webhook_targets.problem_with(url, settings.WEBHOOK_ALLOWED_NETWORKS)
        if problem:
            raise forms.ValidationError(problem)
        return url


@admin.register(Webhook)
class WebhookAdmin(AuditedAdmin):
    form = WebhookForm
    list_display = ("name", "url", "events", "enabled", "created_at")
    list_filter = ("enabled",)
    search_fields = ("name", "url", "events")
    readonly_fields = ("created_at",)


@admin.action(description="Retry now", permissions=["change"])
def retry_now(modeladmin: Any, request: HttpRequest,
              queryset: QuerySet[WebhookDelivery]) -> None:
    count = webhooks.retry_now(request.user, list(queryset.select_related("webhook")),
                               address(request))
    modeladmin.message_user(request, f"{count} deliveries queued for another attempt.",
                            messages.SUCCESS if count else messages.WARNING)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("created_at", "webhook", "event", "status", "attempts", "response_code",
                    "next_try_at", "error")
    list_filter = ("status", "webhook", "event")
    search_fields = ("event", "error", "webhook__name")
    list_select_related = ("webhook",)
    actions = [retry_now]
    fields = ("webhook", "event", "audit_event", "status", "attempts", "response_code",
              "error", "next_try_at", "created_at", "delivered_at", "payload")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Read-only pages; the list still offers "retry now" to those who may change."""
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
