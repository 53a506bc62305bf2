"""Desktops (their actions, and the hand-over of a persistent one), deleted desktops, console
sessions and operations."""

from __future__ import annotations

from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from vdi import actions as desktop_actions
from vdi.actions import DesktopAction
from vdi.admin.base import PoolScopedAdmin, address
from vdi.admin.media import publish_view
from vdi.models import ConsoleSession, DeletedDesktop, Desktop, Operation
from vdi.services.access import holds
from vdi.services.desktops import hand_over, request_action
from vdi.services.errors import ServiceError
from vdi.state import TransitionRefused


def _desktop_action(action: DesktopAction) -> Any:
    """The admin action for ``action``: one request through the services per desktop."""

    def run(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Desktop]) -> None:
        done = 0
        for desktop in queryset.select_related("pool", "host"):
            try:
                request_action(request.user, desktop, action.name, address(request),
                               via="admin")
                done += 1
            except (ServiceError, TransitionRefused) as exc:
                modeladmin.message_user(request, f"{desktop}: {exc}", messages.WARNING)
        modeladmin.message_user(request, f"{action.label}: requested for {done} desktop(s).")

    run.__name__ = f"{action.name}_desktops"
    return admin.action(description=action.admin_label,
                        permissions=[f"{action.name}_desktop"])(run)


class HandOverForm(forms.Form):
    new_owner = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        label="New owner")
    confirm = forms.BooleanField(
        required=True, label="I understand that the desktop goes with all its data (its system "
        "disk and its data disk): the new owner sees everything the previous one left on it, "
        "and the previous owner loses it.")


@admin.action(description="Hand over to another user, with its data (persistent, stopped)",
              permissions=["handover"])
def hand_over_desktops(modeladmin: Any, request: HttpRequest,
                       queryset: QuerySet[Desktop]) -> HttpResponse | None:
    form = HandOverForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        for desktop in queryset.select_related("pool", "owner"):
            try:
                hand_over(request.user, desktop, form.cleaned_data["new_owner"],
                          address(request))
                modeladmin.message_user(request, f"{desktop} now belongs to "
                                        f"{form.cleaned_data['new_owner']}, with its data.")
            except ServiceError as exc:
                modeladmin.message_user(request, f"{desktop}: {exc}", messages.WARNING)
        return None
    return TemplateResponse(request, "admin/vdi/desktop/hand_over.html", {
        **modeladmin.admin_site.each_context(request), "title": "Hand over desktops",
        "desktops": queryset, "form": form, "opts": modeladmin.opts,
        "action_checkbox_name": ACTION_CHECKBOX_NAME})


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
class DesktopAdmin(PoolScopedAdmin):
    list_display = ("__str__", "owner", "pool", "host", "status", "assigned_at", "domain_name",
                    "console_link", "updated_at")
    list_filter = ("status", "pool", "host", ("owner", admin.EmptyFieldListFilter))
    search_fields = ("domain_name", "owner__username")
    readonly_fields = ("owner", "pool", "host", "image_version", "install_media",
                       "install_profile", "install_disk_gib", "publish_link", "snapshots_link",
                       "domain_name",
                       "domain_uuid",
                       "disk_path", "data_disk_path", "assigned_at", "pristine",
                       "serial_log_path", "vcpus", "memory_mib", "status", "last_error",
                       "error_detail", "vnc_host", "vnc_port", "vnc_socket", "mac_address",
                       "guest_ready_at", "guest", "console_error",
                       "console_error_at", "created_at", "updated_at", "status_changed_at")
    actions = [*(_desktop_action(a) for a in desktop_actions.REQUESTABLE), hand_over_desktops]
    inlines = [OperationInline]

    def get_urls(self) -> list[URLPattern]:
        publish = self.admin_site.admin_view(partial(publish_view, self))
        return [path("<int:pk>/publish/", publish, name="vdi_desktop_publish"),
                *super().get_urls()]

    @admin.display(description="publish")
    def publish_link(self, obj: Desktop) -> str:
        if not (obj.is_install or obj.is_maintenance):
            return "—"
        words = "Publish as the next version…" if obj.is_maintenance else "Publish as an image…"
        return format_html('<a href="{}">{}</a>',
                           reverse("admin:vdi_desktop_publish", args=[obj.pk]), words)

    @admin.display(description="snapshots")
    def snapshots_link(self, obj: Desktop) -> str:
        if desktop_actions.SNAPSHOT.refusal(obj, as_owner=False) is not None:
            return "—"
        count = obj.snapshots.count()
        return format_html('<a href="{}">{} snapshot(s): take, revert, delete…</a>',
                           reverse("desktop-snapshots", args=[obj.pk]), count)

    @admin.display(description="guest (as its agent says)")
    def guest(self, obj: Desktop) -> str:
        guest = obj.guest
        if not guest:
            return "—"
        facts = (("Operating system", guest.os), ("Host name", guest.hostname),
                 ("Addresses", ", ".join(guest.addresses)),
                 ("Signed in", ", ".join(guest.users) or "nobody"))
        return format_html('<dl class="guest-facts">{}</dl>', format_html_join(
            "", "<dt>{}</dt><dd>{}</dd>", ((name, value or "—") for name, value in facts)))

    @admin.display(description="console")
    def console_link(self, obj: Desktop) -> str:
        if obj.status != "running":
            return ""
        return format_html('<a href="{}">open</a>', reverse("desktop-console", args=[obj.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # desktops are created from a pool by the portal

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # use the "Delete selected desktops" action: it removes the VM and disk

    def _holds_anywhere(self, request: HttpRequest, permission: str) -> bool:
        from vdi.roles import OPERATOR_PERMISSIONS

        return holds(request.user, permission) or (
            bool(self._operated(request)) and permission in OPERATOR_PERMISSIONS)

    def has_handover_permission(self, request: HttpRequest) -> bool:
        return self._holds_anywhere(request, desktop_actions.HANDOVER)


def _action_permission(action: DesktopAction) -> Any:
    def check(self: DesktopAdmin, request: HttpRequest) -> bool:
        return self._holds_anywhere(request, action.permission)

    return check


for _action in desktop_actions.REQUESTABLE:  # each action declares the permission it needs
    setattr(DesktopAdmin, f"has_{_action.name}_desktop_permission", _action_permission(_action))


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


@admin.register(ConsoleSession)
class ConsoleSessionAdmin(PoolScopedAdmin):
    """Live and past console sessions: who, which desktop, since when, from where."""

    pool_field = "desktop__pool"
    list_display = ("desktop", "user", "view_only", "client_address", "opened_at",
                    "last_seen_at", "closed_at", "watch_link")
    list_filter = ("view_only", ("closed_at", admin.EmptyFieldListFilter))

    @admin.display(description="watch")
    def watch_link(self, obj: ConsoleSession) -> str:
        if obj.closed_at is not None:
            return ""
        return format_html('<a href="{}">watch (view only)</a>',
                           reverse("desktop-console", args=[obj.desktop_id]))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None:
            return super().has_view_permission(request, obj.desktop)
        return super().has_view_permission(request, obj)


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("kind", "target", "status", "progress", "step", "created_at", "finished_at")
    list_filter = ("status", "kind")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
