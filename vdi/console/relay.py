"""The VNC side of a console: a TCP connection read in whole chunks, and the pump that
forwards them to the browser with a bounded amount in hand.

An ``asyncio.Protocol`` rather than a StreamReader: the chunks the kernel hands over are passed
on as they are, without being copied into and out of a buffer, and reading from the socket
pauses as soon as ``LIMIT`` bytes wait here.
"""

from __future__ import annotations

import asyncio
import collections
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from vdi.console.flow import Flow

LIMIT = 256 * 1024  # bytes waiting here before the VNC socket stops being read


@dataclass
class Counters:
    to_browser: int = 0
    to_vnc: int = 0
    started: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    reported: tuple[int, int] = (0, 0)  # what the metrics already have of both

    def unreported(self) -> tuple[int, int]:
        """Bytes to the browser and to the guest since the last call (for the metrics)."""
        to_browser, to_vnc = self.to_browser - self.reported[0], self.to_vnc - self.reported[1]
        self.reported = (self.to_browser, self.to_vnc)
        return to_browser, to_vnc


class VncConnection(asyncio.Protocol):
    # A console's fast lane (vdi.console.lane): takes a chunk at once, or says False and the
    # chunk waits here for the relay task. Asked only when nothing else waits, to keep order.
    passes: Callable[[bytes], bool] | None = None

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.closed = False
        self.transport: asyncio.Transport | None = None
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._reading_paused = False

    # --- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.passes is not None and not self.chunks and self.passes(data):
            return
        self.chunks.append(data)
        self.buffered += len(data)
        self._readable.set()
        if self.buffered >= self.limit and self.transport and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._finish()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _finish(self) -> None:
        self.closed = True
        self._readable.set()
        self._writable.set()

    # --- used by the consumer ---------------------------------------------------------------
    async def read(self) -> bytes:
        """The next chunk from the VNC server; b"" once it closed and everything was read."""
        while not self.chunks:
            if self.closed:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self.chunks.popleft()
        self.buffered -= len(data)
        if self._reading_paused and self.buffered < self.limit and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def read_exactly(self, count: int) -> bytes:
        """``count`` bytes (for the handshake); the rest of a chunk stays for ``read``."""
        data = b""
        while len(data) < count:
            chunk = await self.read()
            if not chunk:
                raise ConnectionError("VNC connection closed during the handshake")
            data += chunk
        if len(data) > count:
            extra = data[count:]
            self.chunks.appendleft(extra)
            self.buffered += len(extra)
        return data[:count]

    @property
    def writable(self) -> bool:
        """Whether a write now goes out without waiting for the VNC server to read."""
        return self._writable.is_set() and not self.closed

    def write_now(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise ConnectionError("VNC connection closed")
        self.transport.write(data)

    async def write(self, data: bytes) -> None:
        self.write_now(data)
        await self._writable.wait()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect_vnc(host: str, port: int, socket: str = "") -> VncConnection:
    """TCP to ``host:port``, or the unix ``socket`` when there is one."""
    loop = asyncio.get_running_loop()
    if socket:
        _transport, connection = await loop.create_unix_connection(VncConnection, socket)
    else:
        _transport, connection = await loop.create_connection(VncConnection, host, port)
    return connection


async def pump_to_browser(
    vnc: VncConnection,
    send_bytes: Callable[[bytes], Awaitable[None]],
    flow: Flow,
    counters: Counters,
) -> None:
    """Forward until the VNC side ends. Takes nothing from the VNC side while the browser side
    is paused, so the VNC server's TCP window closes instead of this process buffering."""
    while True:
        await flow.wait_writable()
        data = await vnc.read()
        if not data:
            return
        await send_bytes(data)
        counters.to_browser += len(data)
