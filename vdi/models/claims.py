from __future__ import annotations

from django.db import models

from vdi.models.pools import Pool


class ClaimTiming(models.Model):
    """How long one claim took from the request to its guest being ready (the dashboard's
    chart; the same measure as the metric ``vdi_claim_ready_seconds``). Kept for
    ``VDI_HISTORY_DAYS``."""

    pool = models.ForeignKey(Pool, null=True, on_delete=models.SET_NULL, related_name="+")
    desktop_id = models.BigIntegerField()
    seconds = models.FloatField()
    ready_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-ready_at"]

    def __str__(self) -> str:
        return f"claim of {self.desktop_id} ready in {self.seconds:.1f} s"
