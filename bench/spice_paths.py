"""The SPICE half of bench/console_proxy.py: QEMU's real SPICE server (no guest), reached
directly, through websockify, through the portal's SPICE websocket (daphne) and through the
native-client gateway.

Two measures per path, each run in the same process against the same server:
- session open: a main channel linked (password step included) until SPICE_MSG_MAIN_INIT,
  then an inputs channel joined to it: what a console pays before its first frame;
- input round trip: four mouse motions on the inputs channel until the server's motion ack
  (SPICE acks every fourth), p50 and p99.
Throughput is the VNC half's: once linked, a SPICE channel is relayed by the same code.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from vdi.console.spice_link import (
    AUTH_SPICE,
    HEADER,
    RESULT,
    Channel,
    body_size,
    encrypt_password,
    public_key_of,
    reply_error,
)
from vdi.testing.spice_client import link_message

MOTION = struct.pack("<HIiiH", 111, 10, 1, 1, 0)  # SPICE_MSGC_INPUTS_MOUSE_MOTION, mini header
MOTION_ACK = 111  # SPICE_MSG_INPUTS_MOUSE_MOTION_ACK
MAIN_INIT = 103


class Stream:
    """Exact reads over something that hands out chunks (TCP or websocket frames)."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]],
                 recv: Callable[[], Awaitable[bytes]], close: Callable[[], Awaitable[None]]):
        self.send, self._recv, self.close = send, recv, close
        self.buffer = b""

    async def read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = await self._recv()
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    async def message(self) -> tuple[int, bytes]:
        kind, size = struct.unpack("<HI", await self.read(6))
        return kind, await self.read(size)

    async def until(self, kind: int) -> bytes:
        while True:
            got, body = await self.message()
            if got == kind:
                return body


async def link(stream: Stream, channel: int, password: str, connection_id: int = 0) -> None:
    await stream.send(link_message(channel, connection_id))
    header = await stream.read(HEADER.size)
    body = await stream.read(body_size(header))
    if reply_error(body):
        raise ConnectionError(f"link refused ({reply_error(body)})")
    await stream.send(RESULT.pack(AUTH_SPICE) + encrypt_password(public_key_of(body), password))
    if (result := RESULT.unpack(await stream.read(RESULT.size))[0]) != 0:
        raise ConnectionError(f"password refused ({result})")


@dataclass
class SpicePath:
    name: str
    pid: int | None
    open: Callable[[], Awaitable[Stream]]  # a fresh connection
    password: Callable[[], Awaitable[str]]  # what the client gives as its SPICE password


async def open_session(path: SpicePath) -> tuple[Stream, Stream, float]:
    """Main channel to MAIN_INIT, then inputs joined: both streams and the seconds taken."""
    password = await path.password()
    started = time.perf_counter()
    main = await path.open()
    await link(main, Channel.MAIN, password)
    session_id = struct.unpack_from("<I", await main.until(MAIN_INIT))[0]
    inputs = await path.open()
    await link(inputs, Channel.INPUTS, password, session_id)
    return main, inputs, time.perf_counter() - started


async def measure_spice(path: SpicePath, sessions: int, pings: int) -> dict[str, float]:
    opens = []
    for _ in range(sessions):
        main, inputs, seconds = await open_session(path)
        opens.append(seconds * 1000)
        await inputs.close()
        await main.close()
        await asyncio.sleep(0.05)  # QEMU forgets the old client before the next
    main, inputs, _ = await open_session(path)
    samples = []
    for _ in range(pings):
        started = time.perf_counter()
        await inputs.send(MOTION * 4)
        await inputs.until(MOTION_ACK)
        samples.append((time.perf_counter() - started) * 1e6)
    await inputs.close()
    await main.close()
    return {"open ms": statistics.median(opens), "p50 us": statistics.median(samples),
            "p99 us": statistics.quantiles(samples, n=100)[98]}


async def tcp_stream(host: str, port: int, connect_to: str | None = None) -> Stream:
    """TCP, optionally through an HTTP CONNECT proxy (as remote-viewer uses the gateway)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if connect_to is not None:
        writer.write(f"CONNECT {connect_to} HTTP/1.1\r\nHost: {connect_to}\r\n\r\n".encode())
        answer = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in answer.split(b"\r\n", 1)[0] + b" ":
            raise ConnectionError(answer.decode(errors="replace"))

    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def close() -> None:
        writer.close()

    return Stream(send, lambda: reader.read(65536), close)


def report_spice(results: dict[str, dict[str, float]]) -> None:
    peer = results["websockify"]
    print("\nSPICE through the proxies (QEMU's SPICE server, no guest; peer = websockify in "
          "front of the same server, same run)")
    print("| path                   | session open ms | x peer | input p50 us | x peer | "
          "p99 us | x peer |")
    print("|------------------------|-----------------|--------|--------------|--------|"
          "--------|--------|")
    for name, r in results.items():
        def ratio(key: str, r: dict[str, float] = r) -> str:
            return f"{r[key] / peer[key]:6.2f}"
        print(f"| {name:<22} | {r['open ms']:15.2f} | {ratio('open ms')} | "
              f"{r['p50 us']:12.0f} | {ratio('p50 us')} | {r['p99 us']:6.0f} | "
              f"{ratio('p99 us')} |")
