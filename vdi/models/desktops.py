from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models

from vdi.actions import custom_permissions
from vdi.choices import TRANSITIONAL_STATUSES, DesktopStatus, DisplayProtocol, Profile
from vdi.models.hosts import Host
from vdi.models.images import ImageVersion
from vdi.models.media import InstallMedia
from vdi.models.pools import Pool


def new_mac_address() -> str:
    """A random MAC in QEMU's locally administered range (52:54:00:...)."""
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def new_vnc_password() -> str:
    """A random VNC password (VNC authentication uses 8 bytes at most)."""
    return secrets.token_urlsafe(6)[:8]


@dataclass(frozen=True)
class Guest:
    """What the guest agent last said about itself (``Desktop.guest_facts``), for pages."""

    os: str = ""
    hostname: str = ""
    addresses: tuple[str, ...] = ()
    users: tuple[str, ...] = ()

    @classmethod
    def of(cls, facts: dict[str, Any]) -> Guest:
        def words(key: str) -> tuple[str, ...]:
            found = facts.get(key) or ()
            return tuple(str(v) for v in found) if isinstance(found, list | tuple) else ()

        return cls(os=str(facts.get("os") or ""), hostname=str(facts.get("hostname") or ""),
                   addresses=words("addresses"), users=words("users"))

    def __bool__(self) -> bool:
        return bool(self.os or self.hostname or self.addresses or self.users)


class Desktop(models.Model):
    """A guest cloned from an image version. ``status`` moves only through ``vdi.state``.

    An install desktop has no pool and no image version: a blank disk and an installer ISO
    (``install_media``) on its CD-ROM, booted CD first; its owner installs through the console
    and publishes the disk as a new image version.

    A maintenance desktop has no pool but an image version: a linked clone of that version,
    persistent, its owner's; they change it through the console and publish it as the image's
    next version (``vdi.services.maintenance``).

    A deleted desktop leaves this table (its row would pin its pool, host and image version):
    ``DeletedDesktop`` keeps what it was, in words, for the history's retention period.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="desktops",
    )
    pool = models.ForeignKey(Pool, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="desktops")
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="desktops")
    image_version = models.ForeignKey(
        ImageVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="desktops"
    )
    install_media = models.ForeignKey(
        InstallMedia, null=True, blank=True, on_delete=models.PROTECT, related_name="desktops",
        help_text="An install desktop's installer ISO (on its CD-ROM, booted first).")
    install_profile = models.CharField(
        max_length=16, choices=Profile.choices, blank=True,
        help_text="An install desktop's virtual hardware (others take their image's).")
    install_disk_gib = models.PositiveIntegerField(
        null=True, blank=True, help_text="An install desktop's blank disk, in GiB.")
    domain_name = models.CharField(max_length=100, unique=True, editable=False)
    domain_uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    disk_path = models.CharField(max_length=500, editable=False)
    data_disk_path = models.CharField(
        max_length=500, blank=True, editable=False,
        help_text="The user's data disk (persistent pools); survives resets and new versions.",
    )
    assigned_at = models.DateTimeField(null=True, blank=True, editable=False,
                                       help_text="When the current user claimed it.")
    pristine = models.BooleanField(
        default=False, editable=False,
        help_text="Fresh from its image since its last user: only the worker's reset or "
                  "provisioning of an unassigned desktop sets it, a claim clears it. Only pristine "
                  "desktops are handed to the next user.")
    serial_log_path = models.CharField(max_length=500, editable=False)
    vcpus = models.PositiveSmallIntegerField()
    memory_mib = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=DesktopStatus.choices, default=DesktopStatus.PROVISIONING,
        db_index=True, editable=False,
    )
    last_error = models.TextField(blank=True, editable=False,
                                  help_text="Why the last action failed, in words for the user.")
    error_detail = models.TextField(blank=True, editable=False,
                                    help_text="The raw cause of the last failure, for operators.")
    display_protocol = models.CharField(
        max_length=5, choices=DisplayProtocol.choices, default=DisplayProtocol.VNC,
        editable=False, help_text="What its running guest's display speaks (set at boot).")
    vnc_host = models.CharField(
        max_length=100, blank=True, editable=False,
        help_text="Where the guest's VNC server listens, set by the worker.",
    )
    vnc_port = models.PositiveIntegerField(null=True, blank=True, editable=False)
    vnc_socket = models.CharField(max_length=300, blank=True, editable=False,
                                  help_text="Where the guest's VNC listens on a unix socket "
                                            "(hosts in their own namespaces), set by the worker.")
    vnc_password = models.CharField(
        max_length=8, blank=True, editable=False,
        help_text="The guest's VNC password; only the console proxy uses it.",
    )
    mac_address = models.CharField(max_length=17, blank=True, editable=False,
                                   help_text="Its network card's MAC (pools with a network).")
    guest_ready_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="When the guest said it is ready (agent, or serial marker) since its boot.")
    guest_facts = models.JSONField(
        default=dict, blank=True, editable=False,
        help_text="What the guest agent reports: OS, hostname, addresses, signed-in users.")
    backup_chain_broken = models.BooleanField(
        default=True, editable=False,
        help_text="Its next backup is a full one (none yet, or a revert or restore changed the "
                  "disks behind the checkpoints' back).")
    console_error = models.CharField(max_length=300, blank=True, editable=False,
                                     help_text="Why the last console connection failed.")
    console_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = custom_permissions()
        constraints = [
            models.UniqueConstraint(fields=["mac_address"], condition=~models.Q(mac_address=""),
                                    name="one_desktop_per_mac"),
            models.CheckConstraint(
                condition=(models.Q(pool__isnull=False, image_version__isnull=False,
                                    install_media__isnull=True)
                           | (models.Q(pool__isnull=True, image_version__isnull=True,
                                       install_media__isnull=False, install_disk_gib__gt=0)
                              & ~models.Q(install_profile=""))
                           | models.Q(pool__isnull=True, image_version__isnull=False,
                                      install_media__isnull=True, install_disk_gib__isnull=True,
                                      install_profile="")),
                name="from_an_image_installing_or_maintaining"),
        ]

    def __str__(self) -> str:
        if self.pool is not None:
            return f"{self.pool.name} #{self.pk}"
        if self.install_media_id is not None:
            return f"Install #{self.pk}"
        if self.image_version_id is not None:
            return f"Maintenance #{self.pk}"
        return self.domain_name

    @property
    def is_install(self) -> bool:
        """An install desktop (an installer ISO, no pool, no image)."""
        return self.install_media_id is not None

    @property
    def is_maintenance(self) -> bool:
        """A maintenance desktop (an image version, no pool): published as its next version."""
        return self.pool_id is None and self.image_version_id is not None

    @property
    def profile(self) -> str:
        """Its virtual hardware: its image version's, or what its installer was given."""
        if self.image_version is not None:
            return self.image_version.profile
        return self.install_profile

    @property
    def guest(self) -> Guest:
        """Its guest's OS, host name, addresses and signed-in users, as its agent said;
        nothing while it is not running (nobody is signed in to a stopped desktop)."""
        if self.status != DesktopStatus.RUNNING or not isinstance(self.guest_facts, dict):
            return Guest()
        return Guest.of(self.guest_facts)

    @property
    def is_transitional(self) -> bool:
        return self.status in TRANSITIONAL_STATUSES


class DeletedDesktop(models.Model):
    """What a deleted desktop was, in words: kept for ``VDI_HISTORY_DAYS``, then purged."""

    desktop_id = models.BigIntegerField(db_index=True)
    name = models.CharField(max_length=200)
    domain_name = models.CharField(max_length=100)
    pool_name = models.CharField(max_length=100)
    host_name = models.CharField(max_length=63)
    image_version = models.CharField(max_length=100)
    owner_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField()
    deleted_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-deleted_at"]

    def __str__(self) -> str:
        return f"{self.name} (deleted {self.deleted_at:%Y-%m-%d %H:%M})"
