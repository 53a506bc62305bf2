"""Behind reverse proxies: the client's address is what the trusted proxies say it is.

``VDI_TRUSTED_PROXY_COUNT`` proxies in front of daphne each append the address they saw to
``X-Forwarded-For``; the client is the entry that many places from the right. (Daphne's own
``--proxy-headers`` takes the leftmost entry, which the client itself can write.) The ASGI
scope's ``client`` is rewritten for HTTP and websockets alike, so sign-in throttling per
address, the console's limits and the audit log all see the real client; django-allauth is
given the same count.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]


def client_from_forwarded(header_values: list[bytes], count: int) -> str | None:
    """The address ``count`` entries from the right of X-Forwarded-For, if there are enough."""
    entries = [e.strip() for value in header_values
               for e in value.decode("latin-1").split(",") if e.strip()]
    if count <= 0 or len(entries) < count:
        return None
    return entries[-count]


class TrustedProxyMiddleware:
    def __init__(self, app: Any, count: int) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.count and scope["type"] in ("http", "websocket"):
            forwarded = [v for k, v in scope.get("headers", []) if k.lower() == b"x-forwarded-for"]
            address = client_from_forwarded(forwarded, self.count)
            if address is not None:
                port = (scope.get("client") or (None, 0))[1]
                scope = {**scope, "client": (address, port)}
        await self.app(scope, receive, send)
