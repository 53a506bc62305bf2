"""The proxy's side of the browser's RFB handshake: the whole greeting at once, and the
browser's answers checked however they are cut."""

from __future__ import annotations

import struct

import pytest

from vdi.console.client_filter import ProtocolError
from vdi.console.vnc_auth import VERSION, BrowserGreeter

SERVER_INIT = struct.pack("!HH16sI", 640, 400, b"\x20\x18\x00\x01" + b"\x00" * 12, 4) + b"tiny"
ANSWERS = VERSION + b"\x01" + b"\x01"  # version, security None, ClientInit (shared)
AFTER = b"\x03\x00\x00\x00\x00\x00\x02\x80\x01\x90"  # a FramebufferUpdateRequest


def test_the_greeting_offers_no_password_and_carries_the_servers_init():
    """Two messages: noVNC reads past the version only when a new message comes."""
    greeting = BrowserGreeter(SERVER_INIT).opening()
    assert greeting == (VERSION, b"\x01\x01" + b"\x00\x00\x00\x00" + SERVER_INIT)


@pytest.mark.parametrize("cut", range(len(ANSWERS + AFTER) + 1))
def test_the_browsers_answers_are_dropped_and_what_follows_passes(cut):
    greeter = BrowserGreeter(SERVER_INIT)
    stream = ANSWERS + AFTER
    passed = greeter.feed(stream[:cut]) + greeter.feed(stream[cut:])
    assert passed == AFTER and greeter.done


def test_not_done_until_every_answer_is_in():
    greeter = BrowserGreeter(SERVER_INIT)
    assert greeter.feed(ANSWERS[:-1]) == b"" and not greeter.done


@pytest.mark.parametrize("answers, words", [
    (b"RFB 003.003\n\x01\x01", "RFB version"),
    (VERSION + b"\x02\x01", "security type 2"),
])
def test_answers_to_what_was_not_offered_are_refused(answers, words):
    with pytest.raises(ProtocolError, match=words):
        BrowserGreeter(SERVER_INIT).feed(answers)
