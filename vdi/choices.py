"""The vocabularies of the domain."""

from __future__ import annotations

from django.db import models


class DomainTypeChoice(models.TextChoices):
    AUTO = "auto", "auto (probe KVM, fall back to qemu)"
    KVM = "kvm", "kvm (hardware virtualization)"
    QEMU = "qemu", "qemu (software emulation)"


class ImageStatus(models.TextChoices):
    READY = "ready", "ready"
    RETIRED = "retired", "retired (no new desktops)"


class DesktopStatus(models.TextChoices):
    PROVISIONING = "provisioning", "provisioning"
    STARTING = "starting", "starting"
    RUNNING = "running", "running"
    STOPPING = "stopping", "stopping"
    STOPPED = "stopped", "stopped"
    RESTARTING = "restarting", "restarting"
    RESETTING = "resetting", "resetting to the golden image"
    DELETING = "deleting", "deleting"
    ERROR = "error", "error"


TRANSITIONAL_STATUSES = frozenset(
    {
        DesktopStatus.PROVISIONING,
        DesktopStatus.STARTING,
        DesktopStatus.STOPPING,
        DesktopStatus.RESTARTING,
        DesktopStatus.RESETTING,
        DesktopStatus.DELETING,
    }
)


class Assignment(models.TextChoices):
    AUTOMATIC = "automatic", "automatic (any free desktop, given back after use)"
    DEDICATED = "dedicated", "dedicated (one user keeps it until released)"


class Persistence(models.TextChoices):
    NON_PERSISTENT = "non_persistent", "non-persistent (fresh from the image after each use)"
    PERSISTENT = "persistent", "persistent (changes and a data disk survive)"


class OperationStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"

    @classmethod
    def in_progress(cls) -> tuple[str, str]:
        return (cls.QUEUED, cls.RUNNING)
