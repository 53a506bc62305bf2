"""The console websocket: check the ticket, open the guest's VNC port, relay bytes both ways,
and keep checking that the person may still be there.

Refusals happen before any VNC byte moves; the close code says why (``vdi.console.codes``) and
a refusal costs one Redis call, no database write (``vdi.console.guards`` aggregates them).
Once open, the console closes when the VNC side ends, when a notice says so (the desktop
stopped, the account or its password changed: ``vdi.console.notify``), when the periodic
access check fails (``services.console.still_allowed``), after ``VDI_CONSOLE_MAX_SECONDS``,
or when the browser does not finish its handshake in time. The browser's bytes go through
``ClientStream``: whole RFB messages only, and no input at all from a view-only console.
Text frames to the browser carry notices for the page (noVNC ignores them).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from vdi.console import guards
from vdi.console.client_filter import ClientStream
from vdi.console.clipboard import ClipboardRules
from vdi.console.codes import CloseCode
from vdi.console.flow import Flow, from_server
from vdi.console.lane import Lane
from vdi.console.notify import NOTICES, WATCH, desktop_group, user_group
from vdi.console.relay import Counters, connect_vnc
from vdi.console.relaying import RelayMixin
from vdi.console.vnc_auth import BrowserGreeter, VncAuthError, sign_in
from vdi.console.watching import WatchingMixin
from vdi.services import audit
from vdi.services.console import (
    FIRST_FRAME_PROTOCOL,
    SUBPROTOCOL,
    ConsoleTarget,
    Refusal,
    open_console,
    record_console_error,
    session_closed,
    session_opened,
    session_seen,
    still_allowed,
    ticket_from_subprotocols,
)
from vdi.services.preferences import keyboard_for_console

log = logging.getLogger(__name__)
HANDSHAKE_WITHOUT_GREETER = 12 + 1 + 1  # version, security type, ClientInit


class ConsoleConsumer(AsyncWebsocketConsumer, WatchingMixin, RelayMixin):  # type: ignore[misc]
    target: ConsoleTarget | None = None
    session_id: int | None = None
    ended = False

    # --- messages: the browser's from the server, and only our notices from the layer -----
    async def dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type", "")
        if (kind.startswith("websocket.") and from_server(message)) or kind in NOTICES:
            await super().dispatch(message)
        else:
            log.warning("console %s: dropped a %r message from the channel layer",
                        self.scope.get("url_route", {}).get("kwargs"), kind)

    # --- opening ------------------------------------------------------------------------------
    async def connect(self) -> None:
        self.desktop_id = int(self.scope["url_route"]["kwargs"]["desktop_id"])
        self.flow: Flow = self.scope.get("vdi.flow") or Flow()
        self.tasks: list[asyncio.Task[None]] = []
        self.timers: list[asyncio.TimerHandle] = []
        self.asks: dict[str, str] = {}
        user = self.scope.get("user")
        signed_in = user is not None and user.is_authenticated and user.is_active
        if not await guards.allow_connect(self.client_address(), user.pk if signed_in else None):
            await self.refuse(Refusal(CloseCode.RATE_LIMITED, "too many connects"))
            return
        if not signed_in:
            await self.refuse(Refusal(CloseCode.NOT_SIGNED_IN, "not signed in"))
            return
        raw = ticket_from_subprotocols(self.scope.get("subprotocols", []))
        if raw is None:
            await self.refuse(Refusal(CloseCode.NO_TICKET, "no ticket presented"))
            return
        result = await database_sync_to_async(open_console)(
            raw, user, self.session_key(), self.desktop_id)
        if isinstance(result, Refusal):
            await self.refuse(result)
            return
        if result.needs_consent:
            await self.ask_consent(result)
            return
        await self.start_relay(result)

    async def start_relay(self, target: ConsoleTarget) -> None:
        try:
            self.vnc = await asyncio.wait_for(
                connect_vnc(target.host, target.port, target.socket),
                settings.CONSOLE_CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            reason = f"VNC endpoint {target.where} unreachable ({exc})"
            await self.refuse(Refusal(CloseCode.VNC_UNREACHABLE, reason))
            return
        server_init = await self.sign_in_to_vnc(target) if target.password else b""
        if server_init is None:
            return
        self.target = target
        await self.channel_layer.group_add(desktop_group(target.desktop_id), self.channel_name)
        await self.channel_layer.group_add(user_group(self.scope["user"].pk), self.channel_name)
        await self.accept_once()
        protocol = self.scope.get("vdi.protocol")
        if protocol is not None:
            self.flow.attach(protocol)
            self.lane = Lane.attach(protocol)
        self.counters = Counters()
        self.client = ClientStream(
            target.view_only, handshake=0 if target.password else HANDSHAKE_WITHOUT_GREETER,
            max_message=settings.CONSOLE_MAX_MESSAGE,
            clipboard=ClipboardRules(target.clipboard, settings.CLIPBOARD_MAX_BYTES))
        if target.record:
            await self.start_recording(target)
        if target.password:  # the browser gets a handshake that needs no password
            self.greeter = BrowserGreeter(server_init)
            for message in self.greeter.opening():
                await self.send_bytes(message)
            if FIRST_FRAME_PROTOCOL in self.scope.get("subprotocols", []):
                await self.ask_first_frame(server_init)
        inbound = self.scope.get("vdi.inbound")
        if inbound is not None:
            inbound.sink = self.forward_to_vnc
        if self.lane is not None:
            self.lane.listen(self.take_frames, self.can_take_frames)
            self.vnc.passes = self.pass_to_browser
        await self.opened(target)

    async def opened(self, target: ConsoleTarget) -> None:
        """Relay at once (the first frame waits for nothing), then the bookkeeping."""
        assert self.vnc is not None
        if target.view_only:
            await self.send(text_data=json.dumps({"notice": "view_only"}))
        self.tasks.append(asyncio.create_task(self.relay_from_vnc(self.vnc)))
        await self.audit("console.open", view_only=target.view_only)
        self.session_id = await database_sync_to_async(session_opened)(
            target.desktop_id, self.scope.get("user"), target.view_only, self.client_address())
        if self.session_id is None:  # the account or the desktop went away as it opened
            await self.recheck()
            await self.revoke(CloseCode.DESKTOP_STOPPED, "the desktop went away")
            return
        self.tasks += [asyncio.create_task(self.beat(self.session_id)),
                       asyncio.create_task(self.watch_access())]
        loop = asyncio.get_running_loop()
        self.timers += [
            loop.call_later(settings.CONSOLE_MAX_SECONDS,
                            lambda: asyncio.ensure_future(self.end(CloseCode.SESSION_LIMIT))),
            loop.call_later(settings.CONSOLE_HANDSHAKE_TIMEOUT,
                            lambda: asyncio.ensure_future(self.check_handshake())),
        ]
        if target.as_owner and not target.view_only:
            await database_sync_to_async(keyboard_for_console)(target.desktop_id,
                                                               self.scope.get("user"))
        if target.view_only:
            await self.channel_layer.group_send(desktop_group(target.desktop_id), {
                "type": WATCH, "watcher": self.scope["user"].get_username(), "joined": True})

    async def sign_in_to_vnc(self, target: ConsoleTarget) -> bytes | None:
        """The VNC server's ServerInit once signed in; None when refused (and said so)."""
        assert self.vnc is not None
        try:
            return await asyncio.wait_for(sign_in(self.vnc, target.password),
                                          settings.CONSOLE_CONNECT_TIMEOUT)
        except (VncAuthError, ConnectionError, TimeoutError) as exc:
            self.vnc.close()
            self.vnc = None
            await self.refuse(Refusal(CloseCode.VNC_UNREACHABLE, f"VNC sign-in failed: {exc}"))
            return None

    def subprotocol(self) -> str | None:
        return SUBPROTOCOL if SUBPROTOCOL in self.scope.get("subprotocols", []) else None

    async def refuse(self, refusal: Refusal) -> None:
        """Accept only to close with a code the page can explain; no VNC byte is sent. The
        refusal is counted in Redis (aggregated into the audit log), not written per attempt."""
        user = self.scope.get("user")
        log.info("console for desktop %s refused: %s", self.desktop_id, refusal.reason)
        await guards.count_refusal(self.client_address(), refusal.reason)
        if user is not None and user.is_authenticated and refusal.code not in (
                CloseCode.RATE_LIMITED, CloseCode.NOT_SIGNED_IN):
            await database_sync_to_async(record_console_error)(self.desktop_id, user,
                                                               refusal.reason)
        await self.accept_once()
        await self.close(code=int(refusal.code))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Frames that did not take the fast path: the page's text frames (its answers about
        watching), and binary ones before the relay starts or without the middleware."""
        if bytes_data:
            await self.forward_to_vnc(bytes_data)
        elif text_data:
            await self.page_says(text_data)

    async def beat(self, session_id: int) -> None:
        while True:
            await asyncio.sleep(settings.CONSOLE_HEARTBEAT)
            await database_sync_to_async(session_seen)(session_id, self.relayed())
            await self.report_bytes()

    # --- access, for as long as the console lasts -------------------------------------------
    async def watch_access(self) -> None:
        while not self.ended:
            await asyncio.sleep(settings.CONSOLE_RECHECK)
            await self.recheck()

    async def recheck(self) -> None:
        if self.target is None or self.closing:
            return
        refusal = await database_sync_to_async(still_allowed)(
            self.target, self.scope["user"].pk, self.session_key())
        if refusal is not None:
            await self.revoke(refusal.code, refusal.reason)

    async def revoke(self, code: CloseCode, reason: str) -> None:
        if self.closing:
            return
        self.closing = True  # not one more byte from the browser reaches the guest
        await self.audit("console.revoked", reason=reason, code=int(code))
        await self.end(code)

    async def check_handshake(self) -> None:
        client = self.client
        if (client is not None and client.handshake) or (self.greeter and not self.greeter.done):
            await self.end(CloseCode.HANDSHAKE_TIMEOUT)

    # --- notices from the channel layer ----------------------------------------------------
    async def vdi_end(self, event: dict[str, Any]) -> None:
        try:
            code = CloseCode(int(event.get("code", 0)))
        except ValueError:
            code = CloseCode.ACCESS_REVOKED
        await self.revoke(code, str(event.get("reason", "")))

    async def vdi_recheck(self, event: dict[str, Any]) -> None:
        await self.recheck()

    async def vdi_watch(self, event: dict[str, Any]) -> None:
        """Someone started or stopped watching this desktop: its user's page says so."""
        if self.target is not None and not self.target.view_only and not self.closing:
            await self.send(text_data=json.dumps({
                "notice": "watched" if event.get("joined") else "unwatched",
                "by": str(event.get("watcher", ""))}))

    async def vdi_keyboard(self, event: dict[str, Any]) -> None:
        """The user chose another keyboard layout: the page's "Keyboard:" line follows."""
        if self.target is not None and not self.closing:
            await self.send(text_data=json.dumps({"notice": "keyboard",
                                                  "label": str(event.get("label", ""))}))

    # --- closing ------------------------------------------------------------------------------
    async def end(self, code: CloseCode) -> None:
        if self.ended:
            return
        self.ended = self.closing = True
        self.close_code = code
        try:
            await self.close(code=int(code))
        finally:
            await self.cleanup()

    async def disconnect(self, code: int) -> None:
        self.ended = self.closing = True
        await self.cleanup()

    async def cleanup(self) -> None:
        inbound = self.scope.get("vdi.inbound")
        if inbound is not None:
            inbound.sink = None
        for timer in getattr(self, "timers", []):
            timer.cancel()
        self.timers = []
        current = asyncio.current_task()
        for task in getattr(self, "tasks", []):
            if task is not current:
                task.cancel()
        self.tasks = []
        if self.session_id is not None:
            session_id, self.session_id = self.session_id, None
            await database_sync_to_async(session_closed)(session_id, self.relayed())
        await self.report_bytes()
        if self.lane is not None:
            self.lane.close()
        if self.vnc is not None:
            vnc, self.vnc = self.vnc, None
            vnc.passes = None
            vnc.close()
            protocol = self.scope.get("vdi.protocol")
            if protocol is not None:
                self.flow.detach(protocol)
        await self.finish_recording()
        if self.target is not None:
            await self.leave(self.target)

    async def leave(self, target: ConsoleTarget) -> None:
        self.target = None
        user = self.scope["user"]
        await self.channel_layer.group_discard(desktop_group(target.desktop_id),
                                               self.channel_name)
        await self.channel_layer.group_discard(user_group(user.pk), self.channel_name)
        if target.view_only:
            await self.channel_layer.group_send(desktop_group(target.desktop_id), {
                "type": WATCH, "watcher": user.get_username(), "joined": False})
        await self.audit("console.close", code=int(getattr(self, "close_code", 1000)))

    async def audit(self, action: str, **details: Any) -> None:
        counters = self.counters
        if counters is not None:
            details["seconds"] = round(asyncio.get_running_loop().time() - counters.started, 3)
            details["bytes_to_browser"] = counters.to_browser
            details["bytes_to_vnc"] = counters.to_vnc
        if self.client is not None and self.client.dropped:
            details["input_dropped"] = self.client.dropped
        await database_sync_to_async(audit.record)(
            self.scope.get("user"), action, None, self.client_address(),
            desktop=self.desktop_id, **details,
        )

    def client_address(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None

    def session_key(self) -> str | None:
        return getattr(self.scope.get("session"), "session_key", None)
