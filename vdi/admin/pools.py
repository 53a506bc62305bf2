"""Pools (their grants, their operators, draining) and users' quotas."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from vdi.admin.base import AuditedAdmin, PoolScopedAdmin, address
from vdi.models import Desktop, Pool, UserQuota
from vdi.services import audit, pools


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
        allowed = [p for p in queryset if modeladmin.has_change_permission(request, p)]
        changed = sum(pools.set_draining(request.user, pool, value, address(request))
                      for pool in allowed)
        modeladmin.message_user(request, f"{changed} pool(s) "
                                f"{'draining' if value else 'open for claims again'}.")

    run.__name__ = "drain_pools" if value else "undrain_pools"
    label = "Drain: no new claims, sessions keep running" if value else "Open for claims again"
    return admin.action(description=label, permissions=["change"])(run)


@admin.register(Pool)
class PoolAdmin(PoolScopedAdmin, AuditedAdmin):
    pool_field = "pk"
    list_display = ("name", "image", "assignment", "persistence", "min_ready", "max_size",
                    "enabled", "draining")
    list_filter = ("enabled", "draining", "assignment", "persistence")
    filter_horizontal = ("users", "groups", "operators", "operator_groups")
    fieldsets = (
        (None, {"fields": ("name", "description", "image", "vcpus", "memory_mib", "enabled")}),
        ("Kind", {"fields": ("assignment", "persistence", "data_disk_gib")}),
        ("Size", {"fields": ("min_ready", "max_size", "max_per_user", "draining")}),
        ("Network", {"fields": ("network_mode", "network_name")}),
        ("Image versions", {"fields": (
            "version_policy", "pinned_version", "rollout_canary_percent",
            "rollout_max_failed_percent", "rollout_health_seconds")}),
        ("Console", {"fields": ("display_protocol",)}),
        ("Snapshots and backups", {"fields": (
            "max_snapshots", "max_snapshot_gib", "backup_every_hours", "backup_keep_last",
            "backup_keep_daily", "backup_keep_weekly")}),
        ("Policies", {"fields": ("idle_minutes", "max_session_minutes", "clipboard",
                                  "watch_consent", "record_sessions")}),
        ("Who may use it", {"fields": ("users", "groups")}),
        ("Who manages it (pool operators)", {"fields": ("operators", "operator_groups")}),
    )
    inlines = [PoolDesktopInline]
    actions = [_set_draining(True), _set_draining(False)]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """Only those who manage every pool choose who operates one."""
        if request.user.has_perm("vdi.change_pool"):
            return ()
        return ("operators", "operator_groups")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("vdi.add_pool"))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("vdi.delete_pool"))

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        before = _people(form.instance) if change else {}
        super().save_related(request, form, formsets, change)
        after = _people(form.instance)
        if before != after:
            audit.record(request.user, "pool.grants", form.instance, address(request),
                         **{k: sorted(v) for k, v in after.items()})


def _people(pool: Pool) -> dict[str, set[int]]:
    return {"users": {u.pk for u in pool.users.all()},
            "groups": {g.pk for g in pool.groups.all()},
            "operators": {u.pk for u in pool.operators.all()},
            "operator_groups": {g.pk for g in pool.operator_groups.all()}}


@admin.register(UserQuota)
class UserQuotaAdmin(AuditedAdmin):
    list_display = ("user", "max_desktops", "max_vcpus", "max_memory_mib")
    search_fields = ("user__username",)
