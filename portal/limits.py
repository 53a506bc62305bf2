"""Request bodies too big for their page are refused before anyone reads them.

Django's ASGI handler spools a whole request body to disk before the view runs, so an upload
limit checked in the view would come after the disk was filled. This middleware answers 413
at once when the declared length of a body sent to one of the limited paths passes its limit
(411 when no length is declared); the view still counts what it reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from portal.proxy import Scope


@dataclass(frozen=True)
class BodyLimit:
    """Bodies POSTed to paths matching ``path`` (a regular expression, whole path) hold at
    most ``limit`` bytes, the setting ``setting``; ``instead`` says what to do otherwise."""

    path: str
    limit: int
    setting: str
    instead: str = ""


class BodyLimitMiddleware:
    def __init__(self, app: Any, limits: Sequence[BodyLimit]) -> None:
        self.app = app
        self.limits = [(re.compile(limit.path), limit) for limit in limits]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST":
            path = scope.get("path", "")
            for pattern, limit in self.limits:
                if pattern.fullmatch(path):
                    refusal = self._refusal(scope, limit)
                    if refusal is not None:
                        await _answer(send, *refusal)
                        return
                    break
        await self.app(scope, receive, send)

    @staticmethod
    def _refusal(scope: Scope, limit: BodyLimit) -> tuple[int, str] | None:
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        if length is None or not length.isdigit():
            return 411, "send the file with its length (Content-Length)"
        if int(length) > limit.limit:
            instead = f": {limit.instead}" if limit.instead else ""
            return 413, (f"the file is {int(length)} bytes; uploads take at most {limit.limit} "
                         f"bytes ({limit.setting}){instead}")
        return None


async def _answer(send: Any, status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
