"""Who and what a log line is about: the request id and user of a web request, the id and
name of a Celery task. Set in context variables (by the middleware here, and by the worker's
task signals in ``vdi.worker.signals``), put on every record by ``ContextFilter``, written by
``PlainFormatter`` (``VDI_LOG_FORMAT=plain``) or ``JsonFormatter`` (``json``).

A request id comes from a valid incoming ``X-Request-ID`` (a proxy's, so lines join up across
the stack) or is made here; it goes back in the response's ``X-Request-ID``.
Loaded by the logging configuration before the apps: no model imports here.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

HEADER = "X-Request-ID"
# Letters, digits and - _ . : only, 8 to 128 of them: what proxies send (UUIDs, hex), and
# nothing that could forge a log line or a header.
VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
FIELDS = ("request_id", "user_id", "username", "task_id", "task_name")

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "vdi_log_context", default=None)


def current() -> dict[str, Any]:
    """The fields of the work under way (empty outside a request or a task)."""
    return dict(_context.get() or {})


def request_id() -> str | None:
    return current().get("request_id")


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log line written inside the block."""
    token = _context.set({**current(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Like ``bound``, for code that opens and closes in two places (task signals)."""
    return _context.set({**current(), **fields})


def unbind(token: contextvars.Token[dict[str, Any] | None]) -> None:
    try:
        _context.reset(token)
    except ValueError:  # set in another context (a thread's copy): just clear it
        _context.set(None)


def incoming_id(value: str | None) -> str:
    """The caller's request id if it is a sane one, else a new one."""
    if value and VALID_ID.match(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """First in the chain: every line the request logs carries its id, and so does the
    response. The context is set for the rest of the request, not only inside the chain:
    Django logs a 4xx/5xx answer ("Not Found: ...") after the middleware returned. Each
    request starts afresh, and ``request_finished`` clears it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = incoming_id(request.headers.get(HEADER))
        request.request_id = rid  # type: ignore[attr-defined]
        _context.set({"request_id": rid})
        response = self.get_response(request)
        response[HEADER] = rid
        return response


class RequestUserMiddleware:
    """After authentication: the signed-in user on the request's log lines."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            bind(user_id=user.pk, username=user.get_username())
        return self.get_response(request)


def _request_finished(**kwargs: Any) -> None:
    _context.set(None)


request_finished.connect(_request_finished, dispatch_uid="vdi.request_log.finished")


class ContextFilter(logging.Filter):
    """Puts the context's fields on the record (as attributes the formatters read)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get() or {}
        for name in FIELDS:
            if name in fields and not hasattr(record, name):
                setattr(record, name, fields[name])
        return True


class PlainFormatter(logging.Formatter):
    """The usual line, with `` [request=... user=... task=...]`` after the logger's name when
    there is such a context (``%(context)s`` in the format)."""

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        if rid := getattr(record, "request_id", None):
            parts.append(f"request={rid}")
        if name := getattr(record, "username", None):
            parts.append(f"user={name}")
        if task := getattr(record, "task_id", None):
            parts.append(f"task={getattr(record, 'task_name', '')}[{task}]")
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return super().format(record)


class JsonFormatter(_JsonFormatter):
    """One JSON object a line: time, level, logger, message, the context's fields, any
    ``extra=`` the call passed, and the exception if there is one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", ["asctime", "levelname", "name", "message"])
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level",
                                            "name": "logger"})
        kwargs.setdefault("datefmt", "%Y-%m-%dT%H:%M:%S%z")
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "context", "taskName"])
        super().__init__(*args, **kwargs)
