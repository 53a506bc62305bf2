from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from vdi import networks
from vdi.choices import (
    Assignment,
    ClipboardPolicy,
    DisplayProtocol,
    ImageStatus,
    NetworkMode,
    Persistence,
    VersionPolicy,
)
from vdi.models.hosts import Host
from vdi.models.images import GoldenImage, ImageVersion
from vdi.names import validate_name


class Pool(models.Model):
    """A set of desktops of one image and size, granted to users and groups.

    Assignment and persistence follow what operators know from oVirt and Horizon: automatic
    pools lend any free desktop and take it back after use; dedicated pools give a desktop to
    one user until it is released. Non-persistent desktops go back to the golden image after
    use; persistent ones keep their changes and a separate data disk.
    """

    name = models.CharField(max_length=100, unique=True, validators=[validate_name])
    image = models.ForeignKey(GoldenImage, on_delete=models.PROTECT, related_name="pools")
    vcpus = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(64)]
    )
    memory_mib = models.PositiveIntegerField(
        default=256, validators=[MinValueValidator(128), MaxValueValidator(262144)]
    )
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    assignment = models.CharField(max_length=16, choices=Assignment.choices,
                                  default=Assignment.DEDICATED)
    persistence = models.CharField(max_length=16, choices=Persistence.choices,
                                   default=Persistence.NON_PERSISTENT)
    min_ready = models.PositiveSmallIntegerField(
        default=0, help_text="Desktops kept provisioned and running ahead of demand.")
    max_size = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1)], help_text="Most desktops in the pool.")
    max_per_user = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Desktops one user may hold.")
    data_disk_gib = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(2048)],
        help_text="Size of each user's data disk (persistent pools).")
    idle_minutes = models.PositiveIntegerField(
        default=0, help_text="With no console connected this long, the desktop is released "
        "(non-persistent) or stopped (persistent). 0: never.")
    max_session_minutes = models.PositiveIntegerField(
        default=0, help_text="After this long since it was claimed, the same happens. 0: never.")
    draining = models.BooleanField(
        default=False, help_text="No new claims; desktops in use keep running.")
    network_mode = models.CharField(
        max_length=8, choices=NetworkMode.choices, default=NetworkMode.NONE,
        help_text="Desktops go only to hosts that offer this network (a host lists its "
                  "bridges and NAT networks, and whether it allows isolated ones); 'the host's "
                  "default' takes whatever each host names as its default.")
    network_name = models.CharField(
        max_length=64, blank=True,
        help_text="NAT: the libvirt network (empty: 'default'); bridge: the bridge's name on "
                  "the hosts. Isolated networks are made per pool (vdi-pool-<id>).")
    display_protocol = models.CharField(
        max_length=5, choices=DisplayProtocol.choices, default=DisplayProtocol.VNC,
        help_text="VNC, or SPICE (sound, and a native remote-viewer client besides the "
                  "browser). Applies from each desktop's next boot.")
    clipboard = models.CharField(
        max_length=10, choices=ClipboardPolicy.choices, default=ClipboardPolicy.BOTH,
        help_text="Which way copied text may cross between the user's browser and the desktop; "
                  "the console's proxy enforces it.")
    watch_consent = models.BooleanField(
        default=False, help_text="The helpdesk may watch a desktop only once its user allows "
        "it, on their open console (the user can end the watching on any pool).")
    record_sessions = models.BooleanField(
        default=False, help_text="Record what its users' consoles show (they are told); "
        "administrators replay recordings for VDI_RECORDING_DAYS.")
    max_snapshots = models.PositiveIntegerField(
        default=100, help_text="Snapshots of this pool's (persistent) desktops, all together.")
    max_snapshot_gib = models.PositiveIntegerField(
        default=200, help_text="Space this pool's snapshots may take (GiB).")
    version_policy = models.CharField(max_length=8, choices=VersionPolicy.choices,
                                      default=VersionPolicy.LATEST)
    pinned_version = models.ForeignKey(
        "vdi.ImageVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The version its desktops get when the policy is 'pinned'.")
    serving_version = models.ForeignKey(
        "vdi.ImageVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        editable=False, help_text="What new and reset desktops get under 'latest': moved by "
        "rollouts once their canaries are healthy (empty: the newest ready version).")
    rollout_canary_percent = models.PositiveSmallIntegerField(
        default=20, help_text="Share of the idle desktops a new version is tried on first.")
    rollout_max_failed_percent = models.PositiveSmallIntegerField(
        default=0, help_text="Canaries that may fail before the rollout rolls back (percent).")
    rollout_health_seconds = models.PositiveIntegerField(
        default=300, help_text="A canary is healthy once its guest says it is ready within this.")
    backup_every_hours = models.PositiveIntegerField(
        default=0, help_text="Back up its persistent desktops this often (0: only when asked).")
    backup_keep_last = models.PositiveSmallIntegerField(
        default=3, help_text="Keep this many newest backups of each desktop, whatever their day.")
    backup_keep_daily = models.PositiveSmallIntegerField(
        default=7, help_text="Keep the newest backup of each of this many days.")
    backup_keep_weekly = models.PositiveSmallIntegerField(
        default=4, help_text="And of each of this many weeks.")
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="vdi_pools",
                                   help_text="Users entitled to this pool.")
    groups = models.ManyToManyField(Group, blank=True, related_name="vdi_pools",
                                    help_text="Groups whose members are entitled to this pool.")
    operators = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="vdi_operated_pools",
        help_text="Pool operators who manage this pool and its desktops (they also need the "
                  "'Pool operators' role). Being an operator does not entitle one to use it.")
    operator_groups = models.ManyToManyField(
        Group, blank=True, related_name="vdi_operated_pools",
        help_text="Groups whose members (with the 'Pool operators' role) manage this pool.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = (
            ("operate_pools", "Can manage the pools one is made an operator of"),
            ("use_any_pool", "Can get a desktop from any pool, granted or not"),
        )

    def __str__(self) -> str:
        return self.name

    @property
    def is_persistent(self) -> bool:
        return self.persistence == Persistence.PERSISTENT

    @property
    def is_automatic(self) -> bool:
        return self.assignment == Assignment.AUTOMATIC

    def version_for_new(self) -> ImageVersion | None:
        """The version a new or reset desktop of this pool gets."""
        if self.version_policy == VersionPolicy.PINNED and self.pinned_version is not None:
            return self.pinned_version
        if self.serving_version is not None and self.serving_version.status == ImageStatus.READY:
            return self.serving_version
        return self.image.latest_ready_version()

    def clean(self) -> None:
        errors = {}
        if self.min_ready > self.max_size:
            errors["min_ready"] = "Can't keep more desktops ready than the pool's maximum size."
        if self.is_automatic and self.is_persistent:
            errors["persistence"] = ("Automatic pools are non-persistent: their desktops pass "
                                     "from user to user. Use a dedicated pool for persistence.")
        if self.is_persistent and self.min_ready:
            errors["min_ready"] = ("Persistent desktops belong to their user from the start; "
                                   "they are not kept ready ahead of demand.")
        errors.update(networks.pool_errors(self) or self._network_hosts_errors())
        if self.version_policy == VersionPolicy.PINNED and (
                self.pinned_version is None or self.pinned_version.image_id != self.image_id):
            errors["pinned_version"] = "Pin one of the pool's image's versions."
        errors.update(self._spice_errors())
        if errors:
            raise ValidationError(errors)

    def _network_hosts_errors(self) -> dict[str, str]:
        """A network no host offers would leave every claim without a host: say so now."""
        if self.network_mode in (NetworkMode.NONE, NetworkMode.HOST):
            return {}
        if any(networks.fits(self, host) for host in Host.objects.all()):
            return {}
        return {"network_mode": networks.unfit(self.name or "this pool", self)}

    def _spice_errors(self) -> dict[str, str]:
        """SPICE's server takes the clipboard both ways or not at all, has one viewer per
        channel, and the recorder reads VNC."""
        if self.display_protocol != DisplayProtocol.SPICE:
            return {}
        errors = {}
        if self.clipboard not in (ClipboardPolicy.BOTH, ClipboardPolicy.OFF):
            errors["clipboard"] = ("SPICE desktops have the clipboard both ways or off; "
                                   "one-way policies need VNC.")
        if self.record_sessions:
            errors["record_sessions"] = ("Recording is for VNC pools; SPICE sessions can't be "
                                         "recorded.")
        if self.watch_consent:
            errors["watch_consent"] = ("SPICE shows a desktop to one viewer at a time, so the "
                                       "helpdesk can't watch it; use VNC for watched pools.")
        return errors


class UserQuota(models.Model):
    """Per-user limits; users without a row get the defaults from the settings."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="vdi_quota")
    max_desktops = models.PositiveSmallIntegerField(default=3)
    max_vcpus = models.PositiveSmallIntegerField(default=8)
    max_memory_mib = models.PositiveIntegerField(default=8192)
    max_snapshots = models.PositiveSmallIntegerField(
        default=10, help_text="Snapshots of this user's desktops, all together.")
    max_snapshot_gib = models.PositiveIntegerField(
        default=20, help_text="Space those snapshots may take (GiB).")

    def __str__(self) -> str:
        return f"quota of {self.user}"
