"""The browser's side of the RFB stream, read message by message (RFC 6143 and the
extensions noVNC sends), so that a view-only console can drop every input message while the
screen keeps updating, and a malformed or unknown message ends the console.

The stream starts after the proxy's own handshake with the browser (``BrowserGreeter``, which
takes the ClientInit byte too); without a greeter (a guest with no VNC password) it starts
with the version, the security type the browser picks and its ClientInit.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from vdi.console.clipboard import FROM_GUEST, ClipboardRules, Refused

# client message type -> (name, whether it is input: keys, pointer, clipboard, power, size)
MESSAGES: dict[int, tuple[str, bool]] = {
    0: ("SetPixelFormat", False),
    2: ("SetEncodings", False),
    3: ("FramebufferUpdateRequest", False),
    4: ("KeyEvent", True),
    5: ("PointerEvent", True),
    6: ("ClientCutText", True),
    150: ("EnableContinuousUpdates", False),
    248: ("ClientFence", False),
    250: ("XVP", True),  # power actions (Ctrl-Alt-Del-like) where servers offer them
    251: ("SetDesktopSize", True),
    255: ("QEMU", True),  # extended key events; audio control is let through below
}
QEMU_AUDIO = 1
# After text went into the guest, its session hands it on (PRIMARY and CLIPBOARD are kept in
# step) and the guest offers it back; the browser asks for it. Refused by a pool that keeps
# text in, that echo is not the user's copy: it is dropped without a note for so long.
ECHO_SECONDS = 5.0


class ProtocolError(Exception):
    """The browser sent something that is not an RFB client message we know."""


def _length(data: bytes | bytearray) -> int | None:
    """Length of the message at the start of ``data``; None until enough bytes are here."""
    kind = data[0]
    fixed = {0: 20, 3: 10, 4: 8, 5: 6, 150: 10, 250: 4}
    if kind in fixed:
        return fixed[kind]
    if kind == 2:
        return None if len(data) < 4 else 4 + 4 * struct.unpack_from("!H", data, 2)[0]
    if kind == 6:
        return None if len(data) < 8 else 8 + abs(struct.unpack_from("!i", data, 4)[0])
    if kind == 248:
        return None if len(data) < 9 else 9 + data[8]
    if kind == 251:
        return None if len(data) < 8 else 8 + 16 * data[6]
    if kind == 255:
        return _qemu_length(data)
    raise ProtocolError(f"unknown RFB client message type {kind}")


def _qemu_length(data: bytes | bytearray) -> int | None:
    if len(data) < 2:
        return None
    if data[1] == 0:  # extended key event
        return 12
    if data[1] == QEMU_AUDIO:
        if len(data) < 4:
            return None
        operation = struct.unpack_from("!H", data, 2)[0]
        return 10 if operation == 2 else 4
    raise ProtocolError(f"unknown QEMU client message {data[1]}")


class ClientStream:
    """Cuts the browser's bytes into whole messages; in view-only mode drops the input ones,
    and always the clipboard messages the pool's policy refuses (listed in ``refusals``)."""

    def __init__(self, view_only: bool, handshake: int = 1,
                 max_message: int = 1024 * 1024,
                 clipboard: ClipboardRules | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.view_only = view_only
        self.clock = clock
        self.pasted_at: float | None = None  # when text last went into the guest
        self.handshake = handshake  # bytes of handshake still to pass through as they are
        self.max_message = max_message
        self.clipboard = clipboard or ClipboardRules()
        self.buffer = bytearray()
        self.dropped = 0
        self.refusals: list[Refused] = []
        self.full_updates = 0  # non-incremental FramebufferUpdateRequests passed on

    def feed(self, data: bytes) -> bytes:
        """Bytes from the browser in; the bytes to send on to the VNC server out."""
        out = bytearray()
        if self.handshake:
            head, data = data[: self.handshake], data[self.handshake:]
            self.handshake -= len(head)
            out += head
        self.buffer += data
        while self.buffer:
            length = _length(self.buffer)
            if length is not None and length > self.max_message:
                raise ProtocolError(f"a {length}-byte message is over the limit")
            if length is None or len(self.buffer) < length:
                break
            message = bytes(self.buffer[:length])
            del self.buffer[:length]
            if self.view_only and self.is_input(message):
                self.dropped += 1
                continue
            if message[0] == 6:
                passed = self.clipboard.passed(message)
                if isinstance(passed, Refused):
                    self._refused(passed)
                    continue
                if self.clipboard.is_paste(passed):
                    self.pasted_at = self.clock()
                message = passed
            if message[0] == 3 and message[1] == 0:
                self.full_updates += 1
            out += message
        return bytes(out)

    def _refused(self, refused: Refused) -> None:
        echo = (refused.direction == FROM_GUEST and self.pasted_at is not None
                and self.clock() - self.pasted_at < ECHO_SECONDS)
        if not echo:
            self.refusals.append(refused)

    @staticmethod
    def is_input(message: bytes) -> bool:
        if message[0] == 255:
            return message[1] != QEMU_AUDIO
        return MESSAGES[message[0]][1]

