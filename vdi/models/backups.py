from __future__ import annotations

from django.conf import settings
from django.db import models

from vdi.choices import BackupKind, BackupStatus
from vdi.models.desktops import Desktop
from vdi.models.hosts import Host


class Backup(models.Model):
    """One backup of a persistent desktop's disks, in a folder of its own on its host.

    A full backup holds the whole disks; an incremental one what changed since its parent
    (libvirt's checkpoint of the parent names the bitmap), and its files have their parent's
    as backing file, so each backup's files read as the disks at its point.
    """

    desktop = models.ForeignKey(Desktop, null=True, on_delete=models.SET_NULL,
                                related_name="backups")
    desktop_name = models.CharField(max_length=200, help_text="Kept if the desktop goes.")
    pool = models.ForeignKey("vdi.Pool", null=True, on_delete=models.SET_NULL, related_name="+",
                             help_text="Where a restore to a new desktop makes it.")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+",
                              help_text="Whose desktop it was (and whose a new one is).")
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=12, choices=BackupKind.choices)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="children",
                               help_text="The backup an incremental one builds on.")
    checkpoint = models.CharField(max_length=64, help_text="The libvirt checkpoint it left.")
    folder = models.CharField(max_length=500)
    files = models.JSONField(default=dict, help_text="disk -> {path, bytes, sha256}")
    status = models.CharField(max_length=10, choices=BackupStatus.choices,
                              default=BackupStatus.RUNNING)
    size_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.kind} backup of {self.desktop_name} at {self.created_at:%Y-%m-%d %H:%M}"
