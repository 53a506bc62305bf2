from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from vdi.choices import ImageStatus, Profile, Readiness
from vdi.names import validate_name

image_name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,62}\Z", "Use lower-case letters, digits and dashes."
)


class GoldenImage(models.Model):
    """A named image that pools are built from; its versions are the actual files."""

    name = models.CharField(max_length=63, unique=True,
                            validators=[validate_name, image_name_validator])
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def latest_ready_version(self) -> ImageVersion | None:
        return self.versions.filter(status=ImageStatus.READY).order_by("-number").first()


class ImageVersion(models.Model):
    """One read-only qcow2 file of an image (plus kernel, initrd, command line for direct boot)."""

    image = models.ForeignKey(GoldenImage, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    disk_path = models.CharField(max_length=500, unique=True)
    size_bytes = models.BigIntegerField(help_text="Size of the file on disk.")
    virtual_size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, unique=True)
    kernel_path = models.CharField(max_length=500, blank=True)
    initrd_path = models.CharField(max_length=500, blank=True)
    cmdline = models.CharField(max_length=1000, blank=True)
    profile = models.CharField(max_length=16, choices=Profile.choices, default=Profile.TINY,
                               help_text="The virtual hardware its desktops get.")
    readiness = models.CharField(max_length=8, choices=Readiness.choices,
                                 default=Readiness.SERIAL)
    session_process = models.CharField(
        max_length=64, blank=True, validators=[RegexValidator(r"^[A-Za-z0-9._+-]*$")],
        help_text="With agent readiness: the process that means the graphical session is up "
        "(looked for through the agent with pgrep -x), for example icewm. Blank: a signed-in "
        "user is enough.")
    packages = models.TextField(blank=True, help_text="What it was built from: one package "
                                "and version a line (built images).")
    build_key = models.CharField(max_length=64, blank=True, db_index=True,
                                 help_text="Recipe and resolved package versions, hashed.")
    status = models.CharField(max_length=16, choices=ImageStatus.choices, default=ImageStatus.READY)
    notes = models.TextField(blank=True, help_text="What changed in this version (its "
                             "publisher's words, from a maintenance desktop).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image__name", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["image", "number"], name="unique_image_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.image.name} v{self.number}"

    def in_use(self) -> bool:
        """Desktops are made from it (what the PROTECT foreign key says, exactly)."""
        return self.desktops.exists()

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        if self.in_use():
            raise ValidationError(f"{self} is the backing file of desktops; it can't be deleted.")
        return super().delete()
