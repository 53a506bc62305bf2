"""Installer media: ISO files an administrator installs new images from."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from vdi.models.images import image_name_validator
from vdi.names import validate_name


class InstallMedia(models.Model):
    """An ISO 9660 file on the portal's machine: registered from a path, or uploaded into
    ``VDI_MEDIA_DIR``. An install desktop boots from it (``Desktop.install_media``)."""

    name = models.CharField(max_length=63, unique=True,
                            validators=[validate_name, image_name_validator])
    path = models.CharField(max_length=500, unique=True)
    size_bytes = models.BigIntegerField()
    volume_id = models.CharField(max_length=32, blank=True,
                                 help_text="The ISO's volume label, as it says itself.")
    uploaded = models.BooleanField(default=False, help_text="Uploaded through the portal: its "
                                   "file goes when the media is deleted.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "install media"
        permissions = [("install_from_media", "Can make install desktops from install media")]

    def __str__(self) -> str:
        return self.name
