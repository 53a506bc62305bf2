"""The pool's clipboard policy, held by the console's proxy: the browser's clipboard messages
that the policy refuses (or that carry too much text) never reach the guest, and the page is
told why. Copies out of the guest need the browser's request, so refusing the request is
enough; copies in are the browser's notify, provide or legacy cut text."""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from tests.console_helpers import FakeVnc, arrives, opened, run, session_cookie, with_vnc
from vdi.choices import ClipboardPolicy
from vdi.console.client_filter import ECHO_SECONDS, ClientStream
from vdi.console.clipboard import (
    CAPS,
    FROM_GUEST,
    NOTIFY,
    PEEK,
    PROVIDE,
    REQUEST,
    TEXT,
    TO_GUEST,
    ClipboardRules,
)


def extended(flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!BxxxiI", 6, -(4 + len(payload)), flags) + payload


def provide(text: str) -> bytes:
    body = text.encode() + b"\0"
    return extended(PROVIDE | TEXT, zlib.compress(struct.pack("!I", len(body)) + body))


def legacy(text: str) -> bytes:
    data = text.encode("latin-1")
    return struct.pack("!BxxxI", 6, len(data)) + data


CAPS_MESSAGE = extended(CAPS | TEXT, struct.pack("!I", 0))
REQUEST_MESSAGE = extended(REQUEST | TEXT)
PEEK_MESSAGE = extended(PEEK)
NOTIFY_MESSAGE = extended(NOTIFY | TEXT)
PASTE = provide("Grüße, €uro")

INTO_GUEST = (NOTIFY_MESSAGE, PASTE, legacy("café"))
OUT_OF_GUEST = (REQUEST_MESSAGE, PEEK_MESSAGE)


@pytest.mark.parametrize("policy, passes_in, passes_out", [
    (ClipboardPolicy.BOTH, True, True),
    (ClipboardPolicy.TO_GUEST, True, False),
    (ClipboardPolicy.FROM_GUEST, False, True),
    (ClipboardPolicy.OFF, False, False),
])
def test_each_policy_lets_through_what_it_allows(policy, passes_in, passes_out):
    now = [0.0]
    stream = ClientStream(False, handshake=0, clipboard=ClipboardRules(policy),
                          clock=lambda: now[0])
    for message in INTO_GUEST:
        assert bool(stream.feed(message)) is passes_in, message
    now[0] += ECHO_SECONDS  # past the echo of what went in
    for message in OUT_OF_GUEST:
        assert (stream.feed(message) == message) is passes_out, message
    assert stream.feed(CAPS_MESSAGE) == CAPS_MESSAGE, "capabilities carry no text"
    novnc_caps = extended(CAPS | REQUEST | PEEK | NOTIFY | PROVIDE | TEXT,
                          struct.pack("!I", 1024 * 1024))
    assert stream.feed(novnc_caps) == novnc_caps, "noVNC's, which names every action it does"
    directions = {refused.direction for refused in stream.refusals}
    assert directions == {d for d, ok in ((TO_GUEST, passes_in), (FROM_GUEST, passes_out))
                          if not ok}


def test_the_guests_echo_of_a_paste_is_refused_without_a_note():
    """A pool that keeps text in: right after a paste, the guest's session offers the same
    text back (PRIMARY kept in step with CLIPBOARD) and the browser asks for it. The request
    is dropped, but the page is not told "copying out ... is turned off" for the user's own
    paste; a request later on is told."""
    now = [100.0]
    stream = ClientStream(False, handshake=0, clipboard=ClipboardRules(ClipboardPolicy.TO_GUEST),
                          clock=lambda: now[0])
    assert stream.feed(PASTE)
    now[0] += ECHO_SECONDS - 1
    assert stream.feed(REQUEST_MESSAGE) == b"" and stream.refusals == []
    now[0] += 1
    assert stream.feed(REQUEST_MESSAGE) == b""
    assert [r.direction for r in stream.refusals] == [FROM_GUEST]


def provided_text(message: bytes) -> bytes:
    payload = zlib.decompress(message[12:])
    size = struct.unpack_from("!I", payload)[0]
    return payload[4:4 + size]


def test_text_goes_in_without_the_extensions_final_nul():
    """QEMU would put the NUL that ends the RFB extension's text into the guest's clipboard."""
    stream = ClientStream(False, handshake=0, clipboard=ClipboardRules())
    passed = stream.feed(PASTE)
    assert provided_text(PASTE) == "Grüße, €uro\0".encode()
    assert provided_text(passed) == "Grüße, €uro".encode()
    assert struct.unpack_from("!i", passed, 4)[0] == -(len(passed) - 8)


def test_text_over_the_limit_does_not_go_in():
    rules = ClipboardRules(ClipboardPolicy.BOTH, max_bytes=1024)
    stream = ClientStream(False, handshake=0, clipboard=rules)
    assert stream.feed(provide("x" * 1000)) != b""
    assert stream.feed(provide("x" * 1024)) == b"", "1024 characters and the final NUL"
    assert stream.feed(legacy("y" * 2000)) == b""
    assert [r.reason for r in stream.refusals] == [
        "the copied text is over 1024 bytes, the clipboard's limit"] * 2


def test_a_compressed_bomb_is_measured_without_inflating_it():
    body = b"a" * (64 * 1024 * 1024)
    bomb = extended(PROVIDE | TEXT, zlib.compress(struct.pack("!I", len(body)) + body, 9))
    assert len(bomb) < 128 * 1024
    stream = ClientStream(False, handshake=0, clipboard=ClipboardRules(max_bytes=4096))
    assert stream.feed(bomb) == b""
    assert stream.refusals[0].direction == TO_GUEST


def test_a_broken_provide_is_refused():
    stream = ClientStream(False, handshake=0, clipboard=ClipboardRules())
    assert stream.feed(extended(PROVIDE | TEXT, b"not zlib")) == b""


# --- through the proxy, with the page told -----------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_proxy_holds_the_pools_policy_and_tells_the_page(owner, running_desktop):
    running_desktop.pool.clipboard = ClipboardPolicy.TO_GUEST
    running_desktop.pool.save()
    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        ws = await opened(owner, session, running_desktop)
        await ws.send_to(bytes_data=REQUEST_MESSAGE)
        assert json.loads(await ws.receive_from(timeout=5)) == {
            "notice": "clipboard_refused", "direction": FROM_GUEST,
            "reason": "copying out of this desktop is turned off for its pool"}
        await ws.send_to(bytes_data=PASTE)
        await arrives(vnc, ClipboardRules().passed(PASTE))  # type: ignore[arg-type]
        assert REQUEST_MESSAGE not in vnc.received
        await ws.disconnect()

    run(with_vnc, running_desktop, body)


@pytest.mark.django_db(transaction=True)
def test_a_desktop_without_a_pool_shares_its_clipboard_both_ways(owner, running_desktop):
    from vdi.services.console import clipboard_policy

    running_desktop.pool = None
    assert clipboard_policy(running_desktop) is ClipboardPolicy.BOTH
