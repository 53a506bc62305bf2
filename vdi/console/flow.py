"""Backpressure from the browser's socket to the VNC reader.

Under uvicorn (websockets) an awaited ``send`` already waits while the socket's buffer is full.
Under daphne it does not: bytes pile up in Twisted's transport. For daphne we register a push
producer on the websocket protocol, so Twisted tells us when its buffer passes its limit
(``pauseProducing``) and when it drained (``resumeProducing``); the relay waits in between.

``FlowControlMiddleware`` is the outermost ASGI layer of the websocket route: it sees the
server's own ``send`` and puts a ``Flow`` into the scope as ``scope["vdi.flow"]``.
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
        """Register as the producer of a Twisted protocol (daphne); False if it is not one."""
        register = getattr(protocol, "registerProducer", None)
        if register is None:
            return False
        register(self, True)
        return True

    def detach(self, protocol: Any) -> None:
        unregister = getattr(protocol, "unregisterProducer", None)
        if unregister is not None and getattr(protocol, "transport", None) is not None:
            unregister()


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
        flow = Flow()
        scope = dict(scope)
        scope["vdi.flow"] = flow
        scope["vdi.protocol"] = server_protocol(send)
        await self.app(scope, receive, send)
