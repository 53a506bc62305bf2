"""Copying bytes from the VNC server to the browser with a bounded amount in hand."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from vdi.console.flow import Flow

CHUNK = 64 * 1024  # read size, and the StreamReader's buffer limit


@dataclass
class Counters:
    to_browser: int = 0
    to_vnc: int = 0
    started: float = field(default_factory=lambda: asyncio.get_running_loop().time())


async def pump_to_browser(
    reader: asyncio.StreamReader,
    send_bytes: Callable[[bytes], Awaitable[None]],
    flow: Flow,
    counters: Counters,
) -> None:
    """Forward until the VNC side ends. Reads nothing while the browser side is paused, so the
    VNC server's TCP window closes instead of this process buffering."""
    while True:
        await flow.wait_writable()
        data = await reader.read(CHUNK)
        if not data:
            return
        await send_bytes(data)
        counters.to_browser += len(data)
