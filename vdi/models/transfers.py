"""Files between a user's browser and their desktop, through the portal's spool folder and
the desktop's guest agent."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from vdi.models.desktops import Desktop


class FileTransfer(models.Model):
    class Direction(models.TextChoices):
        IN = "in", "into the desktop (its Downloads folder)"
        OUT = "out", "out of the desktop (its Shared folder)"

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    desktop = models.ForeignKey(Desktop, on_delete=models.CASCADE, related_name="transfers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                             related_name="+")
    direction = models.CharField(max_length=3, choices=Direction.choices)
    name = models.CharField(max_length=200)
    size_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    spool_path = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} {self.direction} {self.desktop_id}"
