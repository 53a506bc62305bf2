"""``/ws/live/``: a signed-in page hears what changed for it. It sends nothing but the names
of changes (never data the page could not fetch itself); the page asks for what it shows."""

from __future__ import annotations

import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from vdi.auth_backends import operated_pool_ids
from vdi.console.codes import CloseCode
from vdi.live.events import OPERATORS, pool_group, user_group
from vdi.services import access

log = logging.getLogger(__name__)


def groups_of(user: Any) -> list[str]:
    """The groups a page of ``user`` listens to."""
    groups = [user_group(user.pk)]
    if access.holds(user, "vdi.view_desktop"):
        groups.append(OPERATORS)
    groups += [pool_group(pool_id) for pool_id in sorted(operated_pool_ids(user))]
    return groups


class LiveConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        if user is None or not access.active(user):
            await self.close(code=int(CloseCode.NOT_SIGNED_IN))
            return
        self.groups_joined = await database_sync_to_async(groups_of)(user)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception as exc:  # the rest still leave; the layer expires this one
                log.warning("live page could not leave %s: %s", group, exc)

    async def receive(self, text_data: str | None = None,
                      bytes_data: bytes | None = None) -> None:
        """The page has nothing to say; whatever it sends is ignored."""

    async def live_changed(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps({"kind": event["kind"], "id": event["id"]}))
