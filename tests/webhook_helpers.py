"""What the webhook tests share: a real HTTP receiver on 127.0.0.1, and a watch on every
connection and name lookup the test process makes, which fails a test at once when it would
send anything off this machine (the code under test may be wrong; the network must not pay)."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv6Address, ip_address
from pathlib import Path
from typing import Any


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that answers with the next scripted status (the last one
    again when the script runs out), with ``location`` as Location header when given, and
    keeps what it got."""

    def __init__(self, *answers: int, location: str | None = None) -> None:
        self.answers = list(answers) or [200]
        self.location = location
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hooks/vdi"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                # Header names are case-insensitive (http.client keeps ours as written).
                receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.next_answer())
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.end_headers()
                self.wfile.write(b"thanks")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def next_answer(self) -> int:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def loopback_names() -> list[str]:
    """Names this machine's /etc/hosts gives a loopback address (``localhost`` first)."""
    names: list[str] = []
    for line in Path("/etc/hosts").read_text().splitlines():
        fields = line.partition("#")[0].split()
        if len(fields) > 1 and _loopback(fields[0]):
            names.extend(n for n in fields[1:] if n not in names)
    return sorted(names, key=lambda n: n != "localhost")


def _loopback(host: str) -> bool:
    try:
        address = ip_address(host.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


class NetworkWatch:
    """Connections (host, port) and name lookups made while ``watching()``. A connection to
    an address outside loopback, or a lookup of a name /etc/hosts does not answer (it would
    go to a DNS server), raises at once."""

    def __init__(self) -> None:
        self.connections: list[tuple[str, int]] = []
        self.lookups: list[str] = []
        self.local_names = set(loopback_names())
        self.active = False
        sys.addaudithook(self._hook)  # for the process's life: off while not watching

    @contextmanager
    def watching(self) -> Iterator[NetworkWatch]:
        self.connections.clear()
        self.lookups.clear()
        self.active = True
        try:
            yield self
        finally:
            self.active = False

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "socket.connect" and args[0].family in (socket.AF_INET, socket.AF_INET6):
            host, port = str(args[1][0]), int(args[1][1])
            self.connections.append((host, port))
            if not _loopback(host):
                raise AssertionError(f"a connection off this machine: {host}:{port}")
        elif event == "socket.getaddrinfo" and args[0] is not None:
            host = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
            self.lookups.append(host)
            if not (_is_literal(host) or host in self.local_names):
                raise AssertionError(f"a DNS lookup off this machine: {host}")


def _is_literal(host: str) -> bool:
    try:
        ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


network = NetworkWatch()
