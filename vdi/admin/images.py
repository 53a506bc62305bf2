"""Hosts, golden images and their versions."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import URLPattern, path

from vdi.admin import maintenance
from vdi.admin.base import AuditedAdmin
from vdi.models import GoldenImage, Host, ImageVersion


@admin.register(Host)
class HostAdmin(AuditedAdmin):
    list_display = ("name", "libvirt_uri", "domain_type", "resolved_domain_type", "cpu_capacity",
                    "memory_capacity_mib", "networks", "enabled", "heartbeat_at",
                    "heartbeat_error")
    readonly_fields = ("resolved_domain_type", "domain_type_reason", "created_at", "heartbeat_at",
                       "heartbeat_error")
    fieldsets = (
        (None, {"fields": ("name", "libvirt_uri", "domain_type", "resolved_domain_type",
                           "domain_type_reason", "storage_dir", "vnc_socket_dir", "enabled",
                           "created_at", "heartbeat_at", "heartbeat_error")}),
        ("Capacity", {"fields": ("cpu_capacity", "memory_capacity_mib")}),
        ("Networks", {
            "fields": ("network_mode", "network_name", "bridges", "nat_networks",
                       "isolated_networks"),
            "description": "What this host offers its desktops. A pool's desktops are placed "
                           "only on hosts that offer the pool's network; a pool that leaves "
                           "the choice to the host gets the default network below."}),
    )

    @admin.display(description="networks")
    def networks(self, obj: Host) -> str:
        return obj.offered_networks


class ImageVersionInline(admin.TabularInline):  # type: ignore[type-arg]
    model = ImageVersion
    extra = 0
    can_delete = False
    fields = ("number", "status", "notes", "disk_path", "virtual_size_bytes", "sha256",
              "created_at")
    readonly_fields = ("number", "notes", "disk_path", "virtual_size_bytes", "sha256",
                       "created_at")


@admin.register(GoldenImage)
class GoldenImageAdmin(AuditedAdmin):
    list_display = ("name", "description", "created_at")
    readonly_fields = ("maintenance",)
    inlines = [ImageVersionInline]

    @admin.display(description="maintenance desktops")
    def maintenance(self, obj: GoldenImage) -> str:
        return maintenance.image_links(obj)

    def get_urls(self) -> list[URLPattern]:
        opener = self.admin_site.admin_view(partial(maintenance.open_view, self))
        return [path("<int:pk>/maintain/", opener, name="vdi_goldenimage_maintain"),
                *super().get_urls()]


@admin.register(ImageVersion)
class ImageVersionAdmin(AuditedAdmin):
    list_display = ("__str__", "status", "profile", "readiness", "virtual_size_bytes",
                    "size_bytes", "created_at")
    list_filter = ("status", "profile", "image")
    readonly_fields = ("image", "number", "disk_path", "size_bytes", "virtual_size_bytes",
                       "sha256", "kernel_path", "initrd_path", "cmdline", "packages",
                       "build_key", "notes", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from build_tiny_image / import_image

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None or not obj.in_use()
