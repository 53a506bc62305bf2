"""The console's bytes both ways: the relay task and the fast lane to the browser, the filter
and the VNC socket from it, the recording and the byte counts. The console consumer mixes
this in.

Under daphne, ``vdi.console.lane`` hands over the browser's small frames from Twisted's read
(``take_frames``) and takes the VNC server's chunks from the socket's callback
(``pass_to_browser``) while nothing else waits; otherwise the relay task and the consumer's
``receive`` carry them, through the same filter (``pass_on``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings

from vdi import telemetry
from vdi.console import first_frame, refresh
from vdi.console.client_filter import ClientStream, ProtocolError
from vdi.console.clipboard import Refused
from vdi.console.codes import CloseCode
from vdi.console.flow import Flow
from vdi.console.lane import Lane
from vdi.console.recorder import Recorder
from vdi.console.relay import Counters, VncConnection, pump_to_browser
from vdi.console.vnc_auth import BrowserGreeter
from vdi.services import recordings
from vdi.services.console import ConsoleTarget

log = logging.getLogger("vdi.console.consumer")


class RelayMixin:
    """Uses the consumer's scope, send, end, tasks and desktop id."""

    scope: Any
    desktop_id: int
    tasks: list[asyncio.Task[None]]
    flow: Flow
    vnc: VncConnection | None = None
    greeter: BrowserGreeter | None = None
    client: ClientStream | None = None
    counters: Counters | None = None
    recorder: Recorder | None = None
    recording_id: int | None = None
    lane: Lane | None = None  # daphne's fast lane, while relaying (vdi.console.lane)
    closing = False  # no more bytes either way (set first thing when a console must end)
    target: ConsoleTarget | None
    woken = False  # the VNC server's refresh, for the first frame (vdi.console.refresh)

    if TYPE_CHECKING:  # provided by the consumer
        async def send(self, text_data: str | None = None, bytes_data: bytes | None = None,
                       close: bool = False) -> None: ...
        async def end(self, code: CloseCode) -> None: ...

    async def relay_from_vnc(self, vnc: VncConnection) -> None:
        assert self.counters is not None
        with contextlib.suppress(ConnectionError, OSError):
            await pump_to_browser(vnc, self.send_bytes, self.flow, self.counters)
        await self.end(CloseCode.NORMAL)

    async def send_bytes(self, data: bytes) -> None:
        if self.closing:
            return
        if self.recorder is not None:
            self.recorder.write(data)
        if self.lane is not None:
            self.lane.send(data)
        else:
            await self.send(bytes_data=data)

    # --- the fast lane (daphne): bytes that need nothing but the relay, with no task switch --
    def pass_to_browser(self, data: bytes) -> bool:
        """A chunk from the VNC server straight out, unless the browser side is paused or the
        console is closing: then the relay task takes it when it may."""
        if self.closing or self.flow.paused or self.lane is None or self.counters is None:
            return False
        if self.recorder is not None:
            self.recorder.write(data)
        self.lane.send(data)
        self.counters.to_browser += len(data)
        return True

    def can_take_frames(self) -> bool:
        """Whether the browser's frames may skip the queue: nothing of theirs waits in it, the
        handshake with the browser is over and the VNC side takes bytes now."""
        inbound = self.scope.get("vdi.inbound")
        return (self.relaying() and self.vnc is not None and self.vnc.writable
                and (self.greeter is None or self.greeter.done)
                and (inbound is None or not inbound.busy))

    def take_frames(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            data = self.pass_on(payload) if self.relaying() else None
            if data and self.vnc is not None:
                try:
                    self.vnc.write_now(data)
                except (ConnectionError, OSError):
                    self.end_soon(CloseCode.NORMAL)

    async def start_recording(self, target: ConsoleTarget) -> None:
        """The pool records its sessions: the page says so before the first frame."""
        recording = await database_sync_to_async(recordings.start)(
            target.desktop_id, self.scope["user"])
        self.recording_id = recording.pk
        self.recorder = Recorder(Path(recording.path), settings.RECORDING_MAX_BYTES)
        await self.send(text_data=json.dumps({"notice": "recorded"}))

    async def finish_recording(self) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is None or self.recording_id is None:
            return
        recorder.close()
        await database_sync_to_async(recordings.finish)(
            self.recording_id, recorder.size, recorder.last_ms, recorder.truncated)

    async def forward_to_vnc(self, bytes_data: bytes) -> None:
        """The browser's bytes on the usual path (the handshake, and whatever the lane left)."""
        if not self.relaying():
            return
        if (self.greeter is not None and not self.greeter.done
                and len(bytes_data) <= settings.CONSOLE_MAX_MESSAGE):
            try:
                bytes_data = self.greeter.feed(bytes_data)
            except ProtocolError as exc:
                log.warning("console of desktop %s: %s", self.desktop_id, exc)
                self.end_soon(CloseCode.PROTOCOL_ERROR)
                return
        data = self.pass_on(bytes_data)
        if data and self.vnc is not None:
            try:
                await self.vnc.write(data)
            except (ConnectionError, OSError):
                await self.end(CloseCode.NORMAL)

    def relaying(self) -> bool:
        return self.vnc is not None and not self.closing and self.client is not None

    def pass_on(self, data: bytes) -> bytes:
        """The browser's bytes through the size limit and the filter: what goes on to the VNC
        server. A breach ends the console (no byte more passes)."""
        assert self.client is not None and self.counters is not None
        if len(data) > settings.CONSOLE_MAX_MESSAGE:
            self.end_soon(CloseCode.MESSAGE_TOO_BIG)
            return b""
        try:
            data = self.client.feed(data)
        except ProtocolError as exc:
            log.warning("console of desktop %s: %s", self.desktop_id, exc)
            self.end_soon(CloseCode.PROTOCOL_ERROR)
            return b""
        if self.client.refusals:
            refusals, self.client.refusals = self.client.refusals, []
            self.tasks.append(asyncio.ensure_future(self.tell_refusals(refusals)))
        if self.client.full_updates and not self.woken:
            self.woken = True
            asyncio.get_running_loop().call_soon(self.wake_refresh)  # once the request is sent
        self.counters.to_vnc += len(data)
        return data

    async def ask_first_frame(self, server_init: bytes) -> None:
        """Ask the VNC server for the first frame while the page's code loads
        (``vdi.console.first_frame``): the browser gets it after the greeting."""
        assert self.vnc is not None and self.counters is not None
        asked = first_frame.request(server_init)
        try:
            await self.vnc.write(asked)
        except (ConnectionError, OSError):
            return  # the VNC side is gone: the relay finds it closed and ends the console
        self.counters.to_vnc += len(asked)
        self.woken = True
        asyncio.get_running_loop().call_soon(self.wake_refresh)

    def wake_refresh(self) -> None:
        """The first full-screen request has gone to the VNC server: have it answered now
        rather than at the server's next refresh (``vdi.console.refresh``)."""
        if self.target is not None and not self.closing:
            self.tasks.append(asyncio.ensure_future(refresh.wake(
                self.target.host, self.target.port, self.target.socket)))

    def end_soon(self, code: CloseCode) -> None:
        """End from a callback: nothing more crosses from now on, the closing follows."""
        self.closing = True
        self.tasks.append(asyncio.ensure_future(self.end(code)))

    async def tell_refusals(self, refusals: list[Refused]) -> None:
        """The page says why a copy did not cross (the pool's clipboard policy or size)."""
        for refused in refusals:
            await self.send(text_data=json.dumps({
                "notice": "clipboard_refused", "direction": refused.direction,
                "reason": refused.reason}))

    def relayed(self) -> tuple[int, int] | None:
        """Bytes relayed so far (to the browser, to the guest), for the session's row."""
        counters = self.counters
        return None if counters is None else (counters.to_browser, counters.to_vnc)

    async def report_bytes(self) -> None:
        """The bytes relayed since the last report go to the metrics (shared by every
        portal process through Redis)."""
        if self.counters is None:
            return
        to_browser, to_guest = self.counters.unreported()
        if to_browser or to_guest:
            await sync_to_async(telemetry.console_bytes)(to_browser, to_guest)
