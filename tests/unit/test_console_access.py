"""A console is authorized for as long as it lasts: every change that takes the right away
closes it within seconds, with its own close code and an audit row, and not one more key
reaches the guest. Helpdesk watching is view-only and the user is told. Floods, limits and a
VNC server that skips the password are refused."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import pytest
from django.test import Client

from tests.console_helpers import (
    GREETING,
    FakeVnc,
    arrives,
    communicator,
    expect_close,
    opened,
    run,
    session_cookie,
    ticket_for,
    with_vnc,
)
from vdi.console import guards
from vdi.console.codes import CloseCode
from vdi.models import AuditEvent, Desktop

pytestmark = pytest.mark.django_db(transaction=True)

UPDATE_REQUEST = struct.pack("!BBHHHH", 3, 0, 0, 0, 640, 400)


async def ticket(user: Any, session: str, desktop: Desktop) -> str:
    return await asyncio.to_thread(ticket_for, user, session, desktop)


def key(keysym: int, down: bool = True) -> bytes:
    return struct.pack("!BBHI", 4, int(down), 0, keysym)


POINTER = struct.pack("!BBHH", 5, 1, 10, 20)
CLIPBOARD = struct.pack("!BxxxI", 6, 5) + b"hello"
QEMU_KEY = struct.pack("!BBHII", 255, 0, 1, 0x61, 30)


def deactivate(owner, desktop) -> None:
    owner.is_active = False
    owner.save()


def delete(owner, desktop) -> None:
    owner.delete()


def change_password(owner, desktop) -> None:
    client = Client()
    client.force_login(owner)
    response = client.post("/accounts/password/change/", {
        "oldpassword": "owner-password", "password1": "A-new-pass-4-owner",
        "password2": "A-new-pass-4-owner"})
    assert response.status_code == 302, response.content[:500]


def reset_password(owner, desktop) -> None:
    owner.set_password("Reset-by-the-mail-link-9")
    owner.save()


def real_sign_in(user) -> str:
    """Sign in through the sign-in page (so allauth knows the browser session)."""
    browser = Client()
    response = browser.post("/accounts/login/", {"login": user.username,
                                                 "password": f"{user.username}-password"})
    assert response.status_code == 302, response.content[:300]
    return str(browser.cookies["sessionid"].value)


def end_other_sessions(owner, desktop) -> None:
    from allauth.usersessions.models import UserSession

    elsewhere = Client()
    elsewhere.cookies["sessionid"] = real_sign_in(owner)
    assert UserSession.objects.filter(user=owner).count() == 2, "both browsers are known"
    assert elsewhere.post("/accounts/sessions/").status_code == 302
    assert UserSession.objects.filter(user=owner).count() == 1


def take_the_grant_away(owner, desktop) -> None:
    desktop.pool.users.remove(owner)


def release_by_an_admin(owner, desktop) -> None:
    from django.contrib.auth import get_user_model

    from vdi.services.desktops import request_action

    boss = get_user_model().objects.create_superuser("releaser", password="x")
    request_action(boss, Desktop.objects.get(pk=desktop.pk), "release")


CHANGES = {
    "account disabled": (deactivate, CloseCode.ACCOUNT_CLOSED),
    "account deleted": (delete, CloseCode.ACCOUNT_CLOSED),
    "password changed": (change_password, CloseCode.CREDENTIALS_CHANGED),
    "password reset": (reset_password, CloseCode.CREDENTIALS_CHANGED),
    "signed out from another browser": (end_other_sessions, CloseCode.SESSION_ENDED),
    "pool grant taken away": (take_the_grant_away, CloseCode.ACCESS_REVOKED),
    "desktop released to the pool": (release_by_an_admin, CloseCode.HANDED_OVER),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_an_account_change_closes_the_open_console(change, owner, running_desktop, empty_queue):
    act, code = CHANGES[change]
    session = real_sign_in(owner)

    async def body(vnc: FakeVnc) -> None:
        ws = await opened(owner, session, running_desktop)
        await ws.send_to(bytes_data=key(0x61))
        await arrives(vnc, key(0x61))
        await asyncio.to_thread(act, owner, running_desktop)
        assert await ws.receive_output(timeout=10) == {"type": "websocket.close",
                                                       "code": code}
        await asyncio.wait_for(vnc.closed_by_peer.wait(), 5)
        assert vnc.received.count(key(0x61)) == 1, "nothing more reached the guest"

    run(with_vnc, running_desktop, body)
    revoked = AuditEvent.objects.get(action="console.revoked")
    assert revoked.details["code"] == code and revoked.details["desktop"] == running_desktop.pk


def test_a_lost_role_closes_a_watching_console(running_desktop, helpdesk):
    session = session_cookie(helpdesk)

    async def body(vnc: FakeVnc) -> None:
        ws = await opened(helpdesk, session, running_desktop)
        assert ws.notices == [{"notice": "view_only"}]
        await asyncio.to_thread(helpdesk.groups.clear)
        assert await ws.receive_output(timeout=10) == {
            "type": "websocket.close", "code": CloseCode.ACCESS_REVOKED}

    run(with_vnc, running_desktop, body)


def test_the_periodic_check_closes_a_console_whose_session_vanished(owner, running_desktop,
                                                                   settings):
    """No notice at all (the session row went behind the portal's back): the console still
    closes at its next access check."""
    from django.contrib.sessions.models import Session

    settings.CONSOLE_RECHECK = 1
    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        ws = await opened(owner, session, running_desktop)
        await asyncio.to_thread(
            lambda: Session.objects.filter(session_key=session)._raw_delete("default"))
        assert await ws.receive_output(timeout=10) == {
            "type": "websocket.close", "code": CloseCode.SESSION_ENDED}

    run(with_vnc, running_desktop, body)


# --- helpdesk ----------------------------------------------------------------------------------

def test_helpdesk_watches_without_typing_and_the_user_is_told(owner, helpdesk, running_desktop):
    owner_session, helper_session = session_cookie(owner), session_cookie(helpdesk)

    async def body(vnc: FakeVnc) -> None:
        users = await opened(owner, owner_session, running_desktop)
        watcher = await opened(helpdesk, helper_session, running_desktop)
        assert watcher.notices == [{"notice": "view_only"}]
        assert json.loads(await users.receive_from(timeout=5)) == {
            "notice": "watched", "by": "helper"}, "the user is told, on their console page"
        for message in (key(0x62), key(0x62, down=False), POINTER, CLIPBOARD, QEMU_KEY,
                        UPDATE_REQUEST):
            await watcher.send_to(bytes_data=message)
        await arrives(vnc, UPDATE_REQUEST)  # the screen still updates for the watcher
        for message in (key(0x62), POINTER, CLIPBOARD, QEMU_KEY):
            assert message not in vnc.received, "input from a watcher reaches nothing"
        await users.send_to(bytes_data=key(0x63))
        await arrives(vnc, key(0x63))  # the user still types
        await watcher.disconnect()
        assert json.loads(await users.receive_from(timeout=5)) == {
            "notice": "unwatched", "by": "helper"}
        await users.disconnect()

    run(with_vnc, running_desktop, body)
    opened_rows = AuditEvent.objects.filter(action="console.open", actor=helpdesk)
    assert [e.details["view_only"] for e in opened_rows] == [True]
    closed = AuditEvent.objects.get(action="console.close", actor=helpdesk)
    assert closed.details["input_dropped"] == 5


# --- floods and limits ------------------------------------------------------------------------

def test_anonymous_floods_write_no_row_per_attempt(running_desktop, settings):
    settings.CONSOLE_RATE_LIMIT = "1000/m/ip,20/m/user"
    before = AuditEvent.objects.count()

    async def attempt() -> None:
        ws = communicator(running_desktop.pk, None, "x")
        await ws.connect()
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close",
                                                      "code": CloseCode.NOT_SIGNED_IN}
        await ws.disconnect()

    async def flood() -> None:
        for _ in range(10):  # 200 connects, 20 at a time
            await asyncio.gather(*(attempt() for _ in range(20)))

    run(flood)
    assert AuditEvent.objects.count() == before, "refusals are counted, not written"
    rows = guards.flush_refusals(_next_interval(settings))
    assert 1 <= rows <= 2, "one row per source and interval (the flood may cross a boundary)"
    refused = AuditEvent.objects.filter(action="console.refused")
    assert sum(r.details["attempts"] for r in refused) == 200
    assert all(r.details["reasons"] == {"not signed in": r.details["attempts"]}
               for r in refused)


def _next_interval(settings) -> float:
    import time

    return time.time() + float(settings.REFUSAL_AUDIT_INTERVAL)


def test_connects_are_rate_limited_per_address(owner, running_desktop, settings):
    settings.CONSOLE_RATE_LIMIT = "3/m/ip,100/m/user"
    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        for _ in range(3):
            await expect_close(communicator(running_desktop.pk, session, "bad"),
                               CloseCode.TICKET_REFUSED)
        await expect_close(communicator(running_desktop.pk, session,
                                        await ticket(owner, session, running_desktop)),
                           CloseCode.RATE_LIMITED)
        assert vnc.connections == 0

    run(with_vnc, running_desktop, body)


def test_tickets_are_rate_limited_per_user(owner, running_desktop, settings):
    settings.TICKET_RATE_LIMIT = "100/m/ip,2/m/user"
    client = Client()
    client.force_login(owner)
    url = f"/desktops/{running_desktop.pk}/console/ticket/"
    assert [client.post(url).status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize(("limit", "code"), [("CONSOLE_MAX_PER_USER", CloseCode.TOO_MANY_CONSOLES),
                                             ("CONSOLE_MAX_PER_DESKTOP", CloseCode.DESKTOP_BUSY)])
def test_open_consoles_are_capped(limit, code, owner, running_desktop, settings):
    setattr(settings, limit, 1)
    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        first = await opened(owner, session, running_desktop)
        await expect_close(communicator(running_desktop.pk, session,
                                        await ticket(owner, session, running_desktop)), code)
        await first.disconnect()

    run(with_vnc, running_desktop, body)


def test_a_message_over_the_size_limit_closes_the_console(owner, running_desktop, settings):
    settings.CONSOLE_MAX_MESSAGE = 4096
    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        ws = await opened(owner, session, running_desktop)
        await ws.send_to(bytes_data=b"\x00" * 5000)
        assert await ws.receive_output(timeout=5) == {
            "type": "websocket.close", "code": CloseCode.MESSAGE_TOO_BIG}

    run(with_vnc, running_desktop, body)


def test_a_browser_that_never_finishes_its_handshake_is_closed(owner, running_desktop,
                                                               settings):
    settings.CONSOLE_HANDSHAKE_TIMEOUT = 1
    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        ws = communicator(running_desktop.pk, session,
                          await ticket(owner, session, running_desktop))
        assert (await ws.connect())[0]
        assert await ws.receive_from(timeout=5) == GREETING
        assert await ws.receive_output(timeout=5) == {
            "type": "websocket.close", "code": CloseCode.HANDSHAKE_TIMEOUT}

    run(with_vnc, running_desktop, body)


def test_an_unknown_client_message_closes_the_console(owner, running_desktop):
    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        ws = await opened(owner, session, running_desktop)
        await ws.send_to(bytes_data=b"\x63garbage")
        assert await ws.receive_output(timeout=5) == {
            "type": "websocket.close", "code": CloseCode.PROTOCOL_ERROR}
        assert b"garbage" not in vnc.received

    run(with_vnc, running_desktop, body)


# --- what the channel layer may not do --------------------------------------------------------

def test_input_forged_on_the_channel_layer_never_reaches_the_guest(owner, running_desktop):
    """A local process that reaches Redis sends 'browser input' to the desktop's group."""
    from channels.layers import get_channel_layer

    from vdi.console.notify import desktop_group

    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        ws = await opened(owner, session, running_desktop)
        forged = key(0x7A)
        await get_channel_layer().group_send(desktop_group(running_desktop.pk), {
            "type": "websocket.receive", "bytes": forged})
        await get_channel_layer().group_send(desktop_group(running_desktop.pk), {
            "type": "websocket.disconnect", "code": 1000})
        await ws.send_to(bytes_data=key(0x61))
        await arrives(vnc, key(0x61))  # the console still works...
        assert forged not in vnc.received  # ...and the forged key went nowhere
        await ws.disconnect()

    run(with_vnc, running_desktop, body)


# --- the VNC password ---------------------------------------------------------------------------

def test_a_vnc_server_that_skips_the_password_is_refused(owner, running_desktop):
    """The desktop has a password; a server offering security None is not accepted."""
    Desktop.objects.filter(pk=running_desktop.pk).update(vnc_password="s3cretpw")
    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        await expect_close(communicator(running_desktop.pk, session,
                                        await ticket(owner, session, running_desktop)),
                           CloseCode.VNC_UNREACHABLE)

    run(with_vnc, running_desktop, body, NoneOnlyVnc())
    running_desktop.refresh_from_db()
    assert "does not ask for the desktop's password" in running_desktop.console_error


class NoneOnlyVnc(FakeVnc):
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(GREETING)
        await reader.readexactly(12)
        writer.write(b"\x01\x01")  # one security type: None
        await writer.drain()
        self.received.extend(await reader.read(65536))
        self.closed_by_peer.set()


def test_an_account_deleted_while_its_console_opens_is_closed(owner, running_desktop,
                                                              monkeypatch):
    from vdi.console import consumer
    from vdi.services.console import session_opened

    def deleted_meanwhile(*args: Any) -> int | None:
        owner.delete()
        return session_opened(*args)

    monkeypatch.setattr(consumer, "session_opened", deleted_meanwhile)
    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        ws = communicator(running_desktop.pk, session,
                          await ticket(owner, session, running_desktop))
        assert (await ws.connect())[0]
        while (message := await ws.receive_output(timeout=5))["type"] != "websocket.close":
            pass
        assert message["code"] == CloseCode.ACCOUNT_CLOSED

    run(with_vnc, running_desktop, body)
