"""Console sessions recorded on pools that ask for it."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from vdi.models.desktops import Desktop


class Recording(models.Model):
    """What the console proxy sent a user's browser, with timestamps, in one file (see
    ``vdi.console.recorder``); kept ``VDI_RECORDING_DAYS``, at most
    ``VDI_RECORDING_MAX_BYTES`` each (then ``truncated``)."""

    desktop = models.ForeignKey(Desktop, null=True, on_delete=models.SET_NULL,
                                related_name="recordings")
    desktop_name = models.CharField(max_length=200)
    pool_name = models.CharField(max_length=100, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                             related_name="+")
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField(default=0)
    duration_ms = models.BigIntegerField(default=0)
    truncated = models.BooleanField(default=False, help_text="It reached the size limit.")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.desktop_name} by {self.user} at {self.started_at:%Y-%m-%d %H:%M}"
