"""daphne as the portal runs it, with request bodies capped before they are stored:
``python -m portal.daphne_server [daphne's options] portal.asgi:application`` takes every
option of the ``daphne`` command (scripts/run and docker/Dockerfile start it so).

daphne writes a request's whole body to a file (a temporary file past 100 kB) before the
application sees any of it, however big. Here each request looks up its limit
(``portal.limits``, by method and path) once its headers are in: a declared length over it is
answered 413 at once, before a byte of the body is stored (and without a 100 Continue); a body
without a length (chunked) is stored until its next piece would pass the limit, then dropped
and answered 413. The connection then closes: the answer goes out with our side's end of the
stream, and what the client still sends is read and dropped for LINGER seconds, so that it
reads the 413 rather than a reset.

What this relies on, in daphne 4.2.3 and Twisted 26.10.0 (requirements.lock);
tests/unit/test_daphne_server.py fails when an upgrade moves any of it:

- ``daphne.cli.CommandLineInterface`` parses daphne's options and runs its ``server_class``;
- ``daphne.server.Server.run`` makes its HTTP factory by calling the name ``HTTPFactory`` of
  ``daphne.server``, whose ``buildProtocol`` gives every connection the request class
  ``daphne.http_protocol.WebRequest``. No option chooses another, so ``main`` names a factory
  of ours there, whose connections make ``CappedRequest``s;
- Twisted's ``HTTPChannel`` calls ``request.gotLength(length)`` once the headers are in, before
  any body byte (``None`` for a chunked body), holding the request line in ``_command`` and
  ``_path`` meanwhile; then it sends 100 Continue if the request's ``Expect`` asks for it,
  hands each piece of the body to ``handleContentChunk`` and the whole request to
  ``requestReceived``, which runs the application (daphne's ``WebRequest.process``);
- Twisted's ``Request.gotLength`` makes ``content``, the file the body is stored in.
"""

from __future__ import annotations

import io
import sys
from typing import Any
from urllib.parse import unquote

import daphne.server  # first: it installs the asyncio reactor daphne runs on
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest

from portal import limits

LINGER = 5.0  # seconds a refused client has to stop sending and read its 413


class CappedRequest(WebRequest):
    """daphne's request, storing at most its page's limit of body (``portal.limits``)."""

    limit: limits.BodyLimit | None = None  # None: no body (length 0)
    stored = 0
    refused = False

    def gotLength(self, length: int | None) -> None:
        if length != 0:
            self.limit = limits.limit_for(*self._method_and_path())
            if length is not None and length > self.limit.max_bytes:
                self.content = io.BytesIO()
                self._refuse(self.limit, length)
                return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return  # what a refused client still sends is dropped
        self.stored += len(data)
        if self.limit is not None and self.stored > self.limit.max_bytes:
            self.content.close()  # a temporary file is gone with it
            self.content = io.BytesIO()
            self._refuse(self.limit, None)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self.refused:  # a refused request never reaches the application
            super().requestReceived(command, path, version)

    def _method_and_path(self) -> tuple[str, str, str]:
        """The request line's method, path (decoded) and query string, as the limits take
        them."""
        target, _, query = self.channel._path.partition(b"?")
        return (self.channel._command.decode("latin-1"), unquote(target.decode("latin-1")),
                query.decode("latin-1"))

    def _refuse(self, limit: limits.BodyLimit, size: int | None) -> None:
        self.refused = True
        self.requestHeaders.removeHeader(b"expect")  # no 100 Continue for a refused body
        body = limit.refusal_json(size)
        transport = self.channel.transport
        transport.write(b"HTTP/1.1 413 Content Too Large\r\n"
                        b"Content-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        self._log_refusal(len(body))
        if hasattr(transport, "loseWriteConnection"):  # TCP: our end now, theirs in LINGER s
            transport.loseWriteConnection()
            self.channel.callLater(LINGER, transport.loseConnection)
        else:
            transport.loseConnection()

    def _log_refusal(self, size: int) -> None:
        """An access log line, as daphne writes one for every answer."""
        method, path, _ = self._method_and_path()
        client = f"{self.client.host}:{self.client.port}" if hasattr(self.client, "port") else None
        self.server.log_action("http", "complete", {
            "path": path, "status": 413, "method": method, "client": client,
            "time_taken": 0, "size": size})


class CappedHTTPFactory(HTTPFactory):
    """daphne's HTTP factory, whose connections make ``CappedRequest``s."""

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = CappedRequest
        return protocol


def main(argv: list[str]) -> None:
    daphne.server.HTTPFactory = CappedHTTPFactory  # what Server.run makes (see above)
    CommandLineInterface().run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
