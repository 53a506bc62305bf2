"""Models of the VDI domain, one module a noun."""

from vdi.models.audit import AuditEvent
from vdi.models.console import ConsoleTicket
from vdi.models.desktops import Desktop
from vdi.models.hosts import Host
from vdi.models.images import GoldenImage, ImageVersion
from vdi.models.operations import Operation
from vdi.models.pools import Pool

__all__ = [
    "AuditEvent", "ConsoleTicket", "Desktop", "GoldenImage", "Host", "ImageVersion", "Operation",
    "Pool",
]
