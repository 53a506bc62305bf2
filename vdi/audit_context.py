"""Who is acting, and from where, for changes recorded by signal receivers (which get no
request): set for each request by ``AuditContextMiddleware``; empty outside requests (the
system, a management command)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse


@dataclass(frozen=True)
class Actor:
    user: Any
    address: str | None


_current: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("vdi_actor",
                                                                        default=None)


def current() -> Actor:
    return _current.get() or Actor(None, None)


class AuditContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current.set(Actor(getattr(request, "user", None),
                                   request.META.get("REMOTE_ADDR") or None))
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)
