"""Helpdesk watching, as the user decides: on a pool that asks for consent, a watcher's console
waits (no VNC byte yet) while the user's open consoles ask "allow?"; the first answer wins,
and silence past ``VDI_CONSOLE_CONSENT_TIMEOUT`` is a no. On any pool the user can end the
watching from their console. The console consumer mixes this in.

The page's side is text frames: ``{"consent": <token>, "allow": true|false}`` and
``{"end_watching": true}``, accepted only from the desktop's owner, never from a watcher.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import TYPE_CHECKING, Any

from django.conf import settings

from vdi.console.codes import CloseCode
from vdi.console.notify import CONSENT, CONSENT_REQUEST, END_WATCHING, desktop_group
from vdi.services.console import ConsoleTarget


class WatchingMixin:
    """Uses the consumer's channel, scope, timers, audit, end, revoke and start_relay."""

    target: ConsoleTarget | None
    waiting: ConsoleTarget | None = None  # a watcher's console until the user answers
    asks: dict[str, str]  # token -> the asking watcher's channel (on the user's consoles)

    # --- the watcher's side -------------------------------------------------------------------
    async def ask_consent(self, target: ConsoleTarget) -> None:
        self.waiting = target
        await self.accept_once()
        await self.send(text_data=json.dumps({"notice": "asking_consent"}))
        await self.channel_layer.group_send(desktop_group(target.desktop_id), {
            "type": CONSENT_REQUEST, "watcher": self.scope["user"].get_username(),
            "reply_to": self.channel_name})
        loop = asyncio.get_running_loop()
        self.timers.append(loop.call_later(
            settings.CONSOLE_CONSENT_TIMEOUT,
            lambda: asyncio.ensure_future(self.no_answer())))

    async def no_answer(self) -> None:
        if self.waiting is not None:
            self.waiting = None
            await self.audit("console.watch_refused", reason="no answer")
            await self.end(CloseCode.WATCH_REFUSED)

    async def vdi_consent(self, event: dict[str, Any]) -> None:
        target, self.waiting = self.waiting, None
        if target is None:
            return  # answered already, or gave up
        if event.get("allow") is True:
            await self.send(text_data=json.dumps({"notice": "consent_given",
                                                  "by": str(event.get("by", ""))}))
            await self.start_relay(target)
        else:
            await self.audit("console.watch_refused", reason="refused by the user")
            await self.end(CloseCode.WATCH_REFUSED)

    async def vdi_end_watching(self, event: dict[str, Any]) -> None:
        target = self.target
        if target is not None and target.view_only and not target.as_owner:
            await self.revoke(CloseCode.WATCH_ENDED, "the user ended the watching")
        elif self.waiting is not None:
            self.waiting = None
            await self.end(CloseCode.WATCH_ENDED)

    # --- the user's side ----------------------------------------------------------------------
    def is_the_users(self) -> bool:
        target = self.target
        return target is not None and target.as_owner and not target.view_only

    async def vdi_consent_request(self, event: dict[str, Any]) -> None:
        if not self.is_the_users():
            return
        token = secrets.token_urlsafe(12)
        self.asks[token] = str(event.get("reply_to", ""))
        await self.send(text_data=json.dumps({
            "notice": "consent_request", "by": str(event.get("watcher", "")),
            "token": token, "seconds": settings.CONSOLE_CONSENT_TIMEOUT}))

    async def page_says(self, text: str) -> None:
        """A text frame from the page: an answer to a request, or the end of the watching."""
        if not self.is_the_users() or len(text) > 1024:
            return
        try:
            said = json.loads(text)
        except ValueError:
            return
        if not isinstance(said, dict):
            return
        assert self.target is not None
        if said.get("end_watching") is True:
            await self.audit("console.watch_ended")
            await self.channel_layer.group_send(desktop_group(self.target.desktop_id), {
                "type": END_WATCHING})
        elif (reply_to := self.asks.pop(str(said.get("consent", "")), None)) is not None:
            allow = said.get("allow") is True
            await self.audit("console.watch_allowed" if allow else "console.watch_refused",
                             reason="the user answered")
            await self.channel_layer.send(reply_to, {
                "type": CONSENT, "allow": allow,
                "by": self.scope["user"].get_username()})

    # --- both ---------------------------------------------------------------------------------
    accepted = False

    async def accept_once(self) -> None:
        if not self.accepted:
            self.accepted = True
            await self.accept(self.subprotocol())

    if TYPE_CHECKING:  # provided by the consumer
        channel_layer: Any
        channel_name: str
        scope: Any
        timers: list[asyncio.TimerHandle]

        async def send(self, text_data: str | None = None, bytes_data: bytes | None = None,
                       close: bool = False) -> None: ...
        async def accept(self, subprotocol: str | None = None,
                         headers: list[tuple[bytes, bytes]] | None = None) -> None: ...
        def subprotocol(self) -> str | None: ...
        async def audit(self, action: str, **details: Any) -> None: ...
        async def end(self, code: CloseCode) -> None: ...
        async def revoke(self, code: CloseCode, reason: str) -> None: ...
        async def start_relay(self, target: ConsoleTarget) -> None: ...
