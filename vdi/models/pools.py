from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from vdi.models.images import GoldenImage


class Pool(models.Model):
    """A set of desktops of one image and size that users can ask for."""

    name = models.CharField(max_length=100, unique=True)
    image = models.ForeignKey(GoldenImage, on_delete=models.PROTECT, related_name="pools")
    vcpus = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(64)]
    )
    memory_mib = models.PositiveIntegerField(
        default=256, validators=[MinValueValidator(128), MaxValueValidator(262144)]
    )
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
