from __future__ import annotations

from django.conf import settings
from django.db import models

from vdi.actions import operation_kinds
from vdi.choices import ImageOperation, OperationStatus
from vdi.models.desktops import Desktop
from vdi.models.images import GoldenImage


class Operation(models.Model):
    """A long action the UI can show: what, on what, how far, and how it ended."""

    kind = models.CharField(max_length=16, choices=operation_kinds() + ImageOperation.choices)
    desktop = models.ForeignKey(
        Desktop, null=True, blank=True, on_delete=models.SET_NULL, related_name="operations"
    )
    image = models.ForeignKey(
        GoldenImage, null=True, blank=True, on_delete=models.SET_NULL, related_name="operations")
    target = models.CharField(max_length=200, help_text="What the operation acts on, in words.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    status = models.CharField(
        max_length=16, choices=OperationStatus.choices, default=OperationStatus.QUEUED,
        db_index=True,
    )
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    step = models.CharField(max_length=200, blank=True, help_text="What it is doing now.")
    error = models.TextField(blank=True, help_text="How it failed, in words.")
    detail = models.TextField(blank=True, help_text="The raw cause of the last failure or "
                              "retry, for operators.")
    params = models.JSONField(default=dict, blank=True,
                              help_text="What the request asked for (a publish's image name...).")
    waiting_since = models.DateTimeField(
        null=True, blank=True, help_text="Since when it waits for its host to come back.")
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.target} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
