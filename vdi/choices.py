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
    PUBLISHING = "publishing", "publishing as an image"
    SNAPSHOTTING = "snapshotting", "working on a snapshot"
    REVERTING = "reverting", "reverting to a snapshot"
    BACKING_UP = "backing_up", "backing up"
    RESTORING = "restoring", "restoring a backup"
    ERROR = "error", "error"


TRANSITIONAL_STATUSES = frozenset(
    {
        DesktopStatus.PROVISIONING,
        DesktopStatus.STARTING,
        DesktopStatus.STOPPING,
        DesktopStatus.RESTARTING,
        DesktopStatus.RESETTING,
        DesktopStatus.DELETING,
        DesktopStatus.PUBLISHING,
        DesktopStatus.SNAPSHOTTING,
        DesktopStatus.REVERTING,
        DesktopStatus.BACKING_UP,
        DesktopStatus.RESTORING,
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


class Profile(models.TextChoices):
    """Machine profiles (``vdi.hypervisor.MachineProfile``): the guest's virtual hardware."""

    TINY = "tiny", "tiny (busybox test guest)"
    LINUX_DESKTOP = "linux-desktop", "Linux desktop (q35, virtio, guest agent)"
    WINDOWS = "windows", "Windows (UEFI Secure Boot, TPM 2.0, Hyper-V, SATA)"


class Readiness(models.TextChoices):
    """How the worker knows a booted guest is ready for its user."""

    SERIAL = "serial", "a marker on the serial port"
    AGENT = "agent", "the guest agent answers (and the session runs)"
    NONE = "none", "booted is ready (no signal from the guest)"


class NetworkMode(models.TextChoices):
    """A desktop's network (``vdi.networks``); ``host`` is a pool's only: each host's own
    default network."""

    NONE = "none", "no network card"
    ISOLATED = "isolated", "an isolated network of the pool's own on each host"
    NAT = "nat", "a libvirt NAT network (outbound access through the host)"
    BRIDGE = "bridge", "an existing bridge on each host (the site's LAN)"
    HOST = "host", "the host's default network (each host says which)"

    @classmethod
    def for_hosts(cls) -> list[tuple[str, str]]:
        """What a host's default network may be (a network, not 'the host's')."""
        return [(value, label) for value, label in cls.choices if value != cls.HOST]


class DisplayProtocol(models.TextChoices):
    """How a desktop's screen reaches the browser (or a native client)."""

    VNC = "vnc", "VNC (noVNC)"
    SPICE = "spice", "SPICE (spice-html5, audio, remote-viewer)"


class ClipboardPolicy(models.TextChoices):
    """Which way text may cross between the browser's clipboard and the guest's."""

    BOTH = "both", "both ways"
    TO_GUEST = "to_guest", "into the desktop only"
    FROM_GUEST = "from_guest", "out of the desktop only"
    OFF = "off", "off"

    @property
    def to_guest(self) -> bool:
        return self in (ClipboardPolicy.BOTH, ClipboardPolicy.TO_GUEST)

    @property
    def from_guest(self) -> bool:
        return self in (ClipboardPolicy.BOTH, ClipboardPolicy.FROM_GUEST)


class KeyboardLayout(models.TextChoices):
    """The keyboard a user types on: the XKB layout their desktops' sessions get. The browser
    sends physical keys (QEMU's extended key events), so the guest's layout decides the
    characters, dead keys included."""

    US = "us", "English (US)"
    GB = "gb", "English (UK)"
    DE = "de", "German"
    CH = "ch", "German (Switzerland)"
    FR = "fr", "French (AZERTY)"
    BE = "be", "Belgian (AZERTY)"
    ES = "es", "Spanish"
    IT = "it", "Italian"
    PT = "pt", "Portuguese"
    NL = "nl", "Dutch"
    SE = "se", "Swedish"
    NO = "no", "Norwegian"
    DK = "dk", "Danish"
    FI = "fi", "Finnish"
    PL = "pl", "Polish"


class ImageOperation(models.TextChoices):
    """Operations on images (desktop actions are in ``vdi.actions``)."""

    BUILD = "build_image", "build an image"
    IMPORT = "import_image", "import an image"


class SnapshotKind(models.TextChoices):
    """Live: taken while running, by libvirt, memory and every disk (a revert resumes the
    session). Offline: taken while stopped, by ``qemu-img`` on the system disk and, if asked,
    the data disk (works with UEFI firmware too)."""

    LIVE = "live", "live (memory and all disks)"
    OFFLINE = "offline", "offline (disks of a stopped desktop)"


class SnapshotStatus(models.TextChoices):
    CREATING = "creating", "being taken"
    READY = "ready", "ready"
    DELETING = "deleting", "being deleted"


class BackupKind(models.TextChoices):
    FULL = "full", "full"
    INCREMENTAL = "incremental", "incremental (what changed since the one before)"


class BackupStatus(models.TextChoices):
    RUNNING = "running", "being made"
    READY = "ready", "ready (verified)"


class VersionPolicy(models.TextChoices):
    LATEST = "latest", "the latest version (each new one rolls out, canary first)"
    PINNED = "pinned", "a pinned version"


class RolloutStatus(models.TextChoices):
    CANARY = "canary", "trying the canaries"
    ROLLING_BACK = "rolling_back", "rolling back the canaries"
    PAUSED = "paused", "paused"
    DONE = "done", "done: the pool serves the new version"
    ROLLED_BACK = "rolled_back", "rolled back: the pool stays on the old version"
