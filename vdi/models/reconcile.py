from __future__ import annotations

from django.db import models

from vdi.models.hosts import Host


class ReconcileRun(models.Model):
    """One pass of the reconciler over a host: what it found and what it did."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="reconcile_runs")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    findings = models.JSONField(default=list, blank=True,
                                help_text="[{kind, target, action}], in words.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"reconcile {self.host} {self.started_at:%Y-%m-%d %H:%M:%S}"


class Stray(models.Model):
    """A domain or disk on a host that no desktop owns. Removed after a grace period when it
    is clearly a leftover; a user's data disk is only ever quarantined (moved aside)."""

    class Kind(models.TextChoices):
        DOMAIN = "domain", "domain"
        DISK = "disk", "disk file"

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="strays")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=500, help_text="Domain name or file path.")
    first_seen_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    action = models.CharField(max_length=300, blank=True,
                              help_text="removed, quarantined to ..., or gone by itself")

    class Meta:
        ordering = ["-first_seen_at"]
        constraints = [models.UniqueConstraint(
            fields=["host", "kind", "name"], condition=models.Q(resolved_at__isnull=True),
            name="one_open_stray_per_item")]

    def __str__(self) -> str:
        return f"stray {self.kind} {self.name}"
