"""The audit log: filtered, searched and exported, never changed."""

from __future__ import annotations

import csv
import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from vdi.admin.base import address
from vdi.models import AuditEvent
from vdi.services import audit

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    """A spreadsheet must read every cell as text: one that could start a formula (=, +, -,
    @, a tab or a carriage return) is quoted with a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@admin.action(description="Export selected events as CSV")
def export_audit_csv(modeladmin: Any, request: HttpRequest,
                     queryset: QuerySet[AuditEvent]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="vdi-audit.csv"'
    writer = csv.writer(response)
    writer.writerow(["time", "actor", "action", "target_type", "target_id", "target",
                     "source_address", "details"])
    for event in queryset.order_by("created_at", "id"):
        writer.writerow([csv_safe(cell) for cell in (
            event.created_at.isoformat(), event.actor_name, event.action, event.target_type,
            event.target_id, event.target_repr, event.source_address or "",
            json.dumps(event.details, sort_keys=True))])
    audit.record(request.user, "audit.export", None, address(request), rows=queryset.count())
    return response


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("created_at", "actor_name", "action", "target_repr", "source_address")
    list_filter = ("action", "target_type", ("created_at", admin.DateFieldListFilter))
    search_fields = ("actor_name", "target_repr", "action", "source_address")
    date_hierarchy = "created_at"
    actions = [export_audit_csv]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
