"""The console websocket: check the ticket, open the guest's VNC port, relay bytes both ways.

Refusals happen before any VNC byte moves; the close code says why (``vdi.console.codes``).
The consumer also closes when the VNC side ends, when the desktop stops or is deleted (a
message on the group ``desktop-<id>``), and after ``VDI_CONSOLE_MAX_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from vdi.console.codes import CloseCode
from vdi.console.flow import Flow
from vdi.console.notify import desktop_group, user_group
from vdi.console.relay import Counters, VncConnection, connect_vnc, pump_to_browser
from vdi.console.vnc_auth import BrowserGreeter, VncAuthError, sign_in
from vdi.services import audit
from vdi.services.console import (
    SUBPROTOCOL,
    ConsoleTarget,
    Refusal,
    open_console,
    record_console_error,
    session_closed,
    session_opened,
    session_seen,
    ticket_from_subprotocols,
)

log = logging.getLogger(__name__)


class ConsoleConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    target: ConsoleTarget | None = None
    vnc: VncConnection | None = None
    pump: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    heartbeat: asyncio.Task[None] | None = None
    greeter: BrowserGreeter | None = None
    session_id: int | None = None
    counters: Counters | None = None
    closing = False

    # --- opening ------------------------------------------------------------------------------
    async def connect(self) -> None:
        self.desktop_id = int(self.scope["url_route"]["kwargs"]["desktop_id"])
        self.flow: Flow = self.scope.get("vdi.flow") or Flow()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.refuse(Refusal(CloseCode.NOT_SIGNED_IN, "not signed in"))
            return
        raw = ticket_from_subprotocols(self.scope.get("subprotocols", []))
        if raw is None:
            await self.refuse(Refusal(CloseCode.NO_TICKET, "no ticket presented"))
            return
        session = self.scope.get("session")
        result = await database_sync_to_async(open_console)(
            raw, user, getattr(session, "session_key", None), self.desktop_id
        )
        if isinstance(result, Refusal):
            await self.refuse(result)
            return
        await self.start_relay(result)

    async def start_relay(self, target: ConsoleTarget) -> None:
        try:
            self.vnc = await asyncio.wait_for(
                connect_vnc(target.host, target.port), settings.CONSOLE_CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            reason = f"VNC endpoint {target.host}:{target.port} unreachable ({exc})"
            await self.refuse(Refusal(CloseCode.VNC_UNREACHABLE, reason))
            return
        if target.password and not await self.sign_in_to_vnc(target):
            return
        self.target = target
        await self.channel_layer.group_add(desktop_group(target.desktop_id), self.channel_name)
        await self.channel_layer.group_add(user_group(self.scope["user"].pk), self.channel_name)
        await self.accept(self.subprotocol())
        protocol = self.scope.get("vdi.protocol")
        if protocol is not None:
            self.flow.attach(protocol)
        self.counters = Counters()
        if target.password:  # the browser gets a handshake that needs no password
            self.greeter = BrowserGreeter()
            await self.send_bytes(self.greeter.opening())
        inbound = self.scope.get("vdi.inbound")
        if inbound is not None:
            inbound.sink = self.forward_to_vnc
        await self.audit("console.open")
        self.session_id = await database_sync_to_async(session_opened)(
            target.desktop_id, self.scope.get("user"))
        self.heartbeat = asyncio.create_task(self.beat(self.session_id))
        self.pump = asyncio.create_task(self.relay_from_vnc(self.vnc))
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(
            settings.CONSOLE_MAX_SECONDS,
            lambda: asyncio.ensure_future(self.end(CloseCode.SESSION_LIMIT)),
        )

    async def sign_in_to_vnc(self, target: ConsoleTarget) -> bool:
        assert self.vnc is not None
        try:
            await asyncio.wait_for(sign_in(self.vnc, target.password),
                                   settings.CONSOLE_CONNECT_TIMEOUT)
        except (VncAuthError, ConnectionError, TimeoutError) as exc:
            self.vnc.close()
            self.vnc = None
            await self.refuse(Refusal(CloseCode.VNC_UNREACHABLE, f"VNC sign-in failed: {exc}"))
            return False
        return True

    def subprotocol(self) -> str | None:
        return SUBPROTOCOL if SUBPROTOCOL in self.scope.get("subprotocols", []) else None

    async def refuse(self, refusal: Refusal) -> None:
        """Accept only to close with a code the page can explain; no VNC byte is sent."""
        user = self.scope.get("user")
        log.info("console for desktop %s refused: %s", self.desktop_id, refusal.reason)
        if user is not None and user.is_authenticated:
            await database_sync_to_async(record_console_error)(self.desktop_id, user,
                                                               refusal.reason)
        await database_sync_to_async(audit.record)(
            user if user is not None and user.is_authenticated else None, "console.refused",
            None, self.client_address(), desktop=self.desktop_id, reason=refusal.reason,
            code=int(refusal.code),
        )
        await self.accept(self.subprotocol())
        await self.close(code=int(refusal.code))

    # --- relaying -----------------------------------------------------------------------------
    async def relay_from_vnc(self, vnc: VncConnection) -> None:
        assert self.counters is not None
        with contextlib.suppress(ConnectionError, OSError):
            await pump_to_browser(vnc, self.send_bytes, self.flow, self.counters)
        await self.end(CloseCode.NORMAL)

    async def send_bytes(self, data: bytes) -> None:
        if not self.closing:
            await self.send(bytes_data=data)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Frames that did not take the fast path (none while relaying under the middleware)."""
        if bytes_data:
            await self.forward_to_vnc(bytes_data)

    async def forward_to_vnc(self, bytes_data: bytes) -> None:
        if self.vnc is None or self.closing:
            return
        if self.greeter is not None and not self.greeter.done:
            reply, bytes_data = self.greeter.feed(bytes_data)
            if reply:
                await self.send_bytes(reply)
            if not bytes_data:
                return
        if self.counters is not None:
            self.counters.to_vnc += len(bytes_data)
        try:
            await self.vnc.write(bytes_data)
        except (ConnectionError, OSError):
            await self.end(CloseCode.NORMAL)

    async def beat(self, session_id: int) -> None:
        while True:
            await asyncio.sleep(settings.CONSOLE_HEARTBEAT)
            await database_sync_to_async(session_seen)(session_id)

    async def desktop_stopped(self, event: dict[str, Any]) -> None:
        """Group message from the worker: the desktop is stopping or being deleted."""
        await self.end(CloseCode.DESKTOP_STOPPED)

    async def user_signed_out(self, event: dict[str, Any]) -> None:
        """Group message: the user signed out (anywhere); their consoles end with it."""
        await self.end(CloseCode.NOT_SIGNED_IN)

    # --- closing ------------------------------------------------------------------------------
    async def end(self, code: CloseCode) -> None:
        if self.closing:
            return
        self.closing = True
        self.close_code = code
        await self.close(code=int(code))
        await self.cleanup()

    async def disconnect(self, code: int) -> None:
        self.closing = True
        await self.cleanup()

    async def cleanup(self) -> None:
        inbound = self.scope.get("vdi.inbound")
        if inbound is not None:
            inbound.sink = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.pump is not None and self.pump is not asyncio.current_task():
            self.pump.cancel()
        self.pump = None
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            self.heartbeat = None
        if self.session_id is not None:
            session_id, self.session_id = self.session_id, None
            await database_sync_to_async(session_closed)(session_id)
        if self.vnc is not None:
            vnc, self.vnc = self.vnc, None
            vnc.close()
            protocol = self.scope.get("vdi.protocol")
            if protocol is not None:
                self.flow.detach(protocol)
        if self.target is not None:
            target, self.target = self.target, None
            await self.channel_layer.group_discard(desktop_group(target.desktop_id),
                                                   self.channel_name)
            await self.channel_layer.group_discard(user_group(self.scope["user"].pk),
                                                   self.channel_name)
            await self.audit("console.close", code=int(getattr(self, "close_code", 1000)))

    async def audit(self, action: str, **details: Any) -> None:
        counters = self.counters
        if counters is not None:
            details["seconds"] = round(asyncio.get_running_loop().time() - counters.started, 3)
            details["bytes_to_browser"] = counters.to_browser
            details["bytes_to_vnc"] = counters.to_vnc
        await database_sync_to_async(audit.record)(
            self.scope.get("user"), action, None, self.client_address(),
            desktop=self.desktop_id, **details,
        )

    def client_address(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None
