"""The proxy's part in a SPICE channel's link, the same for the browser's websockets and for
native clients (``vdi.console.spice_gateway``).

1. The client's link message is read (which channel, which session it joins).
2. The same link goes to QEMU; QEMU's reply goes back with the proxy's public key in it.
3. The client's encrypted password is decrypted: it is a portal ticket, which the caller
   checks (``authorize``); a refused ticket gets SPICE's "permission denied" and nothing
   reaches QEMU.
4. QEMU gets its real password, encrypted with its own key, and its answer goes back.

From then on the channel's bytes are relayed unchanged.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from vdi.console.relay import VncConnection
from vdi.console.spice_link import (
    HEADER,
    RESULT,
    LinkError,
    LinkMessage,
    SpiceProtocolError,
    body_size,
    encrypt_password,
    parse_link,
    proxy_key,
    public_key_of,
    replace_public_key,
    reply_error,
    result,
)

ReadExactly = Callable[[int], Awaitable[bytes]]
Send = Callable[[bytes], Awaitable[None]]


class ClientBytes:
    """What the client sent, as it arrives (websocket frames), read in exact amounts."""

    def __init__(self) -> None:
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.closed = False
        self._arrived = asyncio.Event()

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        self._arrived.set()

    def close(self) -> None:
        self.closed = True
        self._arrived.set()

    async def read_exactly(self, count: int) -> bytes:
        while self.size < count:
            if self.closed:
                raise ConnectionError("the client left during the SPICE link")
            self._arrived.clear()
            await self._arrived.wait()
        data = b"".join(self.chunks)
        self.chunks.clear()
        if len(data) > count:
            self.chunks.append(data[count:])
        self.size = len(data) - count
        return data[:count]

    def rest(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.size = 0
        return data


async def read_link(read: ReadExactly) -> LinkMessage:
    header = await read(HEADER.size)
    return parse_link(header, await read(body_size(header)))


@dataclass(frozen=True)
class ServerLink:
    """QEMU's reply to a link: its public key, and the reply as the client gets it."""

    error: int
    public_key: bytes
    for_client: bytes


async def link_to_server(server: VncConnection, link: LinkMessage) -> ServerLink:
    await server.write(link.raw)
    header = await server.read_exactly(HEADER.size)
    body = await server.read_exactly(body_size(header))
    error = reply_error(body)
    if error != LinkError.OK:
        return ServerLink(error, b"", header + body)
    return ServerLink(error, public_key_of(body),
                      header + replace_public_key(body, proxy_key().public_der))


@dataclass(frozen=True)
class ClientTicket:
    mechanism: bytes  # the 4-byte mechanism the client chose (empty if it chose none)
    ticket: str | None  # None: not encrypted for the proxy's key


async def read_ticket(read: ReadExactly, link: LinkMessage) -> ClientTicket:
    data = await read(link.ticket_bytes)
    mechanism = data[:RESULT.size] if link.selects_auth else b""
    return ClientTicket(mechanism, proxy_key().decrypt(data[len(mechanism):]))


async def sign_in_to_server(server: VncConnection, server_link: ServerLink,
                            mechanism: bytes, password: str) -> bytes:
    """Send QEMU its password; its 4-byte answer (for the client)."""
    await server.write(mechanism + encrypt_password(server_link.public_key, password))
    return await server.read_exactly(RESULT.size)


def refused() -> bytes:
    return result(LinkError.PERMISSION_DENIED)


__all__ = ["ClientBytes", "ClientTicket", "ServerLink", "SpiceProtocolError", "link_to_server",
           "read_link", "read_ticket", "refused", "sign_in_to_server"]
