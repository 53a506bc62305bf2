"""Backpressure from the browser's socket to the VNC reader.

Under uvicorn (websockets) an awaited ``send`` already waits while the socket's buffer is full.
Under daphne it does not: bytes pile up in Twisted's transport. For daphne we register a push
producer on the websocket protocol, so Twisted tells us when its buffer passes its limit
(``pauseProducing``) and when it drained (``resumeProducing``); the relay waits in between.

``FlowControlMiddleware`` is the outermost ASGI layer of the websocket route: it sees the
server's own ``send`` and puts a ``Flow`` into the scope as ``scope["vdi.flow"]``. It also
gives the consumer a fast path for the browser's frames (``scope["vdi.inbound"]``): once the
consumer relays, each binary frame goes straight to the VNC socket from the task that
receives it, instead of waking the consumer's dispatch loop (a few event-loop turns a frame).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# Bytes Twisted may hold for one websocket before it pauses us (its default is 64 KiB, which
# stalls a fast console every chunk). This, plus one read, bounds a console's memory here.
TRANSPORT_BUFFER = 1024 * 1024


class Flow:
    """Says when the browser side can take more bytes."""

    def __init__(self) -> None:
        self._writable = asyncio.Event()
        self._writable.set()
        self.pauses = 0

    async def wait_writable(self) -> None:
        await self._writable.wait()

    @property
    def paused(self) -> bool:
        return not self._writable.is_set()

    # Twisted's IPushProducer
    def pauseProducing(self) -> None:
        self.pauses += 1
        self._writable.clear()

    def resumeProducing(self) -> None:
        self._writable.set()

    def stopProducing(self) -> None:
        self._writable.set()

    def attach(self, protocol: Any) -> bool:
        """Hear the pause/resume calls of a Twisted protocol's transport (daphne).

        The HTTP channel that upgraded the connection is already the transport's producer, so
        we listen alongside it; False if ``protocol`` is not a Twisted one.
        """
        transport = getattr(protocol, "transport", None)
        if transport is None or not hasattr(transport, "registerProducer"):
            return False
        no_delay = getattr(transport, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)  # keystrokes and small screen updates go out at once
        hold_more(transport, TRANSPORT_BUFFER)
        current = getattr(transport, "producer", None)
        if current is None:
            transport.registerProducer(self, True)
        else:
            transport.producer = _Both(current, self)
        return True

    def detach(self, protocol: Any) -> None:
        transport: Any = getattr(protocol, "transport", None)
        producer = getattr(transport, "producer", None)
        if isinstance(producer, _Both) and producer.second is self:
            transport.producer = producer.first
        elif producer is self:
            transport.unregisterProducer()


def hold_more(transport: Any, limit: int) -> None:
    """Let Twisted hold up to ``limit`` bytes before it pauses us.

    Twisted pauses its producer once its buffer passes ``bufferSize``, but ``bufferSize`` is
    also how much each read asks the kernel for: raising it made every browser frame map, and
    unmap, a ``limit``-sized buffer. So the fullness check itself gets the larger limit, and
    reads stay at Twisted's 64 KiB.
    """
    if not callable(getattr(transport, "_isSendBufferFull", None)):
        transport.bufferSize = max(getattr(transport, "bufferSize", 0), limit)  # older Twisted
        return

    def full() -> bool:
        return bool(len(transport.dataBuffer) + transport._tempDataLen > limit)

    transport._isSendBufferFull = full


class _Both:
    """Two push producers told the same thing."""

    def __init__(self, first: Any, second: Flow) -> None:
        self.first, self.second = first, second

    def pauseProducing(self) -> None:
        self.first.pauseProducing()
        self.second.pauseProducing()

    def resumeProducing(self) -> None:
        self.first.resumeProducing()
        self.second.resumeProducing()

    def stopProducing(self) -> None:
        self.first.stopProducing()
        self.second.stopProducing()


def server_protocol(send: Send) -> Any | None:
    """Daphne's websocket protocol behind its ``send`` (a partial of handle_reply)."""
    if isinstance(send, functools.partial) and send.args:
        protocol = send.args[0]
        if hasattr(protocol, "registerProducer"):
            return protocol
    return None


class FlowControlMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        inbound = Inbound(receive)
        scope = dict(scope)
        scope["vdi.flow"] = Flow()
        scope["vdi.protocol"] = server_protocol(send)
        scope["vdi.inbound"] = inbound
        await self.app(scope, inbound.receive, send)


FROM_SERVER = object()  # marks the server's own messages: a channel layer can't forge it


def from_server(message: dict[str, Any]) -> bool:
    """Whether ``message`` came from the ASGI server (the browser), not from a channel layer
    (where any local process that reaches Redis could put a ``websocket.receive``)."""
    return message.get(FROM_SERVER) is True  # type: ignore[call-overload]


class Inbound:
    """The browser's messages; binary frames go to ``sink`` while one is set. Every message
    that does reach the consumer is marked as the server's (``from_server``)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.sink: Callable[[bytes], Awaitable[None]] | None = None
        self.busy = False  # a frame is on its way to the sink (the fast lane waits for it)

    async def receive(self) -> dict[str, Any]:
        while True:
            message = await self._receive()
            sink = self.sink
            if sink is not None and message["type"] == "websocket.receive" and message.get(
                "bytes"
            ):
                self.busy = True
                try:
                    await sink(message["bytes"])
                finally:
                    self.busy = False
                continue
            marked: dict[Any, Any] = dict(message)
            marked[FROM_SERVER] = True
            return marked
