from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from vdi import networks
from vdi.choices import DomainTypeChoice, NetworkMode
from vdi.names import validate_name

host_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z",
    "Use letters, digits, dots, dashes and underscores (a Celery queue is named after the host).",
)


class Host(models.Model):
    """A hypervisor host; one Celery worker consumes its queue and talks to its libvirt."""

    name = models.CharField(max_length=63, unique=True,
                            validators=[validate_name, host_name_validator])
    libvirt_uri = models.CharField(max_length=255, default="qemu:///system")
    domain_type = models.CharField(
        max_length=8, choices=DomainTypeChoice.choices, default=DomainTypeChoice.AUTO
    )
    resolved_domain_type = models.CharField(
        max_length=8, blank=True, help_text="What 'auto' resolved to when the host was probed."
    )
    domain_type_reason = models.CharField(
        max_length=300, blank=True, editable=False,
        help_text="Why the host's domain type is what it is, in words (the probe's verdict).")
    storage_dir = models.CharField(max_length=255, help_text="Folder for desktop disks.")
    vnc_socket_dir = models.CharField(
        max_length=255, blank=True,
        help_text="Guests' VNC on unix sockets in this folder (which the portal must see), "
                  "for a host whose loopback the portal can't reach (its own namespaces). "
                  "Empty: VNC on the host's 127.0.0.1.")
    cpu_capacity = models.PositiveIntegerField(default=8, validators=[MinValueValidator(1)])
    memory_capacity_mib = models.PositiveIntegerField(
        default=8192, validators=[MinValueValidator(128)]
    )
    network_mode = models.CharField(
        "default network", max_length=8, choices=NetworkMode.for_hosts(),
        default=NetworkMode.NONE,
        help_text="What desktops of a pool whose network is 'the host's default' join here.")
    network_name = models.CharField(
        "default network's name", max_length=64, blank=True,
        help_text="NAT: the libvirt network (empty: 'default'); bridge: the bridge's name on "
                  "this host (e.g. br0).")
    bridges = models.CharField(
        max_length=255, blank=True,
        help_text="Bridges on this host that desktops may join, separated by spaces (e.g. "
                  "'br0 br-lab'). A pool that names another bridge is never placed here.")
    nat_networks = models.CharField(
        "NAT networks", max_length=255, blank=True,
        help_text="libvirt NAT networks defined on this host, separated by spaces (e.g. "
                  "'default').")
    isolated_networks = models.BooleanField(
        default=False,
        help_text="The worker may make isolated networks here (a bridge and DHCP per pool, "
                  "no forwarding; needs dnsmasq). Leave off on a host whose network namespace "
                  "must get no bridge (the build machines' own libvirtd).")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="When its worker last said it is there (beat sends it a heartbeat task on "
                  "its queue every VDI_HEARTBEAT_INTERVAL s).")
    heartbeat_error = models.CharField(
        max_length=300, blank=True, editable=False,
        help_text="What its worker found wrong at that heartbeat (its libvirt not answering); "
                  "empty when all was well.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = networks.host_errors(self)
        if errors:
            raise ValidationError(errors)

    @property
    def offered_networks(self) -> str:
        """The networks it offers, in words (its default first)."""
        default = networks.host_default(self)
        others = [str(n) for n in networks.offered(self) if n not in (default, networks.NO_NETWORK)]
        words = f"default: {default}"
        return f"{words}; also {', '.join(others)}" if others else words

    @property
    def queue(self) -> str:
        """The Celery queue its worker consumes."""
        return f"host.{self.name}"

    @property
    def effective_domain_type(self) -> str:
        if self.domain_type != DomainTypeChoice.AUTO:
            return self.domain_type
        return self.resolved_domain_type
