"""SPICE consoles through the portal's websocket proxy, against QEMU's real SPICE server (a
QEMU without a machine): one ticket opens a session whose channels join it in time, from the
same browser session, while it lasts; the SPICE password never reaches the browser."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.console_helpers import communicator, run, session_cookie, ticket_for
from tests.spice_helpers import SpiceChannel
from vdi.choices import DisplayProtocol
from vdi.console.codes import CloseCode
from vdi.console.spice_link import Channel, LinkError, proxy_key
from vdi.models import AuditEvent, ConsoleTicket, Desktop
from vdi.testing.spice_server import SpiceServer, spice_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def qemu_spice() -> Iterator[SpiceServer]:
    with spice_server() as server:
        yield server


@pytest.fixture
def spice_desktop(running_desktop: Desktop, qemu_spice: SpiceServer) -> Desktop:
    Desktop.objects.filter(pk=running_desktop.pk).update(
        display_protocol=DisplayProtocol.SPICE, vnc_port=qemu_spice.port,
        vnc_password=qemu_spice.password)
    running_desktop.refresh_from_db()
    return running_desktop


def channel(desktop: Desktop, session: str | None) -> SpiceChannel:
    return SpiceChannel(communicator(desktop.pk, session, None, kind="spice"))


async def open_session(desktop: Desktop, session: str, ticket: str) -> tuple[SpiceChannel, int]:
    main = channel(desktop, session)
    assert await main.link(Channel.MAIN, ticket) == LinkError.OK
    return main, await main.session_id()


def test_one_ticket_opens_a_session_whose_channels_join_it(owner, spice_desktop, qemu_spice):
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, spice_desktop)

    async def scenario() -> None:
        main, session_id = await open_session(spice_desktop, session, ticket)
        inputs = channel(spice_desktop, session)
        assert await inputs.link(Channel.INPUTS, ticket, session_id) == LinkError.OK
        for ws in (inputs, main):
            assert qemu_spice.password.encode() not in ws.received
            assert ws.server_key == proxy_key().public_der, "the browser encrypts for the proxy"
            await ws.ws.disconnect()

    run(scenario)
    row = ConsoleTicket.objects.get()
    assert row.used_at is not None and row.ended_at is not None, "the session ended with main"
    opened = AuditEvent.objects.filter(action="console.open")
    assert [e.details["channel"] for e in opened] == ["main"]


@pytest.mark.parametrize("case", ["late", "other-session", "after-end", "second-main",
                                  "before-main"])
def test_channels_outside_their_session_are_refused(case, owner, spice_desktop):
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, spice_desktop)

    async def scenario() -> None:
        if case == "before-main":
            late = channel(spice_desktop, session)
            assert await late.link(Channel.INPUTS, ticket) == LinkError.PERMISSION_DENIED
            assert await late.closed_with() == CloseCode.TICKET_REFUSED
            return
        main, session_id = await open_session(spice_desktop, session, ticket)
        who = session
        if case == "late":
            await asyncio.to_thread(ConsoleTicket.objects.update,
                                    joins_until=timezone.now() - timedelta(seconds=1))
        elif case == "other-session":
            who = await asyncio.to_thread(session_cookie, owner)
        elif case == "after-end":
            await main.ws.disconnect()
            await asyncio.sleep(0.5)
        kind = Channel.MAIN if case == "second-main" else Channel.INPUTS
        joiner = channel(spice_desktop, who)
        assert await joiner.link(kind, ticket, session_id) == LinkError.PERMISSION_DENIED
        assert await joiner.closed_with() == CloseCode.TICKET_REFUSED
        await main.ws.disconnect()

    run(scenario)


def test_a_watcher_cannot_open_a_spice_console(helpdesk, spice_desktop):
    from vdi.services.console import issue_ticket

    session = session_cookie(helpdesk)
    ticket = issue_ticket(helpdesk, session, spice_desktop).ticket

    async def scenario() -> None:
        main = channel(spice_desktop, session)
        assert await main.link(Channel.MAIN, ticket) == LinkError.PERMISSION_DENIED
        assert await main.closed_with() == CloseCode.WATCH_REFUSED

    run(scenario)


def test_anonymous_browsers_get_no_spice_link(spice_desktop):
    async def scenario() -> None:
        ws = communicator(spice_desktop.pk, None, None, kind="spice")
        connected, _ = await ws.connect()
        assert connected
        message = await ws.receive_output(timeout=5)
        assert message == {"type": "websocket.close", "code": CloseCode.NOT_SIGNED_IN}

    run(scenario)


def test_a_password_not_encrypted_for_the_proxy_is_refused(owner, spice_desktop, qemu_spice):
    session = session_cookie(owner)

    async def scenario() -> None:
        main = channel(spice_desktop, session)
        # what a client would send if it knew the real password: it is not a ticket
        assert await main.link(Channel.MAIN, qemu_spice.password) == LinkError.PERMISSION_DENIED
        assert await main.closed_with() == CloseCode.TICKET_REFUSED

    run(scenario)


def test_spice_pools_refuse_what_spice_cannot_do(pool):
    from django.core.exceptions import ValidationError

    from vdi.choices import ClipboardPolicy

    pool.display_protocol = DisplayProtocol.SPICE
    pool.full_clean()
    pool.clipboard, pool.record_sessions, pool.watch_consent = ClipboardPolicy.TO_GUEST, True, True
    with pytest.raises(ValidationError) as refused:
        pool.full_clean()
    assert set(refused.value.message_dict) == {"clipboard", "record_sessions", "watch_consent"}
    assert "both ways or off" in refused.value.message_dict["clipboard"][0]
