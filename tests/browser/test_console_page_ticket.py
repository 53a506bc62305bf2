"""The console page opens its socket with the ticket it came with, while its code loads; a
ticket refused by then (expired in a tab left loading) is replaced once, by itself; the
whole handshake received before the code ran still connects."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser_fixtures import canvas_shows_something
from vdi.models import ConsoleTicket, Desktop
from vdi.services.console import FIRST_FRAME_PROTOCOL
from vdi.testing.processes import ServerProcess, wait_for
from vdi.testing.vnc_screen import vnc_screen

pytestmark = [pytest.mark.browser, pytest.mark.vm, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def screen(running_desktop: Desktop) -> Iterator[Desktop]:
    """The owner's desktop, its VNC endpoint a real QEMU screen (SeaBIOS)."""
    with vnc_screen() as port:
        Desktop.objects.filter(pk=running_desktop.pk).update(vnc_port=port)
        yield running_desktop


@pytest.fixture
def screen_with_password(running_desktop: Desktop) -> Iterator[Desktop]:
    """The same with a VNC password, as every desktop has: the proxy signs in and greets the
    browser with the whole handshake at once."""
    with vnc_screen("s3cretpw") as port:
        Desktop.objects.filter(pk=running_desktop.pk).update(vnc_port=port,
                                                             vnc_password="s3cretpw")
        yield running_desktop


def console_page(browser: Any, portal: ServerProcess, user: Any) -> Any:
    client = Client()
    client.force_login(user)
    context = browser.new_context()
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                          "domain": "127.0.0.1", "path": "/"}])
    page = context.new_page()
    page.logged = []
    page.on("console", lambda message: page.logged.append(f"{message.type}: {message.text}"))
    return page


def connected(page: Any) -> None:
    try:
        page.wait_for_selector("#console-state:text-is('Connected')", timeout=30_000)
    except PlaywrightTimeout:
        raise AssertionError(
            f"the console did not connect: {page.inner_text('#console-state')!r}, "
            f"{page.inner_text('#console-problem')!r}; its log: {page.logged}") from None
    wait_for(lambda: canvas_shows_something(page), 30, "the screen in the canvas")


def test_the_console_opens_with_the_pages_own_ticket(browser, portal, owner, screen):
    page = console_page(browser, portal, owner)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{portal.origin}/desktops/{screen.pk}/console/")
    connected(page)
    assert not [url for url in asked if url.endswith("/ticket/")], "no ticket request"
    ticket = ConsoleTicket.objects.get()
    assert ticket.used_at is not None


STALE_FIRST_TICKET = """(() => {
  const Real = window.WebSocket;
  let first = true;
  window.WebSocket = function (url, protocols) {
    if (first) {  // the page's ticket, as if it had expired while the page loaded
      first = false;
      const stale = "vdi-ticket." + "x".repeat(43);
      protocols = protocols.map((p) => (p.startsWith("vdi-ticket.") ? stale : p));
    }
    return new Real(url, protocols);
  };
  window.WebSocket.prototype = Real.prototype;
  for (const name of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) {
    window.WebSocket[name] = Real[name];
  }
})();"""


def test_a_refused_page_ticket_is_replaced_once(browser, portal, owner, screen):
    page = console_page(browser, portal, owner)
    page.add_init_script(STALE_FIRST_TICKET)
    page.goto(f"{portal.origin}/desktops/{screen.pk}/console/")
    connected(page)
    assert ConsoleTicket.objects.filter(used_at__isnull=False).count() == 1
    assert ConsoleTicket.objects.count() == 2, "the page's, unused, and the one asked for"


def test_a_handshake_held_before_the_code_ran_connects(browser, portal, owner,
                                                      screen_with_password):
    """The bundle comes late (a slow network): the page's socket has the whole greeting, and
    noVNC connects while it reads it, before the page's code listens for anything else."""
    page = console_page(browser, portal, owner)

    def late(route: Any) -> None:
        time.sleep(2)  # the socket opens and the greeting arrives meanwhile
        route.continue_()

    page.route("**/static/vdi/console.*.js", late)
    page.goto(f"{portal.origin}/desktops/{screen_with_password.pk}/console/")
    connected(page)


RECORD_SENT = """(() => {
  window.vdiSent = [];
  window.vdiOffered = [];
  const Real = window.WebSocket;
  window.WebSocket = function (url, protocols) {
    window.vdiOffered.push(protocols);
    return new Real(url, protocols);
  };
  window.WebSocket.prototype = Real.prototype;
  for (const name of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) {
    window.WebSocket[name] = Real[name];
  }
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data !== "string") {
      const view = ArrayBuffer.isView(data) ? data : new Uint8Array(data);
      window.vdiSent.push(...new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
    }
    return send.call(this, data);
  };
})();"""


def test_the_proxys_first_frame_request_is_what_the_bundled_novnc_asks_for(
        browser, portal, owner, screen_with_password):
    """The proxy asks for the first frame before noVNC runs (vdi.console.first_frame) when the
    page offers FIRST_FRAME_PROTOCOL, so its pixel format and encodings must be noVNC's own:
    the bundle's are read off the socket."""
    from vdi.console import first_frame

    page = console_page(browser, portal, owner)
    page.add_init_script(RECORD_SENT)
    page.goto(f"{portal.origin}/desktops/{screen_with_password.pk}/console/")
    connected(page)
    offered = page.evaluate("() => window.vdiOffered")
    assert offered and all(FIRST_FRAME_PROTOCOL in protocols for protocols in offered)
    sent = bytes(page.evaluate("() => window.vdiSent"))
    after_handshake = sent[12 + 1 + 1:]
    pixel_format = after_handshake[:len(first_frame.PIXEL_FORMAT)]
    assert pixel_format == first_frame.PIXEL_FORMAT
    encodings = after_handshake[len(pixel_format):]
    kind, count = struct.unpack_from("!BxH", encodings)
    listed = struct.unpack_from(f"!{count}i", encodings, 4)
    assert kind == 2 and listed[:len(first_frame.ENCODINGS)] == first_frame.ENCODINGS
