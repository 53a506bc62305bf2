"""The SPICE gateway for native clients: remote-viewer, opened with the portal's ``.vv`` file,
asks it (the file's ``proxy=`` key) to ``CONNECT desktop-<id>.spice:<port>`` and then speaks
SPICE through it, one connection per channel.

Each channel links as in the browser (``vdi.console.spice_proxy``): the client encrypts its
password, a single-use portal ticket from the ``.vv`` file, with the gateway's key; the ticket
is checked against the session rules (``vdi.services.spice``, bound to the address of the
session's first channel); QEMU gets its real password. No hypervisor address or credential
is ever in the file. Run it with ``manage.py spice_gateway``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from asgiref.sync import sync_to_async
from django.conf import settings

from vdi.console import guards
from vdi.console.relay import VncConnection, connect_vnc
from vdi.console.spice_link import (
    Channel,
    LinkError,
    LinkMessage,
    SpiceProtocolError,
    refusal_reply,
)
from vdi.console.spice_proxy import (
    link_to_server,
    read_link,
    read_ticket,
    refused,
    sign_in_to_server,
)
from vdi.services import audit, spice
from vdi.services.access import Account
from vdi.services.console import Refusal, session_closed, session_opened, session_seen

log = logging.getLogger(__name__)
TARGET = re.compile(r"CONNECT desktop-(\d+)\.spice:\d+ HTTP/1\.[01]")


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (VDI_SPICE_GATEWAY_LISTEN) as a pair, or a ValueError that says why."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


async def read_connect(reader: asyncio.StreamReader) -> int | None:
    """The desktop a ``CONNECT`` asks for; None for anything else."""
    try:
        request = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    match = TARGET.fullmatch(request.split(b"\r\n", 1)[0].decode("latin-1"))
    return int(match.group(1)) if match else None


class Channelled:
    """One native client's channel, from its CONNECT to its end."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.address: str | None = peer[0] if peer else None
        self.server: VncConnection | None = None
        self.joined: spice.Joined | None = None
        self.link: LinkMessage | None = None

    async def run(self) -> None:
        try:
            desktop_id = await asyncio.wait_for(read_connect(self.reader),
                                                settings.CONSOLE_HANDSHAKE_TIMEOUT)
            if desktop_id is None:
                self.writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                return
            self.writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            linked = await asyncio.wait_for(self.linked(desktop_id),
                                            settings.CONSOLE_HANDSHAKE_TIMEOUT)
            if linked:
                await self.relay()
        except (SpiceProtocolError, ConnectionError, OSError, TimeoutError,
                asyncio.IncompleteReadError) as exc:
            log.info("SPICE gateway, client %s: %s", self.address, exc)
        finally:
            await self.finish()

    async def linked(self, desktop_id: int) -> bool:
        link = self.link = await read_link(self.reader.readexactly)
        if link.channel_type == Channel.MAIN and not await guards.allow_connect(self.address,
                                                                                None):
            return await self.refuse(desktop_id, "too many connects", before_server=True)
        if not await sync_to_async(spice.native_link_expected)(desktop_id, link.channel_type,
                                                               self.address):
            return await self.refuse(desktop_id, "no .vv password or session waits for it",
                                     before_server=True)
        endpoint = await sync_to_async(spice.endpoint)(desktop_id, None)
        if isinstance(endpoint, Refusal):
            return await self.refuse(desktop_id, endpoint.reason, before_server=True)
        self.server = await asyncio.wait_for(connect_vnc(*endpoint),
                                             settings.CONSOLE_CONNECT_TIMEOUT)
        server_link = await link_to_server(self.server, link)
        self.writer.write(server_link.for_client)
        if server_link.error != LinkError.OK:
            return False
        ticket = await read_ticket(self.reader.readexactly, link)
        joined = await sync_to_async(spice.join)(
            ticket.ticket, link.channel_type, desktop_id, spice.Caller(None, None, self.address))
        if isinstance(joined, Refusal):
            return await self.refuse(desktop_id, joined.reason)
        answer = await sign_in_to_server(self.server, server_link, ticket.mechanism,
                                         joined.target.password)
        self.writer.write(answer)
        self.joined = joined
        return answer == bytes(4)

    async def refuse(self, desktop_id: int, reason: str, before_server: bool = False) -> bool:
        self.writer.write(refusal_reply(LinkError.PERMISSION_DENIED) if before_server
                          else refused())
        channel = self.link.channel_name if self.link else "link"
        log.info("SPICE gateway refused %s of desktop %s to %s: %s", channel, desktop_id,
                 self.address, reason)
        await guards.count_refusal(self.address, reason)
        return False

    async def relay(self) -> None:
        assert self.server is not None and self.joined is not None
        joined, server = self.joined, self.server
        session_id = None
        user = await self.user()
        if user is None:
            return
        if joined.main:
            session_id = await sync_to_async(session_opened)(
                joined.target.desktop_id, user, False, self.address)
            await self.audit("console.open")
        tasks = [asyncio.create_task(self.to_server(server)),
                 asyncio.create_task(self.to_client(server)),
                 asyncio.create_task(self.watch(session_id))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED,
                               timeout=settings.CONSOLE_MAX_SECONDS)
        finally:
            for task in tasks:
                task.cancel()
            if session_id is not None:
                await sync_to_async(session_closed)(session_id)
                await self.audit("console.close")

    async def to_server(self, server: VncConnection) -> None:
        while data := await self.reader.read(65536):
            await server.write(data)

    async def to_client(self, server: VncConnection) -> None:
        while data := await server.read():
            self.writer.write(data)
            await self.writer.drain()  # a slow client holds QEMU back, not our memory

    async def watch(self, session_id: int | None) -> None:
        """End the channel when its user or desktop may no longer have it."""
        assert self.joined is not None
        while True:
            await asyncio.sleep(settings.CONSOLE_RECHECK)
            refusal = await sync_to_async(spice.still_allowed_native)(self.joined)
            if refusal is not None:
                await self.audit("console.revoked", reason=refusal.reason)
                return
            if session_id is not None:
                await sync_to_async(session_seen)(session_id)

    async def user(self) -> Account | None:
        assert self.joined is not None
        return await Account.objects.filter(pk=self.joined.user_id).afirst()

    async def audit(self, action: str, **details: object) -> None:
        assert self.joined is not None
        await sync_to_async(audit.record)(
            await self.user(), action, None, self.address, desktop=self.joined.target.desktop_id,
            protocol="spice", client="native", **details)

    async def finish(self) -> None:
        joined, self.joined = self.joined, None
        if joined is not None and joined.main:
            await sync_to_async(spice.end_session)(joined.ticket_id)
        if self.server is not None:
            self.server.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.drain()
        self.writer.close()


async def serve(host: str, port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await Channelled(reader, writer).run()

    server = await asyncio.start_server(handle, host, port)
    log.info("SPICE gateway listening on %s:%s", host, port)
    async with server:
        await server.serve_forever()
