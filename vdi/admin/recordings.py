"""Console recordings: listed and replayed, never changed; deleting one removes its file."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from vdi.admin.base import address
from vdi.models import Recording
from vdi.services import recordings


@admin.register(Recording)
class RecordingAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("started_at", "desktop_name", "pool_name", "user", "duration",
                    "size_bytes", "truncated", "replay")
    list_filter = ("pool_name", "truncated")
    search_fields = ("desktop_name", "user__username")
    date_hierarchy = "started_at"
    readonly_fields = ("desktop", "desktop_name", "pool_name", "user", "started_at",
                       "ended_at", "size_bytes", "duration_ms", "truncated", "replay")
    exclude = ("path",)

    @admin.display(description="length")
    def duration(self, recording: Recording) -> str:
        seconds = recording.duration_ms // 1000
        return f"{seconds // 60}:{seconds % 60:02d}"

    @admin.display(description="replay")
    def replay(self, recording: Recording) -> str:
        if recording.ended_at is None:
            return "recording…"
        return format_html('<a href="{}">Replay</a>',
                           reverse("recording-replay", args=[recording.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Recording) -> None:
        recordings.delete(request.user, [obj], address(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Recording]) -> None:
        recordings.delete(request.user, list(queryset), address(request))
