"""The pool's clipboard policy, enforced on the browser's clipboard messages.

Text crosses the VNC console through QEMU's vdagent clipboard and the RFB extended clipboard
(ClientCutText with a negative length: caps, request, peek, notify, provide), or the legacy
ClientCutText (Latin-1, into the guest). Every transfer out of the guest starts with the
browser's *request* (QEMU never pushes the text), and every transfer into it with the
browser's *notify*/*provide* or a legacy cut text, so the policy holds by dropping browser
messages alone: the server's stream is never parsed. Text going in is also held to
``VDI_CLIPBOARD_MAX_BYTES``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from vdi.choices import ClipboardPolicy

CAPS, REQUEST, PEEK, NOTIFY, PROVIDE = (1 << 24, 1 << 25, 1 << 26, 1 << 27, 1 << 28)
TEXT = 1
TO_GUEST = "to_guest"
FROM_GUEST = "from_guest"


@dataclass(frozen=True)
class Refused:
    """A clipboard message the proxy dropped, and why, for the page to say."""

    direction: str  # TO_GUEST or FROM_GUEST
    reason: str


@dataclass(frozen=True)
class ClipboardRules:
    policy: ClipboardPolicy = ClipboardPolicy.BOTH
    max_bytes: int = 256 * 1024

    def check(self, message: bytes) -> Refused | None:
        """None when the ClientCutText ``message`` may go on to the guest."""
        length = struct.unpack_from("!i", message, 4)[0]
        if length >= 0:
            return self._into_guest(length)
        flags = struct.unpack_from("!I", message, 8)[0] if len(message) >= 12 else 0
        action = flags & 0xFF000000
        if action & CAPS:  # capabilities: the actions a side supports (noVNC names several),
            return None  # no text; QEMU answers with its own
        if action in (REQUEST, PEEK):
            return None if self.policy.from_guest else Refused(
                FROM_GUEST, "copying out of this desktop is turned off for its pool")
        if action == NOTIFY:
            return self._into_guest(0)
        if action == PROVIDE:
            return self._into_guest(_provided_text_size(message[12:], flags, self.max_bytes))
        return Refused(TO_GUEST, "an unknown clipboard message")

    def passed(self, message: bytes) -> bytes | Refused:
        """The message to send on (a provide without the NUL the RFB extension ends text
        with, which QEMU would hand the guest's clipboard), or why it is refused."""
        refused = self.check(message)
        if refused is not None:
            return refused
        length = struct.unpack_from("!i", message, 4)[0]
        if length < 0 and len(message) >= 12:
            flags = struct.unpack_from("!I", message, 8)[0]
            if flags & 0xFF000000 == PROVIDE and flags & TEXT:
                return _without_terminator(message, flags)
        return message

    @staticmethod
    def is_paste(message: bytes) -> bool:
        """A passed ClientCutText that puts text in the guest's clipboard (a provide, or the
        legacy cut text)."""
        length = struct.unpack_from("!i", message, 4)[0]
        if length >= 0:
            return True
        flags = struct.unpack_from("!I", message, 8)[0] if len(message) >= 12 else 0
        return flags & 0xFF000000 == PROVIDE

    def _into_guest(self, size: int) -> Refused | None:
        if not self.policy.to_guest:
            return Refused(TO_GUEST, "pasting into this desktop is turned off for its pool")
        if size > self.max_bytes:
            return Refused(TO_GUEST, f"the copied text is over {self.max_bytes} bytes, the "
                                     "clipboard's limit")
        return None


def _provided_text_size(compressed: bytes, flags: int, limit: int) -> int:
    """The size of the text in a provide message (a zlib stream of size-prefixed formats,
    text first); inflating stops just past ``limit``, so a bomb costs nothing."""
    if not flags & TEXT:
        return 0
    inflater = zlib.decompressobj()
    try:
        head = inflater.decompress(compressed, limit + 5)
    except zlib.error:
        return limit + 1
    if len(head) < 4:
        return limit + 1
    return int(struct.unpack_from("!I", head)[0])


def _without_terminator(message: bytes, flags: int) -> bytes:
    """The provide message with its text's final NUL dropped. Only a text-only provide is
    rewritten, and only its text is inflated (its size was checked against the limit)."""
    if flags & 0xFFFF != TEXT:
        return message
    inflater = zlib.decompressobj()
    head = inflater.decompress(message[12:], 4)
    size = struct.unpack_from("!I", head)[0]
    text = inflater.decompress(inflater.unconsumed_tail, size) if size else b""
    if len(text) != size or not text.endswith(b"\0"):
        return message
    body = zlib.compress(struct.pack("!I", size - 1) + text[:-1])
    return struct.pack("!BxxxiI", 6, -(4 + len(body)), flags) + body
