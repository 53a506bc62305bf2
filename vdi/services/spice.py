"""Who may link which SPICE channel: one ticket opens one console session, whose channels
join it within seconds.

A SPICE console is several connections (main, display, inputs, cursor, sound), each with its
own link and password step; the password is the portal ticket. The main channel redeems the
ticket and opens the session; the other channels join it only while it is open, within
``VDI_SPICE_JOIN_SECONDS`` of its start, and from the same browser session (a browser's
console) or the same address (a native client's ``.vv`` ticket). A channel arriving late,
from elsewhere, or after the main channel closed is refused, and so is a second main channel.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from vdi.choices import DesktopStatus, DisplayProtocol
from vdi.console.codes import CloseCode
from vdi.console.spice_link import Channel
from vdi.models import ConsoleTicket, Desktop
from vdi.services import access
from vdi.services.access import Account, ConsoleMode, ScreenAccess, User
from vdi.services.console import (
    ConsoleTarget,
    IssuedTicket,
    Refusal,
    clipboard_policy,
    digest,
    over_limits,
)
from vdi.services.errors import AccessDenied, NotReady


@dataclass(frozen=True)
class Caller:
    """Where a channel comes from: a signed-in browser session, or a native client (the
    ticket says whose)."""

    user: User | None
    session_key: str | None
    address: str | None

    @property
    def native(self) -> bool:
        return self.user is None


@dataclass(frozen=True)
class Joined:
    target: ConsoleTarget
    ticket_id: int
    user_id: int
    main: bool


def issue_native_ticket(user: User, session_key: str | None, desktop: Desktop) -> IssuedTicket:
    """The password of a ``.vv`` file: single use, for a minute at most, for its owner's
    interactive console only."""
    mode = access.console_mode(user, desktop)
    if not isinstance(user, Account) or mode != ConsoleMode.INTERACTIVE:
        raise AccessDenied("You may not use this desktop's console.")
    if desktop.status != DesktopStatus.RUNNING:
        raise NotReady(f"The desktop is not running (it is {desktop.get_status_display()}).")
    if desktop.display_protocol != DisplayProtocol.SPICE:
        raise NotReady("This desktop shows its screen over VNC; native SPICE clients need a "
                       "SPICE pool.")
    raw = secrets.token_urlsafe(32)
    seconds = settings.SPICE_VV_TICKET_SECONDS
    ConsoleTicket.objects.create(
        token_hash=digest(raw), user=user, session_hash=digest(session_key or ""),
        desktop=desktop, native=True,
        expires_at=timezone.now() + timedelta(seconds=seconds))
    return IssuedTicket(raw, seconds, view_only=False)


def may_join(user_id: int, desktop_id: int) -> bool:
    """Before a non-main channel reaches QEMU: this user has a session open to join."""
    return ConsoleTicket.objects.filter(
        user_id=user_id, desktop_id=desktop_id, used_at__isnull=False, ended_at__isnull=True,
        joins_until__gte=timezone.now()).exists()


def native_link_expected(desktop_id: int, channel: int, address: str | None) -> bool:
    """Before a native client's channel reaches QEMU (its ticket comes only after QEMU's
    link reply): a ``.vv`` password of this desktop is waiting to be used (the main
    channel), or its session is open to channels from this address (the others). An
    anonymous link with no ticket issued never makes the gateway connect to QEMU."""
    now = timezone.now()
    tickets = ConsoleTicket.objects.filter(desktop_id=desktop_id, native=True)
    if channel == Channel.MAIN:
        return tickets.filter(used_at__isnull=True, expires_at__gt=now).exists()
    return tickets.filter(used_at__isnull=False, ended_at__isnull=True, joins_until__gte=now,
                          client_address=address).exists()


def endpoint(desktop_id: int, user: User | None) -> tuple[str, int, str] | Refusal:
    """Where the desktop's SPICE server listens (host, port, socket), checked before the
    proxy opens a connection to it: a browser's user must have its console."""
    desktop = Desktop.objects.filter(pk=desktop_id).first()
    if desktop is None or (user is not None and access.console_mode(user, desktop) is None):
        return _refused("no access to this desktop")
    if desktop.status != DesktopStatus.RUNNING:
        return Refusal(CloseCode.NOT_RUNNING, f"desktop is {desktop.status}")
    if desktop.display_protocol != DisplayProtocol.SPICE or not (
            desktop.vnc_port or desktop.vnc_socket):
        return Refusal(CloseCode.VNC_UNREACHABLE, "the desktop has no SPICE display")
    return desktop.vnc_host or "127.0.0.1", desktop.vnc_port or 0, desktop.vnc_socket


def join(raw: str | None, channel: int, desktop_id: int, caller: Caller) -> Joined | Refusal:
    """Let the channel in (the main one opens the session), or say why not."""
    ticket = ConsoleTicket.objects.filter(token_hash=digest(raw)).first() if raw else None
    if ticket is None:
        return _refused("unknown ticket")
    if (why := _binding_refusal(ticket, caller, desktop_id)) is not None:
        return _refused(why)
    if channel == Channel.MAIN:
        if (why := _open_session(ticket, caller)) is not None:
            return _refused(why)
    elif (why := _join_refusal(ticket, caller)) is not None:
        return _refused(why)
    user = Account.objects.filter(pk=ticket.user_id, is_active=True).first()
    if user is None:
        return Refusal(CloseCode.ACCOUNT_CLOSED, "the account was disabled or deleted")
    target = _target(user, desktop_id, main=channel == Channel.MAIN)
    if isinstance(target, Refusal):
        return target
    return Joined(target, ticket.pk, int(user.pk), channel == Channel.MAIN)


def _refused(reason: str) -> Refusal:
    return Refusal(CloseCode.TICKET_REFUSED, reason)


def _binding_refusal(ticket: ConsoleTicket, caller: Caller, desktop_id: int) -> str | None:
    if ticket.desktop_id != desktop_id:
        return "ticket is for another desktop"
    if caller.native:
        return None if ticket.native else "a browser's ticket used by a native client"
    if ticket.native:
        return "a native client's ticket used in a browser"
    if caller.user is None or ticket.user_id != caller.user.pk:
        return "ticket belongs to another user"
    if not caller.session_key or ticket.session_hash != digest(caller.session_key):
        return "ticket belongs to another browser session"
    return None


def _open_session(ticket: ConsoleTicket, caller: Caller) -> str | None:
    now = timezone.now()
    opened = ConsoleTicket.objects.filter(pk=ticket.pk, used_at__isnull=True).update(
        used_at=now, joins_until=now + timedelta(seconds=settings.SPICE_JOIN_SECONDS),
        client_address=caller.address)
    if opened != 1:
        return "ticket already used"
    if ticket.expires_at <= now:
        return "ticket expired"
    return None


def _join_refusal(ticket: ConsoleTicket, caller: Caller) -> str | None:
    if ticket.used_at is None:
        return "no session to join yet (the main channel links first)"
    if ticket.ended_at is not None:
        return "the session ended"
    if ticket.joins_until is None or ticket.joins_until < timezone.now():
        return "the channel joined too late"
    if caller.native and caller.address != ticket.client_address:
        return "the channel came from another address"
    return None


def _target(user: Account, desktop_id: int, main: bool) -> ConsoleTarget | Refusal:
    desktop = Desktop.objects.select_related("pool").filter(pk=desktop_id).first()
    mode = access.console_mode(user, desktop) if desktop is not None else None
    if desktop is None or mode is None:
        return _refused("no access to this desktop")
    if access.screen_access(user, desktop) is not ScreenAccess.USE:
        return Refusal(CloseCode.WATCH_REFUSED,
                       "SPICE shows a desktop to one viewer at a time: it can't be watched")
    if desktop.status != DesktopStatus.RUNNING:
        return Refusal(CloseCode.NOT_RUNNING, f"desktop is {desktop.status}")
    if desktop.display_protocol != DisplayProtocol.SPICE or not (
            desktop.vnc_port or desktop.vnc_socket):
        return Refusal(CloseCode.VNC_UNREACHABLE, "the desktop has no SPICE display")
    if main and (over := over_limits(user, desktop)) is not None:
        return over
    return ConsoleTarget(desktop.pk, str(desktop), desktop.vnc_host or "127.0.0.1",
                         desktop.vnc_port or 0, desktop.vnc_password,
                         as_owner=desktop.owner_id == user.pk, socket=desktop.vnc_socket,
                         clipboard=clipboard_policy(desktop))


def end_session(ticket_id: int) -> None:
    """The main channel closed: no channel joins this session any more."""
    ConsoleTicket.objects.filter(pk=ticket_id, ended_at__isnull=True).update(
        ended_at=timezone.now())



def still_allowed_native(joined: Joined) -> Refusal | None:
    """Why a native client's channel must end now (it has no browser session to follow)."""
    user = Account.objects.filter(pk=joined.user_id, is_active=True).first()
    if user is None:
        return Refusal(CloseCode.ACCOUNT_CLOSED, "the account was disabled or deleted")
    desktop = Desktop.objects.select_related("pool").filter(pk=joined.target.desktop_id).first()
    if desktop is None or desktop.status != DesktopStatus.RUNNING:
        return Refusal(CloseCode.DESKTOP_STOPPED, "the desktop stopped")
    if joined.target.as_owner and (desktop.owner_id != user.pk
                                   or not access.owner_may_keep(user, desktop)):
        return Refusal(CloseCode.HANDED_OVER, "the desktop changed hands or its grant went")
    if access.console_mode(user, desktop) is not ConsoleMode.INTERACTIVE:
        return Refusal(CloseCode.ACCESS_REVOKED, "the role that allowed it was taken away")
    return None
