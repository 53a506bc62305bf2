"""Console test kit: small VNC-like TCP servers, signed-in websocket clients, and helpers to
run a scenario against a desktop whose VNC endpoint is one of those servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from portal.asgi import websocket_app
from vdi.models import Desktop
from vdi.services.console import issue_ticket

GREETING = b"RFB 003.008\n"
HANDSHAKE = GREETING + b"\x01" + b"\x01"  # version, security None, ClientInit: shared


@dataclass
class FakeVnc:
    """Greets like a VNC server, then records what it receives; can push data and close."""

    received: bytearray = field(default_factory=bytearray)
    connections: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    server: asyncio.Server | None = None
    closed_by_peer: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        writer.write(GREETING)
        await writer.drain()
        while data := await reader.read(65536):
            self.received.extend(data)
        self.closed_by_peer.set()

    async def push(self, data: bytes) -> None:
        for writer in self.writers:
            writer.write(data)
            await writer.drain()

    async def close_clients(self) -> None:
        for writer in self.writers:
            writer.close()

    async def stop(self) -> None:
        await self.close_clients()
        if self.server is not None:
            self.server.close()


_opened: ContextVar[list[WebsocketCommunicator] | None] = ContextVar("opened", default=None)


def run(scenario: Any, *args: Any) -> Any:
    """Run ``scenario(*args)`` in an event loop; then its websockets end as a browser's do
    (a disconnect), so no consumer is left for the loop's close to cancel."""

    async def scenario_then_disconnect() -> Any:
        opened: list[WebsocketCommunicator] = []
        _opened.set(opened)
        try:
            return await scenario(*args)
        finally:
            for ws in opened:
                started = ws._future  # the application starts when first talked to
                if started is not None and not started.done():
                    with contextlib.suppress(Exception):
                        await ws.disconnect(timeout=5)

    return async_to_sync(scenario_then_disconnect)()


async def with_vnc(desktop: Desktop, body: Any, vnc: Any = None) -> Any:
    """Run ``body(vnc)`` with the desktop's VNC endpoint pointing at a fake server."""
    vnc = vnc or FakeVnc()
    port = await vnc.start()
    await asyncio.to_thread(Desktop.objects.filter(pk=desktop.pk).update, vnc_port=port)
    try:
        return await body(vnc)
    finally:
        await vnc.stop()


async def expect_close(ws: Any, code: int) -> None:
    connected, _ = await ws.connect()
    assert connected, "refusals are explained with a close code after the handshake"
    message = await ws.receive_output(timeout=5)
    assert message == {"type": "websocket.close", "code": code}
    await ws.wait()


def ticket_for(user: Any, session: str, desktop: Desktop) -> str:
    return issue_ticket(user, session, desktop).ticket


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


def communicator(
    desktop_id: int, session: str | None, ticket: str | None, origin: str | None = "http://localhost",
    host: str = "localhost", application: Any = None,
    client: tuple[str, int] = ("192.0.2.10", 40000), kind: str = "console",
    first_frame: bool = False,
) -> WebsocketCommunicator:
    """A browser's websocket to the console, from ``client`` (the address the server sees);
    ``first_frame``: offered as the portal's page offers it (``FIRST_FRAME_PROTOCOL``)."""
    app = application or websocket_app

    async def from_client(scope: Any, receive: Any, send: Any) -> None:
        await app({**scope, "client": client}, receive, send)

    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if session is not None:
        cookie = SimpleCookie({settings.SESSION_COOKIE_NAME: session})
        headers.append((b"cookie", cookie.output(header="", sep=";").strip().encode()))
    protocols = ["binary"] + ([f"vdi-ticket.{ticket}"] if ticket else [])
    protocols += ["vdi-first-frame"] if first_frame else []
    ws = WebsocketCommunicator(
        from_client, f"/ws/desktops/{desktop_id}/{kind}/", headers=headers,
        subprotocols=protocols,
    )
    if (opened := _opened.get()) is not None:
        opened.append(ws)
    return ws


@dataclass
class FakeVncWithPassword:
    """A VNC server that insists on VNC Authentication, sends a ServerInit, then records what
    it receives and can push data. Connections that go no further than its greeting (the
    proxy's refresh wake-up) are counted in ``left_at_greeting``."""

    password: str
    signed_in: bool = False
    client_init: bytes = b""
    received: bytearray = field(default_factory=bytearray)
    left_at_greeting: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(GREETING)
        try:
            await reader.readexactly(12)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.left_at_greeting += 1
            return
        await self._sign_in(reader, writer)

    async def _sign_in(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from vdi.console.vnc_auth import des_response

        writer.write(b"\x01\x02")  # one security type: VNC Authentication
        await reader.readexactly(1)
        challenge = b"0123456789abcdef"
        writer.write(challenge)
        answer = await reader.readexactly(16)
        self.signed_in = answer == des_response(self.password, challenge)
        if not self.signed_in:
            writer.write(b"\x00\x00\x00\x01" + b"\x00\x00\x00\x0ewrong password")
            await writer.drain()
            writer.close()
            return
        writer.write(b"\x00\x00\x00\x00")
        self.client_init = await reader.readexactly(1)
        writer.write(b"\x02\x80\x01\x90" + b"\x20\x18\x00\x01" + b"\x00" * 12
                     + b"\x00\x00\x00\x04tiny")
        await writer.drain()
        self.writers.append(writer)
        while data := await reader.read(65536):
            self.received.extend(data)

    async def push(self, data: bytes) -> None:
        for writer in self.writers:
            writer.write(data)
            await writer.drain()

    async def stop(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()


async def opened(user: Any, session: str, desktop: Desktop) -> Any:
    """A console through its handshake; the notices that came first are in ``ws.notices``."""
    raw = await asyncio.to_thread(ticket_for, user, session, desktop)
    ws = communicator(desktop.pk, session, raw)
    assert (await ws.connect())[0]
    ws.notices = []
    while (frame := await ws.receive_from(timeout=5)) != GREETING:
        ws.notices.append(json.loads(frame))
    await ws.send_to(bytes_data=HANDSHAKE)
    return ws


async def greeted(ws: Any, seconds: float = 10) -> Any:
    """A console to a desktop with a VNC password, connected, its two greeting messages
    taken (``vdi.console.vnc_auth``)."""
    assert (await ws.connect())[0]
    assert await ws.receive_from(timeout=seconds) == GREETING
    await ws.receive_from(timeout=seconds)  # the rest, with the server's ServerInit
    return ws


async def closing_of(ws: Any, seconds: float = 10) -> dict[str, Any]:
    """The console's close, past the screen's frames that come before it (a real VNC server
    sends the first frame the proxy asked for)."""
    while (message := await ws.receive_output(timeout=seconds))["type"] == "websocket.send":
        pass
    return dict(message)


async def arrives(vnc: FakeVnc, data: bytes) -> None:
    for _ in range(100):
        if data in vnc.received:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{data!r} never reached the VNC server")
