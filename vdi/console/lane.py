"""A console's fast lane under daphne: the browser's small binary frames and the VNC server's
bytes cross without event-loop turns.

On the usual path a keystroke waits for four turns of the event loop: Twisted reads it, daphne
queues it for the consumer's task, the consumer writes it to the VNC socket; the answer wakes
the relay task, which hands it to daphne, and Twisted sends it on the next turn. The lane
takes what needs nothing but the relay straight through, from the callbacks that receive it:

- **in:** while autobahn holds nothing half-read, a read that is only whole, masked, final
  binary frames goes to ``on_frames`` at once (the consumer's filter and the VNC socket);
  anything else (text, control frames, fragments, a frame split across reads, the consumer
  not ready) goes through autobahn and daphne as before, and so does every read after it until
  autobahn's buffer is empty again, so the order of the browser's bytes is kept;
- **out:** a binary message is framed here and sent on the socket at once when Twisted holds
  nothing for it; what the kernel does not take goes to Twisted's buffer, whose fullness
  still pauses the relay (``vdi.console.flow``).

The lane is only for daphne's own TCP connections: over TLS terminated in daphne (or any
other transport) the console keeps the usual path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

OPEN = 3  # autobahn's WebSocketProtocol.STATE_OPEN
SEND_GROUND = 0  # autobahn's SEND_STATE_GROUND: no fragmented message being sent
BINARY_FINAL = 0x82  # FIN, no extension bits, opcode 2
LARGEST = 65535  # frames with a 16-bit length at most take the lane
# What the lane reads of autobahn's protocol and of Twisted's TCP transport.
PROTOCOL_NEEDS = ("state", "data", "current_frame", "inside_message", "send_queue",
                  "send_state", "last_ping", "application_queue")
TRANSPORT_NEEDS = ("socket", "dataBuffer", "offset", "_tempDataLen")

log = logging.getLogger(__name__)


def unmask(key: bytes, payload: bytes) -> bytes:
    size = len(payload)
    if not size:
        return payload
    mask = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(size, "big")


def read_frames(data: bytes, limit: int = LARGEST) -> list[bytes] | None:
    """The payloads of ``data`` when it is nothing but whole, masked, final binary frames of at
    most ``limit`` bytes each, in their shortest length encoding; otherwise None."""
    payloads, at, end = [], 0, len(data)
    while at < end:
        if end - at < 6 or data[at] != BINARY_FINAL or not data[at + 1] & 0x80:
            return None
        length, at = data[at + 1] & 0x7F, at + 2
        if length == 127:
            return None
        if length == 126:
            length, at = int.from_bytes(data[at:at + 2], "big"), at + 2
            if length < 126:
                return None  # not the shortest encoding: autobahn refuses it
        if length > limit or end - at < 4 + length:
            return None
        key, at = data[at:at + 4], at + 4
        payloads.append(unmask(key, data[at:at + length]))
        at += length
    return payloads


def frame(payload: bytes) -> bytes:
    """``payload`` as one final, unmasked binary frame (server to browser)."""
    size = len(payload)
    if size < 126:
        head = bytes((BINARY_FINAL, size))
    elif size < 65536:
        head = bytes((BINARY_FINAL, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((BINARY_FINAL, 127)) + size.to_bytes(8, "big")
    return head + payload


class Lane:
    """Attached to one daphne websocket protocol for as long as its console relays."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.transport = protocol.transport
        self.on_frames: Callable[[list[bytes]], None] | None = None
        self.ready: Callable[[], bool] = lambda: False
        self.largest = getattr(protocol, "maxMessagePayloadSize", 0) or 2**63  # daphne's cap
        self.limit = min(self.largest, LARGEST)

    @classmethod
    def attach(cls, protocol: Any) -> Lane | None:
        """A lane for daphne's websocket ``protocol`` over plain TCP, or None."""
        transport = getattr(protocol, "transport", None)
        if not hasattr(protocol, "application_queue") or getattr(transport, "TLS", True):
            return None  # not daphne's, or TLS in daphne: the usual path
        missing = [name for name in PROTOCOL_NEEDS if not hasattr(protocol, name)] + [
            name for name in TRANSPORT_NEEDS if not hasattr(transport, name)]
        if missing:
            log.warning("the console's fast lane is off: autobahn or Twisted changed (no %s)",
                        ", ".join(missing))
            return None
        return cls(protocol)

    # --- in ---------------------------------------------------------------------------------
    def listen(self, on_frames: Callable[[list[bytes]], None], ready: Callable[[], bool]) -> None:
        """``on_frames`` takes the browser's payloads while ``ready()`` says the consumer has
        nothing queued and can take them now."""
        self.on_frames, self.ready = on_frames, ready
        self.protocol.dataReceived = self._data_received  # shadows autobahn's, until close

    def close(self) -> None:
        self.on_frames = None
        self.protocol.__dict__.pop("dataReceived", None)

    def _data_received(self, data: bytes) -> None:
        protocol, on_frames = self.protocol, self.on_frames
        if on_frames is not None and self._autobahn_idle() and self.ready():
            payloads = read_frames(data, self.limit)
            if payloads is not None:
                protocol.last_ping = time.time()  # what daphne's onMessage notes of traffic
                on_frames(payloads)
                return
        type(protocol).dataReceived(protocol, data)

    def _autobahn_idle(self) -> bool:
        protocol = self.protocol
        return (protocol.state == OPEN and not protocol.data and protocol.current_frame is None
                and not protocol.inside_message and not protocol.application_queue.qsize())

    # --- out --------------------------------------------------------------------------------
    def send(self, payload: bytes) -> None:
        """One binary message to the browser."""
        protocol, transport = self.protocol, self.transport
        if (protocol.state != OPEN or protocol.send_queue or protocol.send_state != SEND_GROUND
                or len(payload) > self.largest):
            protocol.sendMessage(payload, isBinary=True)
            return
        data = frame(payload)
        if transport._tempDataLen or transport.offset != len(transport.dataBuffer):
            transport.write(data)  # behind what Twisted already holds
            return
        try:
            sent = transport.socket.send(data)
        except OSError:  # full (Twisted waits for room), or broken (Twisted's write finds it)
            sent = 0
        if sent < len(data):
            transport.write(data[sent:])

