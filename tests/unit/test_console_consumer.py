"""The console consumer against a small local TCP server: refusals, relay, closing, limits."""

from __future__ import annotations

import asyncio
import struct
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.console_helpers import (
    GREETING,
    HANDSHAKE,
    FakeVnc,
    FakeVncWithPassword,
    communicator,
    expect_close,
    greeted,
    run,
    session_cookie,
    ticket_for,
    with_vnc,
)
from vdi.choices import DesktopStatus
from vdi.console import guards
from vdi.console.codes import CloseCode
from vdi.console.notify import close_consoles
from vdi.models import AuditEvent, ConsoleTicket, Desktop

pytestmark = pytest.mark.django_db(transaction=True)


# --- refusals ---------------------------------------------------------------------------------

def test_missing_ticket_is_refused_before_any_vnc_byte(owner, running_desktop):
    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        await expect_close(communicator(running_desktop.pk, session, None),
                           CloseCode.NO_TICKET)
        assert vnc.connections == 0

    run(with_vnc, running_desktop, body)


def test_anonymous_is_refused(running_desktop):
    async def body(vnc: FakeVnc) -> None:
        await expect_close(communicator(running_desktop.pk, None, "whatever"),
                           CloseCode.NOT_SIGNED_IN)
        assert vnc.connections == 0

    run(with_vnc, running_desktop, body)


@pytest.mark.parametrize("case", ["reused", "expired", "foreign", "other-session",
                                  "other-desktop", "unknown"])
def test_bad_tickets_are_refused(case, owner, outsider, running_desktop, pool, host, image_version,
                                 settings):
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)
    target, who = running_desktop.pk, session
    if case == "expired":
        ConsoleTicket.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    elif case == "foreign":
        who = session_cookie(outsider)
    elif case == "other-session":
        who = session_cookie(owner)  # the same user, signed in from another browser
    elif case == "other-desktop":
        other = Desktop.objects.create(
            owner=owner, pool=pool, host=host, image_version=image_version,
            domain_name="vditest-other", disk_path="/x", serial_log_path="/x.log", vcpus=1,
            memory_mib=256, status=DesktopStatus.RUNNING, vnc_port=1,
        )
        target = other.pk
    elif case == "unknown":
        ticket = "not-a-ticket-anyone-issued"

    async def body(vnc: FakeVnc) -> None:
        if case == "reused":
            first = communicator(target, who, ticket)
            assert (await first.connect())[0]
            assert await first.receive_from(timeout=5) == GREETING
            await first.disconnect()
            connections = vnc.connections
        else:
            connections = 0
        await expect_close(communicator(target, who, ticket), CloseCode.TICKET_REFUSED)
        assert vnc.connections == connections, "a refused ticket opens no VNC connection"

    run(with_vnc, running_desktop, body)
    assert not AuditEvent.objects.filter(action="console.refused").exists(), \
        "a refusal is counted, not written each time"
    assert guards.flush_refusals(time.time() + settings.REFUSAL_AUDIT_INTERVAL) >= 1
    refusal = AuditEvent.objects.filter(action="console.refused").latest("id")
    assert refusal.details["attempts"] >= 1 and refusal.source_address == "192.0.2.10"
    assert any("ticket" in reason for reason in refusal.details["reasons"])


@pytest.mark.parametrize(
    ("origin", "host_header"),
    [
        (None, "localhost"),
        ("http://evil.example", "localhost"),
        ("http://localhost.evil.example", "localhost"),
        ("https://localhost.attacker.example:443", "localhost"),
        ("https://localhost", "localhost"),          # look-alike: other scheme
        ("http://localhost:8001", "localhost"),      # look-alike: other port
        ("http://evil.example", "evil.example"),     # a forged Host does not widen the check
    ],
)
def test_missing_and_foreign_origins_are_rejected_at_the_handshake(owner, running_desktop, origin,
                                                                  host_header):
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)

    async def body(vnc: FakeVnc) -> None:
        ws = communicator(running_desktop.pk, session, ticket, origin=origin, host=host_header)
        connected, _ = await ws.connect()
        assert not connected
        assert vnc.connections == 0

    run(with_vnc, running_desktop, body)
    assert ConsoleTicket.objects.get().used_at is None, "the ticket was never even looked at"


def test_desktop_not_running_is_refused(owner, running_desktop):
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)
    Desktop.objects.filter(pk=running_desktop.pk).update(status=DesktopStatus.STOPPING)

    async def body(vnc: FakeVnc) -> None:
        await expect_close(communicator(running_desktop.pk, session, ticket),
                           CloseCode.NOT_RUNNING)
        assert vnc.connections == 0

    run(with_vnc, running_desktop, body)
    running_desktop.refresh_from_db()
    assert running_desktop.console_error == "desktop is stopping"


def test_unreachable_vnc_endpoint_is_explained(owner, running_desktop):
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)

    async def scenario() -> None:
        vnc = FakeVnc()
        port = await vnc.start()
        await vnc.stop()  # nothing listens on that port any more
        await asyncio.to_thread(Desktop.objects.filter(pk=running_desktop.pk).update, vnc_port=port)
        await expect_close(communicator(running_desktop.pk, session, ticket),
                           CloseCode.VNC_UNREACHABLE)

    run(scenario)
    running_desktop.refresh_from_db()
    assert "unreachable" in running_desktop.console_error


# --- relaying and closing ---------------------------------------------------------------------

def test_relays_both_ways_and_audits_open_and_close(owner, running_desktop):
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)

    async def body(vnc: FakeVnc) -> None:
        ws = communicator(running_desktop.pk, session, ticket)
        connected, subprotocol = await ws.connect()
        assert connected and subprotocol == "binary"
        assert await ws.receive_from(timeout=5) == GREETING
        await ws.send_to(bytes_data=b"RFB 003.008\n")
        await vnc.push(b"\x01" * 100_000)
        received = b""
        while len(received) < 100_000:
            received += await ws.receive_from(timeout=5)
        assert received == b"\x01" * 100_000
        await ws.disconnect()
        await asyncio.wait_for(vnc.closed_by_peer.wait(), 5)
        assert bytes(vnc.received) == b"RFB 003.008\n"

    run(with_vnc, running_desktop, body)
    opened = AuditEvent.objects.get(action="console.open")
    closed = AuditEvent.objects.get(action="console.close")
    assert opened.actor == owner and closed.actor == owner
    assert closed.details["bytes_to_browser"] == len(GREETING) + 100_000
    assert closed.details["bytes_to_vnc"] == 12
    assert closed.details["seconds"] >= 0


def test_the_first_full_screen_request_wakes_the_vnc_servers_refresh(owner, running_desktop):
    """Right after the browser's first non-incremental FramebufferUpdateRequest has gone on,
    the proxy opens a second connection to the VNC server and closes it at once (a new
    connection makes QEMU refresh now, not at its backed-off timer); only once."""
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)
    incremental = struct.pack("!BBHHHH", 3, 1, 0, 0, 640, 400)
    full = struct.pack("!BBHHHH", 3, 0, 0, 0, 640, 400)

    async def body(vnc: WokenVnc) -> None:
        ws = communicator(running_desktop.pk, session, ticket)
        assert (await ws.connect())[0]
        assert await ws.receive_from(timeout=5) == GREETING
        await ws.send_to(bytes_data=HANDSHAKE + incremental)
        await wait_until(lambda: len(vnc.received) == len(HANDSHAKE + incremental))
        assert vnc.connections == 1, "an incremental request wakes nothing"
        await ws.send_to(bytes_data=full)
        await wait_until(lambda: vnc.woken_and_closed == 1)
        await ws.send_to(bytes_data=full)
        await wait_until(lambda: len(vnc.received) == len(HANDSHAKE + incremental + 2 * full))
        assert vnc.connections == 2, "once a console"
        await ws.disconnect()

    run(with_vnc, running_desktop, body, WokenVnc())


class WokenVnc(FakeVnc):
    """Counts the connections after the first, and sees each closed by the proxy."""

    woken_and_closed = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.connections:
            await super()._handle(reader, writer)
            return
        self.connections += 1
        await reader.read()  # until the proxy closes it
        self.woken_and_closed += 1


async def wait_until(condition, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_vnc_side_closing_closes_the_browser_side(owner, running_desktop):
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)

    async def body(vnc: FakeVnc) -> None:
        ws = communicator(running_desktop.pk, session, ticket)
        assert (await ws.connect())[0]
        assert await ws.receive_from(timeout=5) == GREETING
        await vnc.close_clients()
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close",
                                                      "code": CloseCode.NORMAL}

    run(with_vnc, running_desktop, body)


def test_desktop_stopping_closes_its_consoles(owner, running_desktop):
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)

    async def body(vnc: FakeVnc) -> None:
        ws = communicator(running_desktop.pk, session, ticket)
        assert (await ws.connect())[0]
        assert await ws.receive_from(timeout=5) == GREETING
        await asyncio.to_thread(close_consoles, running_desktop.pk)
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close",
                                                      "code": CloseCode.DESKTOP_STOPPED}
        await asyncio.wait_for(vnc.closed_by_peer.wait(), 5)

    run(with_vnc, running_desktop, body)


def test_session_length_limit(owner, running_desktop, settings):
    settings.CONSOLE_MAX_SECONDS = 1
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)

    async def body(vnc: FakeVnc) -> None:
        ws = communicator(running_desktop.pk, session, ticket)
        assert (await ws.connect())[0]
        assert await ws.receive_from(timeout=5) == GREETING
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close",
                                                      "code": CloseCode.SESSION_LIMIT}
        await asyncio.wait_for(vnc.closed_by_peer.wait(), 5)

    run(with_vnc, running_desktop, body)


def test_an_idle_console_outlives_the_channel_layers_blocking_read(owner, running_desktop):
    """channels-redis blocks 5 s per read; a console idle longer than that must stay open."""
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)

    async def body(vnc: FakeVnc) -> None:
        ws = communicator(running_desktop.pk, session, ticket)
        assert (await ws.connect())[0]
        assert await ws.receive_from(timeout=5) == GREETING
        assert await ws.receive_nothing(timeout=7)
        await vnc.push(b"still here")
        assert await ws.receive_from(timeout=5) == b"still here"
        await ws.disconnect()

    run(with_vnc, running_desktop, body)


def test_signing_out_closes_the_users_consoles(owner, running_desktop):
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)

    async def body(vnc: FakeVnc) -> None:
        ws = communicator(running_desktop.pk, session, ticket)
        assert (await ws.connect())[0]
        assert await ws.receive_from(timeout=5) == GREETING
        from django.test import Client

        def sign_out() -> None:
            client = Client()
            client.cookies["sessionid"] = session
            client.post("/accounts/logout/")

        await asyncio.to_thread(sign_out)
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close",
                                                      "code": CloseCode.SESSION_ENDED}

    run(with_vnc, running_desktop, body)


def test_stopping_the_desktop_voids_its_unused_tickets(owner, running_desktop):
    from vdi.services.desktops import request_action

    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)
    request_action(owner, running_desktop, "stop")
    # and back up
    Desktop.objects.filter(pk=running_desktop.pk).update(status=DesktopStatus.RUNNING)

    async def body(vnc: FakeVnc) -> None:
        await expect_close(communicator(running_desktop.pk, session, ticket),
                           CloseCode.TICKET_REFUSED)

    run(with_vnc, running_desktop, body)


@pytest.mark.parametrize("right_password", [True, False])
def test_the_proxy_signs_in_to_vnc_for_the_browser(owner, running_desktop, right_password):
    """The browser is offered no security; the proxy answers the VNC password challenge."""
    from vdi.testing.rfb import Stream, handshake

    Desktop.objects.filter(pk=running_desktop.pk).update(vnc_password="s3cretpw")
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)

    async def scenario() -> None:
        vnc = FakeVncWithPassword("s3cretpw" if right_password else "other")
        port = await vnc.start()
        await asyncio.to_thread(Desktop.objects.filter(pk=running_desktop.pk).update, vnc_port=port)
        ws = communicator(running_desktop.pk, session, ticket)
        try:
            if not right_password:
                await expect_close(ws, CloseCode.VNC_UNREACHABLE)
                return
            assert (await ws.connect())[0]
            greeting = [bytes(await ws.receive_from(timeout=5)) for _ in range(2)]
            assert greeting[0] == GREETING and greeting[1].endswith(b"tiny"), \
                "the whole greeting at once, the server's ServerInit included"

            async def recv() -> bytes:
                return greeting.pop(0) if greeting else bytes(await ws.receive_from(timeout=5))

            # the RFB handshake of tests.rfb, driven over the communicator
            loop = asyncio.get_running_loop()
            stream = Stream(lambda: asyncio.run_coroutine_threadsafe(recv(), loop).result(),
                            lambda data: asyncio.run_coroutine_threadsafe(
                                ws.send_to(bytes_data=data), loop).result())
            init = await asyncio.to_thread(handshake, stream)
            assert (init.width, init.height, init.name) == (640, 400, "tiny")
            assert init.security_types == (1,), "the browser is offered no password step"
            assert vnc.signed_in and vnc.client_init == b"\x01", "shared, by the proxy"
            assert stream.buffer == b"" and await ws.receive_nothing(timeout=0.3), \
                "nothing of the server's own handshake (its challenge) reaches the browser"
        finally:
            await vnc.stop()

    run(scenario)
    if not right_password:
        running_desktop.refresh_from_db()
        assert "VNC sign-in failed" in running_desktop.console_error


def test_the_first_frame_is_asked_for_before_the_browser_answers(owner, running_desktop):
    """Right after signing in, the proxy asks the VNC server for a full frame in noVNC's pixel
    format and encodings (and wakes its refresh); what the server sends goes to the browser
    after the greeting, before the browser has said anything. The browser's own requests
    follow on the same connection."""
    from vdi.console import first_frame

    Desktop.objects.filter(pk=running_desktop.pk).update(vnc_password="s3cretpw")
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)
    asked = first_frame.request(struct.pack("!HH", 640, 400))
    update = b"\x00\x00\x00\x01" + struct.pack("!HHHHi", 0, 0, 640, 400, 7) + b"tight bytes"

    async def body(vnc: FakeVncWithPassword) -> None:
        ws = await greeted(communicator(running_desktop.pk, session, ticket, first_frame=True))
        await wait_until(lambda: bytes(vnc.received) == asked)
        await wait_until(lambda: vnc.left_at_greeting == 1)
        await vnc.push(update)
        assert await ws.receive_from(timeout=5) == update
        await ws.send_to(bytes_data=HANDSHAKE + first_frame.PIXEL_FORMAT)
        await wait_until(lambda: bytes(vnc.received) == asked + first_frame.PIXEL_FORMAT)
        assert vnc.left_at_greeting == 1, "the refresh is woken once a console"
        await ws.disconnect()

    run(with_vnc, running_desktop, body, FakeVncWithPassword("s3cretpw"))


def test_a_client_that_does_not_offer_it_gets_no_frame_it_did_not_ask_for(owner, running_desktop):
    """Only the portal's page (its noVNC) offers FIRST_FRAME_PROTOCOL: any other RFB client
    gets the greeting and then only what it asks for."""
    from vdi.console import first_frame

    Desktop.objects.filter(pk=running_desktop.pk).update(vnc_password="s3cretpw")
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)

    async def body(vnc: FakeVncWithPassword) -> None:
        ws = await greeted(communicator(running_desktop.pk, session, ticket))
        await ws.send_to(bytes_data=HANDSHAKE + first_frame.PIXEL_FORMAT)
        await wait_until(lambda: bytes(vnc.received) == first_frame.PIXEL_FORMAT)
        assert vnc.left_at_greeting == 0, "no request of its own, so no wake-up either"
        await ws.disconnect()

    run(with_vnc, running_desktop, body, FakeVncWithPassword("s3cretpw"))


def test_a_browser_answering_what_it_was_not_offered_is_closed(owner, running_desktop):
    """The proxy offered security None only: a browser choosing another type gets nothing
    through to the desktop's screen."""
    Desktop.objects.filter(pk=running_desktop.pk).update(vnc_password="s3cretpw")
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)

    async def body(vnc: FakeVncWithPassword) -> None:
        ws = await greeted(communicator(running_desktop.pk, session, ticket))
        await ws.send_to(bytes_data=GREETING + b"\x02" + b"\x01")
        assert await ws.receive_output(timeout=5) == {
            "type": "websocket.close", "code": CloseCode.PROTOCOL_ERROR}

    run(with_vnc, running_desktop, body, FakeVncWithPassword("s3cretpw"))


def test_a_ticket_dies_with_its_desktop_even_if_another_guest_gets_the_port(
    owner, running_desktop, pool, host, image_version
):
    from vdi.services.desktops import request_action

    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)
    request_action(owner, running_desktop, "delete")
    Desktop.objects.filter(pk=running_desktop.pk).delete()  # the worker finished the delete

    async def scenario() -> None:
        vnc = FakeVnc()
        port = await vnc.start()
        try:  # a new desktop now listens where the old one did
            await asyncio.to_thread(lambda: Desktop.objects.create(
                owner=owner, pool=pool, host=host, image_version=image_version,
                domain_name="vditest-newcomer", disk_path="/x", serial_log_path="/x.log",
                vcpus=1, memory_mib=256, status=DesktopStatus.RUNNING, vnc_host="127.0.0.1",
                vnc_port=port))
            await expect_close(communicator(running_desktop.pk, session, ticket),
                               CloseCode.TICKET_REFUSED)
            assert vnc.connections == 0
        finally:
            await vnc.stop()

    run(scenario)


def test_a_slow_browser_holds_the_vnc_stream_back(owner, running_desktop):
    """With the browser side paused (its socket full), the consumer reads at most one chunk
    more from the VNC server: the server's writes block instead of this process buffering."""
    from portal.asgi import websocket_app
    from vdi.console.flow import Flow, Inbound
    from vdi.console.relay import LIMIT

    flow = Flow()
    inner = websocket_app.app  # under the flow-control layer, so the test owns the Flow

    async def app_with_flow(scope, receive, send):
        inbound = Inbound(receive)
        await inner({**scope, "vdi.flow": flow, "vdi.inbound": inbound}, inbound.receive, send)

    session = session_cookie(owner)
    ticket = ticket_for(owner, session, running_desktop)
    total = 32 * 1024 * 1024

    async def body(vnc: FakeVnc) -> None:
        ws = communicator(running_desktop.pk, session, ticket, application=app_with_flow)
        assert (await ws.connect())[0]
        assert await ws.receive_from(timeout=5) == GREETING
        flow.pauseProducing()
        sent = 0

        async def pour() -> None:
            nonlocal sent
            block = b"\x07" * 65536
            while sent < total:
                vnc.writers[0].write(block)
                await vnc.writers[0].drain()
                sent += len(block)

        pouring = asyncio.create_task(pour())
        await asyncio.sleep(1.5)
        queued = ws.output_queue.qsize()
        assert queued <= 1, f"{queued} frames queued for a browser that reads nothing"
        assert sent < total // 2, f"{sent} bytes left the VNC server: not held back"
        flow.resumeProducing()
        received = 0
        while received < total:
            received += len(await ws.receive_from(timeout=10))
            flow.resumeProducing()
        await pouring
        assert received == total and total > LIMIT
        await ws.disconnect()

    run(with_vnc, running_desktop, body)
