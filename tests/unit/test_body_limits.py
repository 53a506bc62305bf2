"""One table of request body limits (``portal.limits``): which limit a request's body has, by
method and page; the words of a refusal; the ASGI layer refusing a declared length over it
without reading the body; and Django's own form limit agreeing."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.urls import reverse

from portal.limits import (
    FILE_TRANSFER,
    MEDIA_UPLOAD,
    REQUEST,
    UPLOADS,
    WITHOUT_PASS,
    BodyLimitMiddleware,
    limit_for,
    pass_holder,
    upload_pass,
)


def test_uploads_take_their_own_limit_with_their_pages_pass_and_every_other_body_the_pages():
    files = reverse("desktop-files-upload", args=[7])
    iso = reverse("admin:vdi_installmedia_upload")
    files_pass = f"pass={upload_pass(3, 'desktop-files-upload')}"
    iso_pass = f"pass={upload_pass(3, 'admin:vdi_installmedia_upload')}"
    assert limit_for("POST", files, files_pass) is FILE_TRANSFER
    assert limit_for("POST", iso, f"name=x.iso&{iso_pass}") is MEDIA_UPLOAD
    assert limit_for("PUT", files, files_pass) is REQUEST, "only the upload views' POST"
    for path in ("/accounts/login/", "/api/desktops/", "/desktops/7/files/list/", "/nowhere/",
                 "/desktops/x/files/upload/"):
        assert limit_for("POST", path, files_pass) is REQUEST, path


@pytest.mark.parametrize("query", ["", "pass=", "pass=3:desktop-files-upload:forged",
                                   "pass=" + "x" * 40])
def test_an_upload_without_a_genuine_pass_holds_a_pages_body(query):
    """Nobody who is not signed in can make the server store more than a page's body."""
    limit = limit_for("POST", reverse("desktop-files-upload", args=[7]), query)
    assert limit is WITHOUT_PASS and limit.max_bytes == REQUEST.max_bytes
    assert "reload the page" in limit.refusal(10**9)


def test_a_pass_is_for_its_upload_and_its_time(settings):
    iso = reverse("admin:vdi_installmedia_upload")
    files_pass = f"pass={upload_pass(3, 'desktop-files-upload')}"
    assert limit_for("POST", iso, files_pass) is WITHOUT_PASS, "a console's pass is not an ISO's"
    assert pass_holder(upload_pass(3, "desktop-files-upload"), "desktop-files-upload") == 3
    settings.UPLOAD_PASS_SECONDS = -1  # every pass is too old
    assert limit_for("POST", reverse("desktop-files-upload", args=[7]), files_pass) \
        is WITHOUT_PASS


def test_every_upload_in_the_table_names_a_page():
    for name in UPLOADS:
        assert reverse(name, args=[1] if name == "desktop-files-upload" else [])


def test_each_limit_is_its_setting_read_when_asked(settings):
    settings.FILE_TRANSFER_MAX_BYTES = 1234
    assert FILE_TRANSFER.max_bytes == 1234
    assert FILE_TRANSFER.refusal(2000) == ("the file is 2000 bytes; the portal takes at most "
                                           "1234 bytes (VDI_FILE_TRANSFER_MAX_BYTES)")
    settings.MEDIA_UPLOAD_MAX_BYTES = 10
    assert MEDIA_UPLOAD.refusal() == ("the ISO passed 10 bytes; the portal takes at most 10 "
                                      "bytes (VDI_MEDIA_UPLOAD_MAX_BYTES): add a bigger ISO by "
                                      "its path instead")


def test_djangos_form_limit_is_the_pages_limit():
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == REQUEST.max_bytes == settings.REQUEST_MAX_BYTES


@pytest.fixture
def limited() -> tuple[BodyLimitMiddleware, list[str], list[dict[str, Any]]]:
    reached: list[str] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    return BodyLimitMiddleware(app), reached, sent


def call(limited: Any, method: str, path: str, length: int | None, query: str = "") -> None:
    middleware, _, sent = limited

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> None:
        raise AssertionError("the body was read")

    headers = [] if length is None else [(b"content-length", str(length).encode())]
    async_to_sync(middleware)({"type": "http", "method": method, "path": path,
                               "query_string": query.encode(), "headers": headers},
                              receive, send)


def test_the_asgi_layer_refuses_a_declared_length_over_the_limit_unread(limited, settings):
    settings.REQUEST_MAX_BYTES, settings.FILE_TRANSFER_MAX_BYTES = 100, 1000
    _, reached, sent = limited
    files = reverse("desktop-files-upload", args=[7])
    call(limited, "POST", "/accounts/login/", 101)
    assert [sent[0]["status"], sent[1]["body"]] == [413, REQUEST.refusal_json(101)]
    with_pass = f"pass={upload_pass(3, 'desktop-files-upload')}"
    call(limited, "POST", files, 1001, with_pass)
    assert sent[2]["status"] == 413 and b"VDI_FILE_TRANSFER_MAX_BYTES" in sent[3]["body"]
    call(limited, "POST", files, 101)  # no pass: a page's limit
    assert sent[4]["status"] == 413 and b"reload the page" in sent[5]["body"]
    call(limited, "POST", "/accounts/login/", 100)
    call(limited, "POST", files, 1000, with_pass)
    call(limited, "POST", files, None)  # chunked: under daphne, the server counted it
    assert reached == ["/accounts/login/", files, files] and len(sent) == 6
