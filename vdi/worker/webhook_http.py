"""The POST of one webhook delivery: to an address ``vdi.webhook_targets`` checked, never to
one a second DNS lookup gives, and never on to where a redirect points.

``http.client`` rather than urllib: it follows no redirect and reads no proxy from the
environment (a proxy would resolve the name itself, after the check).
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import time
from dataclasses import dataclass

from django.conf import settings

from vdi import webhook_targets
from vdi.webhook_targets import Target

log = logging.getLogger(__name__)
ANSWER_LIMIT = 65536  # bytes of a receiver's answer read (and thrown away)


@dataclass(frozen=True)
class Answer:
    code: int | None  # the HTTP status; None when no answer came
    error: str = ""  # in words, for the delivery list; empty when delivered
    final: bool = False  # another attempt cannot help (a refused target, not an http(s) URL)


class PinnedConnection(http.client.HTTPConnection):
    """HTTP, or HTTPS when the target's scheme says so, to the target's checked addresses
    in turn; the Host header and the TLS certificate check still use the URL's name."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.target = target
        self.connect_within = timeout
        self.default_port = 443 if target.scheme == "https" else 80  # no ":443" in Host
        self.tls = ssl.create_default_context() if target.scheme == "https" else None

    def connect(self) -> None:
        sock = self._open()
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host) if self.tls else sock

    def _open(self) -> socket.socket:
        """The first address that takes the connection, all within one timeout."""
        give_up = time.monotonic() + self.connect_within
        error: OSError = OSError("no address to connect to")
        for address in self.target.addresses:
            left = give_up - time.monotonic()
            if left <= 0:
                break
            try:
                return socket.create_connection((str(address), self.port), left)
            except OSError as exc:
                error = exc
        raise error


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POST ``body`` to ``url`` if its host is allowed (``vdi.webhook_targets``). A refused
    target gets the same words whatever its address or port: no connection is tried."""
    try:
        target = webhook_targets.target_of(url, settings.WEBHOOK_ALLOWED_NETWORKS)
    except webhook_targets.Refused:
        log.warning("webhook to %s refused: no address of it is allowed", url)
        return Answer(None, webhook_targets.REFUSED, final=True)
    except webhook_targets.Unresolved as exc:
        return Answer(None, f"no answer: {exc}"[:500])
    except ValueError:
        return Answer(None, "not an http:// or https:// URL", final=True)
    return send(target, body, headers)


def send(target: Target, body: bytes, headers: dict[str, str]) -> Answer:
    connection = PinnedConnection(target, settings.WEBHOOK_TIMEOUT)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(ANSWER_LIMIT)
    except (OSError, http.client.HTTPException) as exc:  # ssl.SSLError is an OSError
        return Answer(None, f"no answer: {exc}"[:500])
    finally:
        connection.close()
    if 200 <= response.status < 300:
        return Answer(response.status)
    return Answer(response.status, f"HTTP {response.status} {response.reason}"[:500])
