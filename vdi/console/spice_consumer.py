"""A SPICE channel in the browser: one websocket per channel, as spice-html5 opens them.

The websocket is accepted for a signed-in user (origin checked by the stack, connects rate
limited per main channel). Then the channel's link goes to QEMU with the proxy's key swapped
in, the password the browser encrypted (its console ticket) is checked against the SPICE
session rules (``vdi.services.spice``), and QEMU gets its real password: the browser never
holds it. A refused channel gets SPICE's "permission denied" and a close code that says why.
Once linked, bytes are relayed unchanged, with the VNC console's flow control, notices,
access re-checks and session bookkeeping (for the main channel).
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from vdi.console import guards
from vdi.console.codes import CloseCode
from vdi.console.consumer import ConsoleConsumer
from vdi.console.flow import Flow
from vdi.console.lane import Lane
from vdi.console.notify import desktop_group, user_group
from vdi.console.relay import Counters, connect_vnc
from vdi.console.spice_link import (
    Channel,
    LinkError,
    LinkMessage,
    SpiceProtocolError,
    refusal_reply,
)
from vdi.console.spice_proxy import (
    ClientBytes,
    link_to_server,
    read_link,
    read_ticket,
    refused,
    sign_in_to_server,
)
from vdi.services import spice
from vdi.services.console import Refusal

log = logging.getLogger(__name__)


class SpiceConsumer(ConsoleConsumer):
    joined: spice.Joined | None = None
    link: LinkMessage | None = None

    async def connect(self) -> None:
        self.desktop_id = int(self.scope["url_route"]["kwargs"]["desktop_id"])
        self.flow = self.scope.get("vdi.flow") or Flow()
        self.tasks = []
        self.timers = []
        self.asks = {}
        self.incoming = ClientBytes()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.refuse(Refusal(CloseCode.NOT_SIGNED_IN, "not signed in"))
            return
        await self.accept_once()
        self.tasks.append(asyncio.create_task(self.link_channel()))

    # --- the link ---------------------------------------------------------------------------
    async def link_channel(self) -> None:
        try:
            await asyncio.wait_for(self.linked(), settings.CONSOLE_HANDSHAKE_TIMEOUT)
        except SpiceProtocolError as exc:
            log.warning("SPICE channel of desktop %s: %s", self.desktop_id, exc)
            await self.end(CloseCode.PROTOCOL_ERROR)
        except TimeoutError:
            await self.end(CloseCode.HANDSHAKE_TIMEOUT)
        except (ConnectionError, OSError) as exc:
            await self.refuse(Refusal(CloseCode.VNC_UNREACHABLE, f"SPICE link failed: {exc}"))

    async def linked(self) -> None:
        user = self.scope["user"]
        link = self.link = await read_link(self.incoming.read_exactly)
        main = link.channel_type == Channel.MAIN
        if main and not await guards.allow_connect(self.client_address(), user.pk):
            await self.refuse_link(Refusal(CloseCode.RATE_LIMITED, "too many connects"))
            return
        if not main and not await database_sync_to_async(spice.may_join)(user.pk,
                                                                          self.desktop_id):
            await self.refuse_link(Refusal(CloseCode.TICKET_REFUSED,
                                           f"{link.channel_name}: no SPICE session to join"))
            return
        endpoint = await database_sync_to_async(spice.endpoint)(self.desktop_id, user)
        if isinstance(endpoint, Refusal):
            await self.refuse_link(endpoint)
            return
        self.vnc = await asyncio.wait_for(connect_vnc(*endpoint),
                                          settings.CONSOLE_CONNECT_TIMEOUT)
        server = await link_to_server(self.vnc, link)
        await self.send(bytes_data=server.for_client)
        if server.error != LinkError.OK:
            await self.end(CloseCode.VNC_UNREACHABLE)
            return
        ticket = await read_ticket(self.incoming.read_exactly, link)
        joined = await database_sync_to_async(spice.join)(
            ticket.ticket, link.channel_type, self.desktop_id,
            spice.Caller(user, self.session_key(), self.client_address()))
        if isinstance(joined, Refusal):
            await self.send(bytes_data=refused())
            await self.refuse(Refusal(joined.code, f"{link.channel_name}: {joined.reason}"))
            return
        self.joined = joined
        answer = await sign_in_to_server(self.vnc, server, ticket.mechanism,
                                         joined.target.password)
        await self.send(bytes_data=answer)
        if answer != bytes(4):
            await self.refuse(Refusal(CloseCode.VNC_UNREACHABLE, "QEMU refused the password"))
            return
        await self.relay(joined)

    async def refuse_link(self, refusal: Refusal) -> None:
        await self.send(bytes_data=refusal_reply(LinkError.PERMISSION_DENIED))
        await self.refuse(refusal)

    async def relay(self, joined: spice.Joined) -> None:
        assert self.vnc is not None
        target = self.target = joined.target
        await self.channel_layer.group_add(desktop_group(target.desktop_id), self.channel_name)
        await self.channel_layer.group_add(user_group(self.scope["user"].pk), self.channel_name)
        protocol = self.scope.get("vdi.protocol")
        if protocol is not None:
            self.flow.attach(protocol)
            self.lane = Lane.attach(protocol)
        self.counters = Counters()
        if rest := self.incoming.rest():
            await self.vnc.write(rest)
        inbound = self.scope.get("vdi.inbound")
        if inbound is not None:
            inbound.sink = self.forward_to_vnc
        if self.lane is not None:
            self.lane.listen(self.take_frames, self.can_take_frames)
            self.vnc.passes = self.pass_to_browser
        if joined.main:
            await self.opened(target)
            return
        self.tasks += [asyncio.create_task(self.relay_from_vnc(self.vnc)),
                       asyncio.create_task(self.watch_access())]

    # --- the browser's bytes ----------------------------------------------------------------
    async def forward_to_vnc(self, bytes_data: bytes) -> None:
        if self.closing:
            return
        if self.joined is None:  # still linking: the link step reads these
            self.incoming.feed(bytes_data)
            return
        if not self.relaying() or self.vnc is None:
            return
        try:
            await self.vnc.write(self.pass_on(bytes_data))
        except (ConnectionError, OSError):
            await self.end(CloseCode.NORMAL)

    def relaying(self) -> bool:
        return self.vnc is not None and not self.closing and self.joined is not None

    def pass_on(self, data: bytes) -> bytes:
        """After the link step (the proxy's to answer) SPICE's bytes pass as they are."""
        if self.counters is not None:
            self.counters.to_vnc += len(data)
        return data

    async def page_says(self, text: str) -> None:
        """spice-html5 sends only binary frames."""

    # --- bookkeeping --------------------------------------------------------------------------
    async def audit(self, action: str, **details: object) -> None:
        """The session is audited through its main channel; other channels only when they
        are refused or revoked."""
        channel = self.link.channel_name if self.link is not None else "link"
        if action in ("console.open", "console.close") and channel != "main":
            return
        await super().audit(action, protocol="spice", channel=channel, **details)

    async def cleanup(self) -> None:
        self.incoming.close()
        joined, self.joined = self.joined, None
        if joined is not None and joined.main:
            await database_sync_to_async(spice.end_session)(joined.ticket_id)
        await super().cleanup()

    async def vdi_watch(self, event: dict[str, object]) -> None:
        """SPICE consoles are never watched."""

    async def vdi_keyboard(self, event: dict[str, object]) -> None:
        """SPICE channels carry SPICE only: their page shows no keyboard layout."""
