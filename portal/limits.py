"""How big a request body may be, by page: one table that the server (``portal.daphne_server``
refuses a bigger body before storing it), the ASGI layer below and the upload services read,
so that their limits cannot drift apart.

A page's or the API's body holds at most ``VDI_REQUEST_MAX_BYTES`` (also Django's
DATA_UPLOAD_MAX_MEMORY_SIZE); a file sent to a desktop and an installer ISO, POSTed as the raw
body to their upload URLs, have their own limits there, but only with the upload pass of the
page that sends them (``?pass=``, ``upload_pass``): the server checks it before it stores a
byte (a signature and a time, no database), so that nobody who is not signed in can make it
store more than a page's body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.core import signing
from django.urls import Resolver404, resolve

from portal.proxy import Scope


@dataclass(frozen=True)
class BodyLimit:
    """At most ``settings.<name>`` bytes (the variable ``VDI_<name>``) of a ``what``;
    ``instead`` says what to do with a bigger one."""

    name: str
    what: str
    instead: str = ""

    @property
    def setting(self) -> str:
        return f"VDI_{self.name}"

    @property
    def max_bytes(self) -> int:
        return int(getattr(settings, self.name))

    def refusal(self, size: int | None = None) -> str:
        """Why a body of ``size`` bytes (None: one that passed the limit on its way) is
        refused, in words for the person who sent it."""
        said = f"is {size} bytes" if size is not None else f"passed {self.max_bytes} bytes"
        instead = f": {self.instead}" if self.instead else ""
        return (f"the {self.what} {said}; the portal takes at most {self.max_bytes} bytes "
                f"({self.setting}){instead}")

    def refusal_json(self, size: int | None = None) -> bytes:
        """The body of the 413 answer: ``{"error": ...}``, as the upload pages read it."""
        return json.dumps({"error": self.refusal(size)}).encode()


REQUEST = BodyLimit("REQUEST_MAX_BYTES", "request body")
FILE_TRANSFER = BodyLimit("FILE_TRANSFER_MAX_BYTES", "file")
MEDIA_UPLOAD = BodyLimit("MEDIA_UPLOAD_MAX_BYTES", "ISO", "add a bigger ISO by its path instead")

# A POST to one of these URLs (by name) carries a file; every other body is a page's or the API's.
UPLOADS: dict[str, BodyLimit] = {
    "desktop-files-upload": FILE_TRANSFER,
    "admin:vdi_installmedia_upload": MEDIA_UPLOAD,
}


SIGNING_SALT = "vdi.upload-pass"  # the signer's namespace, not a secret
WITHOUT_PASS = BodyLimit("REQUEST_MAX_BYTES", "upload",
                         "reload the page and send it again (a bigger upload needs the pass "
                         "of a page you are signed in on)")


def upload_pass(user_id: int, view_name: str) -> str:
    """The pass a page gives its uploads to ``view_name``: whose it is, signed and dated."""
    return signing.TimestampSigner(salt=SIGNING_SALT).sign(f"{user_id}:{view_name}")


def pass_holder(token: str, view_name: str) -> int | None:
    """The user whose pass ``token`` is for ``view_name``, if it is genuine and at most
    ``VDI_UPLOAD_PASS_SECONDS`` old; None otherwise."""
    try:
        value = signing.TimestampSigner(salt=SIGNING_SALT).unsign(
            token, max_age=settings.UPLOAD_PASS_SECONDS)
    except signing.BadSignature:
        return None
    user_id, _, view = value.partition(":")
    return int(user_id) if view == view_name and user_id.isdigit() else None


def limit_for(method: str, path: str, query: str = "") -> BodyLimit:
    """The limit of a ``method`` request's body to ``path`` (decoded) with ``query`` (its
    query string, still encoded): an upload's own with its pass, a page's otherwise."""
    if method != "POST":
        return REQUEST
    try:
        view = resolve(path).view_name
    except Resolver404:
        return REQUEST
    upload = UPLOADS.get(view)
    if upload is None:
        return REQUEST
    token = parse_qs(query).get("pass", [""])[0]
    return upload if pass_holder(token, view) is not None else WITHOUT_PASS


class BodyLimitMiddleware:
    """Answers 413 without reading the body when a request declares a length over its limit.
    Under the portal's daphne the server has refused such a request already (and a chunked
    one once it passed the limit); this is for any other ASGI server the app is run under."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            length = dict(scope.get("headers", [])).get(b"content-length", b"")
            limit = limit_for(scope.get("method", ""), scope.get("path", ""),
                              scope.get("query_string", b"").decode("latin-1"))
            if length.isdigit() and int(length) > limit.max_bytes:
                await _refuse(send, limit.refusal_json(int(length)))
                return
        await self.app(scope, receive, send)


async def _refuse(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
