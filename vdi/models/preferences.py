"""What a user chooses for their own desktops."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from vdi.choices import KeyboardLayout


class Preferences(models.Model):
    """A user's choices; users without a row get the defaults."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="vdi_preferences")
    keyboard_layout = models.CharField(
        max_length=8, choices=KeyboardLayout.choices, default=KeyboardLayout.US,
        help_text="The keyboard you type on: your desktops' sessions use its layout.")

    class Meta:
        verbose_name_plural = "preferences"

    def __str__(self) -> str:
        return f"preferences of {self.user}"
