from __future__ import annotations

from django.conf import settings
from django.db import models

from vdi.choices import SnapshotKind, SnapshotStatus
from vdi.models.desktops import Desktop


class Snapshot(models.Model):
    """A point a persistent desktop can go back to; snapshots form a tree per desktop.

    A new snapshot's parent is the desktop's current one (the last taken or reverted to).
    The snapshot itself lives in the desktop's qcow2 files as an internal snapshot named
    ``tag``: live ones through libvirt (with the memory), offline ones through ``qemu-img``.
    """

    desktop = models.ForeignKey(Desktop, on_delete=models.CASCADE, related_name="snapshots")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="children")
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=200, blank=True)
    tag = models.CharField(max_length=40, unique=True, editable=False,
                           help_text="Its name in libvirt and in the qcow2 files.")
    kind = models.CharField(max_length=8, choices=SnapshotKind.choices)
    with_data_disk = models.BooleanField(default=True)
    frozen = models.BooleanField(
        default=False, help_text="Taken with the guest's filesystems frozen by its agent.")
    status = models.CharField(max_length=10, choices=SnapshotStatus.choices,
                              default=SnapshotStatus.CREATING)
    current = models.BooleanField(default=False,
                                  help_text="The point the desktop last came from.")
    size_bytes = models.BigIntegerField(default=0, help_text="Space it took when taken.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["desktop", "name"], name="snapshot_name_per_desktop"),
        ]

    def __str__(self) -> str:
        return f"{self.name} of {self.desktop}"
