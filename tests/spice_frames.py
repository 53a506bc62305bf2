"""Every websocket frame of a page running spice-html5, per socket, both ways, and what they
say: which SPICE channels linked, and the sound the playback channel carried."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from vdi.console.spice_link import Channel

LINK_OK = b"\0\0\0\0"
PLAYBACK_DATA = 101  # SPICE_MSG_PLAYBACK_DATA: a time stamp (4 bytes), then an Opus packet


class Frames:
    """Every websocket frame of the page, per socket, both ways."""

    def __init__(self, page: Any) -> None:
        self.sent: dict[str, list[bytes]] = defaultdict(list)
        self.received: dict[str, list[bytes]] = defaultdict(list)
        page.on("websocket", self.watch)

    def watch(self, ws: Any) -> None:
        ws.on("framesent", lambda frame: self.sent[ws.url + str(id(ws))].append(_bytes(frame)))
        ws.on("framereceived",
              lambda frame: self.received[ws.url + str(id(ws))].append(_bytes(frame)))

    def _sockets_of(self, channel: Channel) -> list[str]:
        return [key for key, sent in list(self.sent.items())
                if sent and len(sent[0]) > 20 and sent[0][20] == channel]

    def linked(self, channel: Channel) -> bool:
        """A socket linked this channel and QEMU accepted its password (through the proxy):
        after the link reply (a 16-byte header and its body) came the result 0, whichever
        frames carried them."""
        for key in self._sockets_of(channel):
            stream = b"".join(self.received[key])
            after_reply = 16 + int.from_bytes(stream[12:16], "little")
            if len(stream) >= 16 and stream[after_reply:after_reply + 4] == LINK_OK:
                return True
        return False

    def everything(self) -> bytes:
        return b"".join(b"".join(frames) for frames in (*self.sent.values(),
                                                         *self.received.values()))

    def playback_messages(self) -> list[tuple[int, int]]:
        """The (type, body size) of every message the playback channels received, in order:
        past the link reply (a 16-byte header and its body) and the link's result (4 bytes),
        each message is a mini header (type: 2 bytes, size: 4) and its body."""
        found: list[tuple[int, int]] = []
        for key in self._sockets_of(Channel.PLAYBACK):
            stream = b"".join(self.received[key])
            if len(stream) < 16:
                continue
            at = 16 + int.from_bytes(stream[12:16], "little") + 4
            while at + 6 <= len(stream):
                kind = int.from_bytes(stream[at:at + 2], "little")
                size = int.from_bytes(stream[at + 2:at + 6], "little")
                if at + 6 + size > len(stream):
                    break
                found.append((kind, size))
                at += 6 + size
        return found

    def sound_packets(self) -> list[int]:
        """The sizes of the sound packets the playback channels received, in order."""
        return [size - 4 for kind, size in self.playback_messages() if kind == PLAYBACK_DATA]

def _bytes(frame: Any) -> bytes:
    return frame if isinstance(frame, bytes) else frame.encode()
