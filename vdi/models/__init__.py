"""Models of the VDI domain, one module a noun."""

from vdi.models.audit import AuditEvent
from vdi.models.backups import Backup
from vdi.models.claims import ClaimTiming
from vdi.models.console import ConsoleSession, ConsoleTicket
from vdi.models.desktops import DeletedDesktop, Desktop
from vdi.models.directory import DirectoryMembership
from vdi.models.hosts import Host
from vdi.models.images import GoldenImage, ImageVersion
from vdi.models.media import InstallMedia
from vdi.models.operations import Operation
from vdi.models.pools import Pool, UserQuota
from vdi.models.preferences import Preferences
from vdi.models.reconcile import ReconcileRun, Stray
from vdi.models.recordings import Recording
from vdi.models.rollouts import Rollout
from vdi.models.snapshots import Snapshot
from vdi.models.tokens import ApiToken
from vdi.models.transfers import FileTransfer
from vdi.models.webhooks import Webhook, WebhookDelivery

__all__ = [
    "ApiToken", "AuditEvent", "Backup", "ClaimTiming", "ConsoleSession", "ConsoleTicket",
    "DeletedDesktop", "Desktop", "DirectoryMembership", "FileTransfer", "GoldenImage",
    "Host", "ImageVersion", "InstallMedia", "Operation", "Pool", "Preferences", "ReconcileRun",
    "Recording", "Rollout", "Snapshot", "Stray", "UserQuota", "Webhook", "WebhookDelivery",
]
