"""The console's fast lane under a real daphne (``vdi.console.lane``): the browser's frames and
the VNC server's bytes arrive whole and in order whichever way they cross (the lane, or
autobahn and daphne's queue for a frame cut across reads), the filter still holds, and a
browser that reads nothing still holds the VNC server back."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.typing import Subprotocol

from tests.console_helpers import GREETING, HANDSHAKE, FakeVnc, session_cookie, ticket_for
from vdi.choices import ClipboardPolicy
from vdi.console.codes import CloseCode
from vdi.models import AuditEvent, ConsoleSession, Desktop
from vdi.testing.processes import ServerProcess, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def daphne(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("lane") / "daphne.log")
    server.start()
    yield server
    server.stop()


def key(n: int) -> bytes:
    """A KeyEvent (8 bytes) whose keysym counts, so that order shows."""
    return struct.pack("!BBxxI", 4, 1, n)


def raw(message: bytes) -> bytes:
    return Frame(Opcode.BINARY, message).serialize(mask=True)


Scenario = Callable[[ClientConnection, FakeVnc], Awaitable[None]]


def through_daphne(daphne: ServerProcess, owner: Any, desktop: Desktop, scenario: Scenario,
                   vnc: FakeVnc | None = None) -> None:
    """Opens the owner's console under daphne against a local VNC-like server and runs
    ``scenario`` once the handshake is through."""
    session = session_cookie(owner)
    ticket = ticket_for(owner, session, desktop)

    async def body() -> None:
        server = vnc or FakeVnc()
        port = await server.start()
        await asyncio.to_thread(_point_at, desktop, port)
        try:
            async with connect(
                f"ws://127.0.0.1:{daphne.port}/ws/desktops/{desktop.pk}/console/",
                subprotocols=[Subprotocol("binary"), Subprotocol(f"vdi-ticket.{ticket}")],
                additional_headers={"Origin": daphne.origin, "Cookie": f"sessionid={session}"},
                max_size=None, open_timeout=10,
            ) as ws:
                assert await asyncio.wait_for(ws.recv(), 10) == GREETING
                await ws.send(HANDSHAKE)
                await scenario(ws, server)
        finally:
            await server.stop()

    asyncio.run(body())
    # The server writes the console's end (its session row, the audit) after the browser has
    # seen the close: the test's database teardown must not race it (PostgreSQL deadlocks).
    wait_for(lambda: AuditEvent.objects.filter(action="console.close").exists()
             and not ConsoleSession.objects.filter(closed_at__isnull=True).exists(), 10,
             "the server to finish closing the console")


def _point_at(desktop: Desktop, port: int) -> None:
    Desktop.objects.filter(pk=desktop.pk).update(vnc_port=port)


async def until(check: Callable[[], bool], what: str, seconds: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_keystrokes_reach_the_guest_whole_and_in_order(daphne, owner, running_desktop):
    """Frames one by one, several in one write, and frames cut across writes (autobahn's way),
    mixed: the VNC server sees every message once, in the order typed."""
    keys = [key(n) for n in range(600)]

    async def scenario(ws: ClientConnection, vnc: FakeVnc) -> None:
        n = 0
        while n < len(keys):
            if n % 50 == 7:  # three frames in one write
                ws.transport.write(b"".join(raw(k) for k in keys[n:n + 3]))
                n += 3
            elif n % 50 == 21:  # one frame cut in two reads
                frame = raw(keys[n])
                ws.transport.write(frame[:5])
                await asyncio.sleep(0.05)
                ws.transport.write(frame[5:])
                n += 1
            else:
                await ws.send(keys[n])
                n += 1
        expected = HANDSHAKE + b"".join(keys)
        await until(lambda: len(vnc.received) >= len(expected), "every keystroke")
        assert bytes(vnc.received) == expected

    through_daphne(daphne, owner, running_desktop, scenario)
    assert "fast lane is off" not in daphne.log.read_text(), "daphne's consoles lost the lane"


def test_the_guests_bytes_reach_the_browser_whole_and_in_order(daphne, owner, running_desktop):
    sizes = [1, 7, 125, 126, 1000, 65535, 65536, 70_000, 300_000, 3] * 4
    stream = bytes(i % 251 for i in range(sum(sizes)))

    async def scenario(ws: ClientConnection, vnc: FakeVnc) -> None:
        at = 0
        for size in sizes:
            await vnc.push(stream[at:at + size])
            at += size
        got = bytearray()
        while len(got) < len(stream):
            message = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(message, bytes)
            got += message
        assert bytes(got) == stream

    through_daphne(daphne, owner, running_desktop, scenario)


def test_a_malformed_message_on_the_lane_closes_the_console(daphne, owner, running_desktop):
    async def scenario(ws: ClientConnection, vnc: FakeVnc) -> None:
        await ws.send(key(1))
        await until(lambda: len(vnc.received) == len(HANDSHAKE) + 8, "the keystroke")
        await ws.send(b"\x99\x00\x00\x00")  # no RFB client message has this type
        await asyncio.wait_for(ws.wait_closed(), 10)
        assert ws.close_code == CloseCode.PROTOCOL_ERROR
        assert bytes(vnc.received) == HANDSHAKE + key(1), "nothing after the bad message"

    through_daphne(daphne, owner, running_desktop, scenario)


def test_a_refused_copy_is_told_to_the_page_and_typing_goes_on(daphne, owner, running_desktop):
    running_desktop.pool.clipboard = ClipboardPolicy.OFF
    running_desktop.pool.save()
    paste = struct.pack("!BxxxI", 6, 4) + b"text"

    async def scenario(ws: ClientConnection, vnc: FakeVnc) -> None:
        await ws.send(paste + key(2))  # one frame: a refused copy, then a keystroke
        notice = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert notice["notice"] == "clipboard_refused"
        await until(lambda: len(vnc.received) == len(HANDSHAKE) + 8, "the keystroke")
        assert bytes(vnc.received) == HANDSHAKE + key(2)

    through_daphne(daphne, owner, running_desktop, scenario)


class PouringVnc(FakeVnc):
    """Greets, then after the browser's handshake pours as fast as the connection takes it."""

    poured: int = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(GREETING)
        await reader.readexactly(len(HANDSHAKE))
        block = b"\x55" * 65536
        try:
            while self.poured < 256 * 1024 * 1024:
                writer.write(block)
                await writer.drain()
                self.poured += len(block)
        except ConnectionError:
            pass


def test_a_browser_that_reads_nothing_holds_the_vnc_server_back(daphne, owner,
                                                                running_desktop):
    """Flow control with the lane: nothing piles up in daphne, the source is held back."""
    vnc = PouringVnc()

    async def scenario(ws: ClientConnection, server: FakeVnc) -> None:
        before = daphne.rss_kib()
        await until(lambda: vnc.poured > 0, "the source to pour")
        await asyncio.sleep(3)  # the browser reads nothing meanwhile
        growth_mib = (daphne.rss_kib() - before) / 1024
        assert vnc.poured < 64 * 1024 * 1024, f"{vnc.poured} bytes left the source"
        assert growth_mib < 48, f"daphne grew by {growth_mib:.0f} MiB"

    through_daphne(daphne, owner, running_desktop, scenario, vnc)
