"""Request bodies too big for their page are refused before anyone reads them.

Django's ASGI handler spools a whole request body to disk before the view runs, so an upload
limit checked in the view would come after the disk was filled. This middleware answers 413
at once when the declared length of a body sent to one of ``limits``' paths passes its limit
(411 when no length is declared); the view still counts what it reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from portal.proxy import Scope


class BodyLimitMiddleware:
    def __init__(self, app: Any, limits: Mapping[str, int]) -> None:
        self.app = app
        self.limits = dict(limits)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        limit = self.limits.get(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is not None and scope.get("method") == "POST":
            refusal = self._refusal(scope, limit)
            if refusal is not None:
                await _answer(send, *refusal)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _refusal(scope: Scope, limit: int) -> tuple[int, str] | None:
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        if length is None or not length.isdigit():
            return 411, "send the file with its length (Content-Length)"
        if int(length) > limit:
            return 413, (f"the file is {int(length)} bytes; uploads take at most {limit} bytes "
                         "(VDI_MEDIA_UPLOAD_MAX_BYTES): add a bigger ISO by its path instead")
        return None


async def _answer(send: Any, status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
