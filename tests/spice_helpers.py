"""A browser's SPICE channel over the portal's websocket, as spice-html5 links it."""

from __future__ import annotations

import struct
from typing import Any

from vdi.console.spice_link import (
    AUTH_SPICE,
    HEADER,
    RESULT,
    body_size,
    encrypt_password,
    public_key_of,
    reply_error,
)
from vdi.testing.spice_client import link_message


class SpiceChannel:
    """One channel's websocket: link it with a ticket, then read its messages."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.buffer = b""
        self.received = b""  # every byte the browser got
        self.server_key = b""

    async def read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            message = await self.ws.receive_output(timeout=10)
            if message["type"] != "websocket.send" or message.get("bytes") is None:
                raise ConnectionError(f"closed: {message}")
            self.buffer += message["bytes"]
            self.received += message["bytes"]
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    async def link(self, channel: int, ticket: str, connection_id: int = 0) -> int:
        connected, _ = await self.ws.connect()
        assert connected
        await self.ws.send_to(bytes_data=link_message(channel, connection_id))
        header = await self.read(HEADER.size)
        body = await self.read(body_size(header))
        if (error := reply_error(body)) != 0:
            return error
        self.server_key = public_key_of(body)
        await self.ws.send_to(bytes_data=RESULT.pack(AUTH_SPICE)
                              + encrypt_password(self.server_key, ticket))
        return int(RESULT.unpack(await self.read(RESULT.size))[0])

    async def session_id(self) -> int:
        """The main channel's SPICE_MSG_MAIN_INIT: the id other channels join with."""
        while True:
            kind, size = struct.unpack("<HI", await self.read(6))
            body = await self.read(size)
            if kind == 103:
                return int(struct.unpack_from("<I", body)[0])

    async def closed_with(self) -> int:
        while True:
            message = await self.ws.receive_output(timeout=10)
            if message["type"] == "websocket.close":
                return int(message["code"])
