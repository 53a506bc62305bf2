from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models

from vdi.actions import custom_permissions
from vdi.choices import TRANSITIONAL_STATUSES, DesktopStatus
from vdi.models.hosts import Host
from vdi.models.images import ImageVersion
from vdi.models.pools import Pool


def new_mac_address() -> str:
    """A random MAC in QEMU's locally administered range (52:54:00:...)."""
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def new_vnc_password() -> str:
    """A random VNC password (VNC authentication uses 8 bytes at most)."""
    return secrets.token_urlsafe(6)[:8]


class Desktop(models.Model):
    """A guest cloned from an image version. ``status`` moves only through ``vdi.state``.

    A deleted desktop leaves this table (its row would pin its pool, host and image version):
    ``DeletedDesktop`` keeps what it was, in words, for the history's retention period.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="desktops",
    )
    pool = models.ForeignKey(Pool, on_delete=models.PROTECT, related_name="desktops")
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="desktops")
    image_version = models.ForeignKey(
        ImageVersion, on_delete=models.PROTECT, related_name="desktops"
    )
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
    console_error = models.CharField(max_length=300, blank=True, editable=False,
                                     help_text="Why the last console connection failed.")
    console_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = custom_permissions()
        constraints = [models.UniqueConstraint(
            fields=["mac_address"], condition=~models.Q(mac_address=""),
            name="one_desktop_per_mac")]

    def __str__(self) -> str:
        return f"{self.pool.name} #{self.pk}" if self.pool_id else self.domain_name

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
