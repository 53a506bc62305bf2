"""Image rollouts in the admin: where each stands, and pause, resume, roll back."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from vdi.models import Rollout
from vdi.services import rollouts
from vdi.services.errors import ServiceError


def _each(verb: Any, done: str) -> Any:
    def act(modeladmin: admin.ModelAdmin[Rollout], request: HttpRequest,
            queryset: QuerySet[Rollout]) -> None:
        for rollout in queryset.select_related("pool"):
            try:
                verb(request.user, rollout)
                modeladmin.message_user(request, f"{rollout}: {done}.")
            except ServiceError as exc:
                modeladmin.message_user(request, f"{rollout}: {exc}", messages.WARNING)

    act.__name__ = f"rollout_{verb.__name__}"
    return admin.action(description=f"{done.capitalize()} the selected rollouts",
                        permissions=["change"])(act)


@admin.register(Rollout)
class RolloutAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("pool", "from_version", "to_version", "status", "canary_count",
                    "failed_count", "created_at", "finished_at")
    list_filter = ("status", "pool")
    readonly_fields = ("pool", "from_version", "to_version", "status", "paused_from",
                       "canaries", "failed", "canaries_started_at", "note", "created_at",
                       "finished_at")
    actions = [_each(rollouts.pause, "paused"), _each(rollouts.resume, "resumed"),
               _each(rollouts.roll_back, "rolled back")]

    @admin.display(description="canaries")
    def canary_count(self, obj: Rollout) -> int:
        return len(obj.canaries)

    @admin.display(description="failed")
    def failed_count(self, obj: Rollout) -> int:
        return len(obj.failed)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a new image version starts them
