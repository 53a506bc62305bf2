"""What the reconciler found and did."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from vdi.models import ReconcileRun, Stray


@admin.register(ReconcileRun)
class ReconcileRunAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("started_at", "host", "finished_at", "changes", "error")
    list_filter = ("host",)
    readonly_fields = ("host", "started_at", "finished_at", "findings", "error")

    @admin.display(description="findings")
    def changes(self, obj: ReconcileRun) -> int:
        return len(obj.findings)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Stray)
class StrayAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("kind", "name", "host", "first_seen_at", "resolved_at", "action")
    list_filter = ("kind", "host", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "action")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
