"""Console tickets: issued to a signed-in user for one desktop, redeemed once by the proxy.

A ticket is random, single-use, short-lived, and bound to the user, the browser session and the
desktop. Only its SHA-256 is stored. It travels in the websocket subprotocol, never in a URL.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from vdi.choices import DesktopStatus
from vdi.console.codes import CloseCode
from vdi.models import ConsoleSession, ConsoleTicket, Desktop
from vdi.services import access
from vdi.services.access import Account, User
from vdi.services.errors import AccessDenied, NotReady

SUBPROTOCOL = "binary"
TICKET_PREFIX = "vdi-ticket."


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedTicket:
    ticket: str
    expires_in: int


@dataclass(frozen=True)
class ConsoleTarget:
    desktop_id: int
    desktop_name: str
    host: str
    port: int
    password: str = ""


@dataclass(frozen=True)
class Refusal:
    code: CloseCode
    reason: str


def issue_ticket(user: User, session_key: str | None, desktop: Desktop) -> IssuedTicket:
    if not access.can_manage_desktop(user, desktop) or not isinstance(user, Account):
        raise AccessDenied("You may not use this desktop's console.")
    if not session_key:
        raise AccessDenied("Your browser session has no key; sign in again.")
    if desktop.status != DesktopStatus.RUNNING:
        raise NotReady(f"The desktop is not running (it is {desktop.get_status_display()}).")
    raw = secrets.token_urlsafe(32)
    ConsoleTicket.objects.create(
        token_hash=digest(raw),
        user=user,
        session_hash=digest(session_key),
        desktop=desktop,
        expires_at=timezone.now() + timedelta(seconds=settings.CONSOLE_TICKET_SECONDS),
    )
    return IssuedTicket(ticket=raw, expires_in=settings.CONSOLE_TICKET_SECONDS)


def ticket_from_subprotocols(subprotocols: list[str]) -> str | None:
    for protocol in subprotocols:
        if protocol.startswith(TICKET_PREFIX) and len(protocol) > len(TICKET_PREFIX):
            return protocol[len(TICKET_PREFIX):]
    return None


def _redeem(raw: str, user: User, session_key: str | None, desktop_id: int) -> str | None:
    """Use the ticket up; None if it was good, else why it was refused."""
    ticket = ConsoleTicket.objects.filter(token_hash=digest(raw)).first()
    if ticket is None:
        return "unknown ticket"
    now = timezone.now()
    if ConsoleTicket.objects.filter(pk=ticket.pk, used_at__isnull=True).update(used_at=now) != 1:
        return "ticket already used"
    if ticket.expires_at <= now:
        return "ticket expired"
    if ticket.user_id != user.pk:
        return "ticket belongs to another user"
    if not session_key or ticket.session_hash != digest(session_key):
        return "ticket belongs to another browser session"
    if ticket.desktop_id != desktop_id:
        return "ticket is for another desktop"
    return None


def open_console(
    raw_ticket: str, user: User, session_key: str | None, desktop_id: int
) -> ConsoleTarget | Refusal:
    """Redeem the ticket and say where to connect, or why not."""
    problem = _redeem(raw_ticket, user, session_key, desktop_id)
    if problem is not None:
        return Refusal(CloseCode.TICKET_REFUSED, problem)
    desktop = Desktop.objects.filter(pk=desktop_id).first()
    if desktop is None or not access.can_manage_desktop(user, desktop):
        return Refusal(CloseCode.TICKET_REFUSED, "no access to this desktop")
    if desktop.status != DesktopStatus.RUNNING:
        return Refusal(CloseCode.NOT_RUNNING, f"desktop is {desktop.status}")
    if not desktop.vnc_port:
        return Refusal(CloseCode.VNC_UNREACHABLE, "the worker recorded no VNC endpoint")
    return ConsoleTarget(desktop.pk, str(desktop), desktop.vnc_host or "127.0.0.1",
                         desktop.vnc_port, desktop.vnc_password)


def record_console_error(desktop_id: int, user: User, reason: str) -> None:
    """Keep the last console failure on the desktop (for the page and the admin)."""
    desktop = Desktop.objects.filter(pk=desktop_id).first()
    if desktop is not None and access.can_manage_desktop(user, desktop):
        Desktop.objects.filter(pk=desktop_id).update(
            console_error=reason[:300], console_error_at=timezone.now()
        )


def purge_expired_tickets() -> int:
    cutoff = timezone.now() - timedelta(minutes=10)
    deleted, _ = ConsoleTicket.objects.filter(expires_at__lt=cutoff).delete()
    return deleted


def session_opened(desktop_id: int, user: User) -> int:
    session = ConsoleSession.objects.create(
        desktop_id=desktop_id, user=user if isinstance(user, Account) else None
    )
    return session.pk


def session_seen(session_id: int) -> None:
    ConsoleSession.objects.filter(pk=session_id).update(last_seen_at=timezone.now())


def session_closed(session_id: int) -> None:
    now = timezone.now()
    ConsoleSession.objects.filter(pk=session_id).update(last_seen_at=now, closed_at=now)
