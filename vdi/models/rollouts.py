from __future__ import annotations

from django.db import models

from vdi.choices import RolloutStatus
from vdi.models.images import ImageVersion
from vdi.models.pools import Pool


class Rollout(models.Model):
    """A new image version reaching a pool: its idle desktops first as canaries, checked for
    health, then the pool's new and reset desktops; or back, when the canaries fail.
    Desktops in use are never touched (they move at their next reset or release)."""

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="rollouts")
    from_version = models.ForeignKey(ImageVersion, null=True, on_delete=models.SET_NULL,
                                     related_name="+")
    to_version = models.ForeignKey(ImageVersion, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=14, choices=RolloutStatus.choices,
                              default=RolloutStatus.CANARY)
    paused_from = models.CharField(max_length=14, blank=True, choices=RolloutStatus.choices)
    canaries = models.JSONField(default=list, help_text="Desktop ids tried first.")
    failed = models.JSONField(default=list, help_text="Canaries that were not healthy.")
    canaries_started_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True, help_text="What happened, in words.")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.to_version} to {self.pool} ({self.status})"
