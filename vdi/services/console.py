"""Console tickets and the right to keep a console open.

A ticket is random, single-use, short-lived, and bound to the user, the browser session and
the desktop; only its SHA-256 is stored and it travels in the websocket subprotocol, never in a
URL. It says how the console opens: interactive (the owner, or someone who may use others'
consoles) or view-only (helpdesk watching; the user is told). Access is checked at connect
and again for as long as the console lasts (``still_allowed``): a disabled account, a changed
password, an ended session, a lost grant or role, or a desktop that changed hands ends it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from vdi.choices import ClipboardPolicy, DesktopStatus
from vdi.console.codes import CloseCode
from vdi.live import events as live
from vdi.models import ConsoleSession, ConsoleTicket, Desktop
from vdi.services import access
from vdi.services.access import Account, ConsoleMode, ScreenAccess, User
from vdi.services.errors import AccessDenied, NotReady

SUBPROTOCOL = "binary"
TICKET_PREFIX = "vdi-ticket."
# Offered by the portal's own console page: its noVNC draws a frame sent before it asks for
# one, so the proxy may ask for the first frame on its behalf (vdi.console.first_frame).
FIRST_FRAME_PROTOCOL = "vdi-first-frame"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedTicket:
    ticket: str
    expires_in: int
    view_only: bool


@dataclass(frozen=True)
class ConsoleTarget:
    desktop_id: int
    desktop_name: str
    host: str
    port: int
    password: str = ""
    view_only: bool = False
    as_owner: bool = True  # opened by its owner (else by someone holding a permission)
    socket: str = ""  # VNC on a unix socket instead of host:port
    clipboard: ClipboardPolicy = ClipboardPolicy.BOTH  # the pool's (install desktops: both)
    needs_consent: bool = False  # a watcher waits for the user's yes before any VNC byte
    record: bool = False  # the pool records its users' sessions

    @property
    def where(self) -> str:
        return self.socket or f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Refusal:
    code: CloseCode
    reason: str


def issue_ticket(user: User, session_key: str | None, desktop: Desktop) -> IssuedTicket:
    mode = access.console_mode(user, desktop)
    if mode is None or not isinstance(user, Account):
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
        view_only=mode is ConsoleMode.VIEW_ONLY,
    )
    return IssuedTicket(raw, settings.CONSOLE_TICKET_SECONDS, mode is ConsoleMode.VIEW_ONLY)


def ticket_from_subprotocols(subprotocols: list[str]) -> str | None:
    for protocol in subprotocols:
        if protocol.startswith(TICKET_PREFIX) and len(protocol) > len(TICKET_PREFIX):
            return protocol[len(TICKET_PREFIX):]
    return None


def _redeem(raw: str, user: User, session_key: str | None,
            desktop_id: int) -> ConsoleTicket | str:
    """Use the ticket up: the ticket if it was good, else why it was refused."""
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
    return ticket


def over_limits(user: User, desktop: Desktop) -> Refusal | None:
    fresh = ConsoleSession.objects.filter(
        closed_at__isnull=True,
        last_seen_at__gte=timezone.now() - timedelta(seconds=settings.CONSOLE_STALE))
    if fresh.filter(user_id=int(user.pk or 0)).count() >= settings.CONSOLE_MAX_PER_USER:
        return Refusal(CloseCode.TOO_MANY_CONSOLES,
                       f"already {settings.CONSOLE_MAX_PER_USER} consoles open for this user")
    if fresh.filter(desktop=desktop).count() >= settings.CONSOLE_MAX_PER_DESKTOP:
        return Refusal(CloseCode.DESKTOP_BUSY,
                       f"already {settings.CONSOLE_MAX_PER_DESKTOP} consoles on this desktop")
    return None


def open_console(
    raw_ticket: str, user: User, session_key: str | None, desktop_id: int
) -> ConsoleTarget | Refusal:
    """Redeem the ticket and say where to connect, or why not."""
    ticket = _redeem(raw_ticket, user, session_key, desktop_id)
    if isinstance(ticket, str):
        return Refusal(CloseCode.TICKET_REFUSED, ticket)
    desktop = Desktop.objects.filter(pk=desktop_id).first()
    mode = access.console_mode(user, desktop) if desktop is not None else None
    if desktop is None or mode is None:
        return Refusal(CloseCode.TICKET_REFUSED, "no access to this desktop")
    if desktop.status != DesktopStatus.RUNNING:
        return Refusal(CloseCode.NOT_RUNNING, f"desktop is {desktop.status}")
    if not desktop.vnc_port and not desktop.vnc_socket:
        return Refusal(CloseCode.VNC_UNREACHABLE, "the worker recorded no VNC endpoint")
    if (over := over_limits(user, desktop)) is not None:
        return over
    view_only = ticket.view_only or mode is ConsoleMode.VIEW_ONLY
    as_owner = desktop.owner_id == user.pk
    screen = access.screen_access(user, desktop)
    if screen is ScreenAccess.NONE:
        return Refusal(CloseCode.WATCH_REFUSED, "this desktop's screen can't be watched")
    needs_consent = bool(view_only and not as_owner and screen is ScreenAccess.WATCH_IF_ASKED)
    if needs_consent and not _owner_connected(desktop):
        return Refusal(CloseCode.WATCH_REFUSED, "its user has no console open to ask")
    return ConsoleTarget(desktop.pk, str(desktop), desktop.vnc_host or "127.0.0.1",
                         desktop.vnc_port or 0, desktop.vnc_password, view_only=view_only,
                         as_owner=as_owner, socket=desktop.vnc_socket,
                         clipboard=clipboard_policy(desktop), needs_consent=needs_consent,
                         record=bool(desktop.pool and desktop.pool.record_sessions
                                     and not view_only))


def _owner_connected(desktop: Desktop) -> bool:
    if desktop.owner_id is None:
        return False
    fresh = timezone.now() - timedelta(seconds=settings.CONSOLE_STALE)
    return ConsoleSession.objects.filter(
        desktop=desktop, user_id=desktop.owner_id, view_only=False, closed_at__isnull=True,
        last_seen_at__gte=fresh).exists()


def clipboard_policy(desktop: Desktop) -> ClipboardPolicy:
    return ClipboardPolicy(desktop.pool.clipboard) if desktop.pool else ClipboardPolicy.BOTH


def _session_refusal(user_id: int, session_key: str | None) -> Refusal | None:
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    data = store.load() if session_key and store.exists(session_key) else {}
    if str(data.get(SESSION_KEY, "")) != str(user_id):
        return Refusal(CloseCode.SESSION_ENDED, "the browser session ended")
    user = Account.objects.filter(pk=user_id).first()
    if user is None or not user.is_active:
        return Refusal(CloseCode.ACCOUNT_CLOSED, "the account was disabled or deleted")
    if not constant_time_compare(data.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()):
        return Refusal(CloseCode.CREDENTIALS_CHANGED, "the password changed")
    return None


def still_allowed(target: ConsoleTarget, user_id: int, session_key: str | None
                  ) -> Refusal | None:
    """Why an open console must end now, or None while everything that allowed it holds."""
    if (refusal := _session_refusal(user_id, session_key)) is not None:
        return refusal
    user = Account.objects.get(pk=user_id)
    desktop = Desktop.objects.select_related("pool").filter(pk=target.desktop_id).first()
    if desktop is None or desktop.status != DesktopStatus.RUNNING:
        return Refusal(CloseCode.DESKTOP_STOPPED, "the desktop stopped")
    if target.as_owner and desktop.owner_id != user_id:
        return Refusal(CloseCode.HANDED_OVER, "the desktop changed hands")
    if target.as_owner and not access.owner_may_keep(user, desktop):
        return Refusal(CloseCode.ACCESS_REVOKED, "the pool is no longer granted")
    mode = access.console_mode(user, desktop)
    if mode is None or (mode is ConsoleMode.VIEW_ONLY and not target.view_only):
        return Refusal(CloseCode.ACCESS_REVOKED, "the role that allowed it was taken away")
    return None


def record_console_error(desktop_id: int, user: User, reason: str) -> None:
    """Keep the last console failure on the desktop (for the page and the admin)."""
    desktop = Desktop.objects.filter(pk=desktop_id).first()
    if desktop is not None and access.can_see_desktop(user, desktop):
        Desktop.objects.filter(pk=desktop_id).update(
            console_error=reason[:300], console_error_at=timezone.now()
        )


def purge_expired_tickets() -> int:
    cutoff = timezone.now() - timedelta(minutes=10)
    deleted, _ = ConsoleTicket.objects.filter(expires_at__lt=cutoff).delete()
    return deleted


def session_opened(desktop_id: int, user: User, view_only: bool,
                   client_address: str | None) -> int | None:
    """The open console's row; None when its desktop or account went away meanwhile."""
    try:
        with transaction.atomic():
            session = ConsoleSession.objects.create(
                desktop_id=desktop_id, user=user if isinstance(user, Account) else None,
                view_only=view_only, client_address=client_address)
    except IntegrityError:
        return None
    live.desktop_changed(desktop_id)  # its idle countdown stops
    return session.pk


def _byte_counts(relayed: tuple[int, int] | None) -> dict[str, int]:
    """The session's totals so far (to the browser, to the guest), when the proxy counts."""
    if relayed is None:
        return {}
    return {"bytes_to_browser": relayed[0], "bytes_to_guest": relayed[1]}


def session_seen(session_id: int, relayed: tuple[int, int] | None = None) -> None:
    ConsoleSession.objects.filter(pk=session_id).update(last_seen_at=timezone.now(),
                                                        **_byte_counts(relayed))


def session_closed(session_id: int, relayed: tuple[int, int] | None = None) -> None:
    now = timezone.now()
    ConsoleSession.objects.filter(pk=session_id).update(last_seen_at=now, closed_at=now,
                                                        **_byte_counts(relayed))
    desktop_id = ConsoleSession.objects.filter(pk=session_id).values_list(
        "desktop_id", flat=True).first()
    if desktop_id is not None:
        live.desktop_changed(desktop_id)  # its idle countdown starts


def watchers(desktop: Desktop) -> list[str]:
    """Who watches the desktop's console right now (for its user's page)."""
    fresh = timezone.now() - timedelta(seconds=settings.CONSOLE_STALE)
    sessions = ConsoleSession.objects.filter(
        desktop=desktop, view_only=True, closed_at__isnull=True, last_seen_at__gte=fresh)
    return sorted({s.user.get_username() for s in sessions.select_related("user") if s.user})
