"""What ``portal.daphne_server`` relies on in daphne and Twisted, each point of its docstring
checked, so that an upgrade that moves one fails here by name (its behaviour is proven on a
real daphne in tests/integration/test_request_bodies.py)."""

from __future__ import annotations

import io

import daphne.server
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.internet import tcp
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web import http

from portal.daphne_server import CappedHTTPFactory, CappedRequest

PEER = IPv4Address("TCP", "127.0.0.1", 40000)


def test_daphnes_command_line_runs_its_server_class():
    assert CommandLineInterface.server_class is daphne.server.Server
    assert "server_class" in CommandLineInterface.run.__code__.co_names


def test_daphnes_server_makes_its_http_factory_by_the_module_name_we_replace():
    assert "HTTPFactory" in daphne.server.Server.run.__code__.co_names
    assert daphne.server.HTTPFactory is HTTPFactory, "only main() names ours there"


def test_daphnes_factory_gives_its_connections_webrequest_and_ours_cappedrequest():
    assert HTTPFactory(None).buildProtocol(PEER).requestFactory is WebRequest
    assert CappedHTTPFactory(None).buildProtocol(PEER).requestFactory is CappedRequest


class Seen(http.Request):
    """Twisted's request, noting what the channel tells it and when."""

    events: list[tuple[object, ...]]
    drop_expect = False

    def gotLength(self, length: int | None) -> None:
        self.events = [("length", length, self.channel._command, self.channel._path)]
        if self.drop_expect:
            self.requestHeaders.removeHeader(b"expect")
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self.events.append(("chunk", data))
        super().handleContentChunk(data)

    def process(self) -> None:
        self.events.append(("whole",))


def channel_fed(data: bytes, drop_expect: bool = False) -> tuple[Seen, bytes]:
    channel = http.HTTPChannel()
    Seen.drop_expect = drop_expect
    channel.requestFactory = Seen
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(data)
    return channel.requests[-1], transport.value()


def test_twisted_tells_the_length_with_the_request_line_before_any_body_byte():
    request, _ = channel_fed(b"POST /a%20b?c=d HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
                             b"hello")
    assert request.events == [("length", 5, b"POST", b"/a%20b?c=d"), ("chunk", b"hello"),
                              ("whole",)]
    request, _ = channel_fed(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"3\r\nabc\r\n0\r\n\r\n")
    assert request.events == [("length", None, b"POST", b"/"), ("chunk", b"abc"), ("whole",)]


def test_twisted_sends_100_continue_after_the_length_unless_expect_is_gone():
    head = b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    assert channel_fed(head)[1] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert channel_fed(head, drop_expect=True)[1] == b""


def test_twisted_stores_a_body_past_100_kb_in_a_file():
    request, _ = channel_fed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    assert not isinstance(request.content, io.BytesIO), "a temporary file"
    request, _ = channel_fed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n")
    assert isinstance(request.content, io.BytesIO)


def test_a_refusal_can_close_our_end_first_and_the_rest_later():
    assert callable(tcp.Server.loseWriteConnection)
    assert callable(http.HTTPChannel.callLater)
