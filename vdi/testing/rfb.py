"""Just enough of the RFB protocol (RFC 6143) to prove a console reaches a guest's screen."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerInit:
    width: int
    height: int
    bits_per_pixel: int
    name: str
    security_types: tuple[int, ...] = ()  # what the server offered the client


class Stream:
    """Exact reads over a message-oriented transport (websocket frames)."""

    def __init__(self, recv: Callable[[], bytes], send: Callable[[bytes], None]) -> None:
        self._recv, self.send = recv, send
        self.buffer = b""

    def read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data


def handshake(stream: Stream) -> ServerInit:
    """ProtocolVersion, security type None, ClientInit (shared), ServerInit."""
    version = stream.read(12)
    assert version == b"RFB 003.008\n", version
    stream.send(b"RFB 003.008\n")
    (count,) = struct.unpack("!B", stream.read(1))
    assert count > 0, stream.read(struct.unpack("!I", stream.read(4))[0])
    types = list(stream.read(count))
    assert 1 in types, f"security types {types} (1 = None expected behind the proxy)"
    stream.send(b"\x01")
    (result,) = struct.unpack("!I", stream.read(4))
    assert result == 0, "security handshake failed"
    stream.send(b"\x01")  # ClientInit: shared
    width, height = struct.unpack("!HH", stream.read(4))
    pixel_format = stream.read(16)
    (name_length,) = struct.unpack("!I", stream.read(4))
    name = stream.read(name_length).decode(errors="replace")
    return ServerInit(width, height, pixel_format[0], name, tuple(types))


def first_update(stream: Stream, init: ServerInit) -> int:
    """Ask for the whole screen; return the number of rectangles of the first update."""
    stream.send(struct.pack("!BBHHHH", 3, 0, 0, 0, init.width, init.height))
    while True:
        (kind,) = struct.unpack("!B", stream.read(1))
        if kind == 0:  # FramebufferUpdate
            _pad, rectangles = struct.unpack("!BH", stream.read(3))
            return int(rectangles)
        if kind == 2:  # Bell
            continue
        if kind == 3:  # ServerCutText
            _pad, length = struct.unpack("!3sI", stream.read(7))
            stream.read(length)
            continue
        raise AssertionError(f"unexpected RFB message {kind} before the first update")


def framebuffer(stream: Stream, init: ServerInit) -> list[bytes]:
    """The whole screen as raw 32-bit pixels (one bytes object of 4 bytes a pixel per row)."""
    pixel_format = struct.pack("!BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
    stream.send(struct.pack("!B3x", 0) + pixel_format)  # SetPixelFormat
    stream.send(struct.pack("!BxHi", 2, 1, 0))  # SetEncodings: raw only
    stream.send(struct.pack("!BBHHHH", 3, 0, 0, 0, init.width, init.height))
    rows = [bytearray(init.width * 4) for _ in range(init.height)]
    while True:
        (kind,) = struct.unpack("!B", stream.read(1))
        if kind == 0:
            break
        if kind == 3:  # ServerCutText
            _pad, length = struct.unpack("!3sI", stream.read(7))
            stream.read(length)
    _pad, rectangles = struct.unpack("!BH", stream.read(3))
    for _ in range(rectangles):
        x, y, width, height, encoding = struct.unpack("!HHHHi", stream.read(12))
        if encoding != 0:  # a pseudo-encoding (desktop size...): no pixels follow
            continue
        for row in range(height):
            rows[y + row][x * 4:(x + width) * 4] = stream.read(width * 4)
    return [bytes(r) for r in rows]


def colours(rows: list[bytes]) -> int:
    """How many different colours a screen shows (a blank screen shows one)."""
    seen = set()
    for row in rows:
        for offset in range(0, len(row), 16):  # every 4th pixel is plenty
            seen.add(row[offset:offset + 3])
    return len(seen)
