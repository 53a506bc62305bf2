"""The Django admin for the domain. Every change goes through a service: desktop actions
(``vdi.actions``), draining, and plain edits and deletes (``vdi.services.records``)."""

from __future__ import annotations

import csv
import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from vdi import actions as desktop_actions
from vdi.actions import DesktopAction
from vdi.models import (
    AuditEvent,
    ConsoleSession,
    DeletedDesktop,
    Desktop,
    GoldenImage,
    Host,
    ImageVersion,
    Operation,
    Pool,
    ReconcileRun,
    Stray,
    UserQuota,
)
from vdi.services import audit, pools, records
from vdi.services.desktops import request_action
from vdi.services.errors import ServiceError
from vdi.state import TransitionRefused


def _address(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


class AuditedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Saves and deletes (one or in bulk) go through ``vdi.services.records``."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        records.save(request.user, obj, created=not change,
                     fields=form.changed_data if change else (), source_address=_address(request))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        records.delete(request.user, [obj], _address(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        records.delete(request.user, list(queryset), _address(request))


@admin.register(Host)
class HostAdmin(AuditedAdmin):
    list_display = ("name", "libvirt_uri", "domain_type", "resolved_domain_type", "cpu_capacity",
                    "memory_capacity_mib", "enabled")
    readonly_fields = ("resolved_domain_type", "created_at")


class ImageVersionInline(admin.TabularInline):  # type: ignore[type-arg]
    model = ImageVersion
    extra = 0
    can_delete = False
    fields = ("number", "status", "disk_path", "virtual_size_bytes", "sha256", "created_at")
    readonly_fields = ("number", "disk_path", "virtual_size_bytes", "sha256", "created_at")


@admin.register(GoldenImage)
class GoldenImageAdmin(AuditedAdmin):
    list_display = ("name", "description", "created_at")
    inlines = [ImageVersionInline]


@admin.register(ImageVersion)
class ImageVersionAdmin(AuditedAdmin):
    list_display = ("__str__", "status", "virtual_size_bytes", "size_bytes", "created_at")
    list_filter = ("status", "image")
    readonly_fields = ("image", "number", "disk_path", "size_bytes", "virtual_size_bytes",
                       "sha256", "kernel_path", "initrd_path", "cmdline", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from build_tiny_image / import_image

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None or not obj.in_use()


class PoolDesktopInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Desktop
    fk_name = "pool"
    extra = 0
    can_delete = False
    fields = ("domain_name", "owner", "status", "assigned_at", "host", "image_version")
    readonly_fields = fields
    show_change_link = True
    verbose_name_plural = "Desktops (and who holds them)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Desktop]:
        return super().get_queryset(request).select_related(
            "owner", "host", "image_version__image")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _set_draining(value: bool) -> Any:
    def run(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Pool]) -> None:
        changed = sum(pools.set_draining(request.user, pool, value, _address(request))
                      for pool in queryset)
        modeladmin.message_user(request, f"{changed} pool(s) "
                                f"{'draining' if value else 'open for claims again'}.")

    run.__name__ = "drain_pools" if value else "undrain_pools"
    label = "Drain: no new claims, sessions keep running" if value else "Open for claims again"
    return admin.action(description=label, permissions=["change"])(run)


@admin.register(Pool)
class PoolAdmin(AuditedAdmin):
    list_display = ("name", "image", "assignment", "persistence", "min_ready", "max_size",
                    "enabled", "draining")
    list_filter = ("enabled", "draining", "assignment", "persistence")
    filter_horizontal = ("users", "groups")
    fieldsets = (
        (None, {"fields": ("name", "description", "image", "vcpus", "memory_mib", "enabled")}),
        ("Kind", {"fields": ("assignment", "persistence", "data_disk_gib")}),
        ("Size", {"fields": ("min_ready", "max_size", "max_per_user", "draining")}),
        ("Policies", {"fields": ("idle_minutes", "max_session_minutes")}),
        ("Who may use it", {"fields": ("users", "groups")}),
    )
    inlines = [PoolDesktopInline]
    actions = [_set_draining(True), _set_draining(False)]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        before = ({u.pk for u in form.instance.users.all()},
                  {g.pk for g in form.instance.groups.all()}) if change else (set(), set())
        super().save_related(request, form, formsets, change)
        after = ({u.pk for u in form.instance.users.all()},
                 {g.pk for g in form.instance.groups.all()})
        if before != after:
            audit.record(request.user, "pool.grants", form.instance, _address(request),
                         users=sorted(after[0]), groups=sorted(after[1]))


@admin.register(UserQuota)
class UserQuotaAdmin(AuditedAdmin):
    list_display = ("user", "max_desktops", "max_vcpus", "max_memory_mib")
    search_fields = ("user__username",)


@admin.register(ConsoleSession)
class ConsoleSessionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("desktop", "user", "opened_at", "last_seen_at", "closed_at")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


def _desktop_action(action: DesktopAction) -> Any:
    """The admin action for ``action``: one request through the services per desktop."""

    def run(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Desktop]) -> None:
        done = 0
        for desktop in queryset.select_related("pool", "host"):
            try:
                request_action(request.user, desktop, action.name, _address(request),
                               via="admin")
                done += 1
            except (ServiceError, TransitionRefused) as exc:
                modeladmin.message_user(request, f"{desktop}: {exc}", messages.WARNING)
        modeladmin.message_user(request, f"{action.label}: requested for {done} desktop(s).")

    run.__name__ = f"{action.name}_desktops"
    return admin.action(description=action.admin_label)(run)


class OperationInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Operation
    extra = 0
    can_delete = False
    fields = ("kind", "status", "progress", "step", "error", "detail", "created_at",
              "finished_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Desktop)
class DesktopAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("__str__", "owner", "pool", "host", "status", "assigned_at", "domain_name",
                    "updated_at")
    list_filter = ("status", "pool", "host")
    search_fields = ("domain_name", "owner__username")
    readonly_fields = ("owner", "pool", "host", "image_version", "domain_name", "domain_uuid",
                       "disk_path", "data_disk_path", "assigned_at", "serial_log_path", "vcpus",
                       "memory_mib", "status", "last_error", "error_detail", "vnc_host",
                       "vnc_port", "console_error", "console_error_at",
                       "created_at", "updated_at", "status_changed_at")
    actions = [_desktop_action(a) for a in desktop_actions.REQUESTABLE]
    inlines = [OperationInline]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        """Only the actions whose permission the user holds."""
        offered = super().get_actions(request)
        for action in desktop_actions.REQUESTABLE:
            if not request.user.has_perm(action.permission):
                offered.pop(f"{action.name}_desktops", None)
        return offered

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # desktops are created from a pool by the portal

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # use the "Delete selected desktops" action: it removes the VM and disk


@admin.register(DeletedDesktop)
class DeletedDesktopAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Deleted desktops, in words, until the history's retention period ends."""

    list_display = ("name", "owner_name", "pool_name", "host_name", "image_version",
                    "created_at", "deleted_at")
    search_fields = ("name", "owner_name", "domain_name", "pool_name")
    list_filter = ("pool_name", "host_name")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("kind", "target", "status", "progress", "step", "created_at", "finished_at")
    list_filter = ("status", "kind")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.action(description="Export selected events as CSV")
def export_audit_csv(modeladmin: Any, request: HttpRequest,
                     queryset: QuerySet[AuditEvent]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="vdi-audit.csv"'
    writer = csv.writer(response)
    writer.writerow(["time", "actor", "action", "target_type", "target_id", "target",
                     "source_address", "details"])
    for event in queryset.order_by("created_at", "id"):
        writer.writerow([event.created_at.isoformat(), event.actor_name, event.action,
                         event.target_type, event.target_id, _csv_safe(event.target_repr),
                         event.source_address or "", json.dumps(event.details, sort_keys=True)])
    audit.record(request.user, "audit.export", None, _address(request), rows=queryset.count())
    return response


def _csv_safe(text: str) -> str:
    """Names come from users: keep a spreadsheet from reading one as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


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
