"""The first frame without waiting for QEMU's refresh timer.

QEMU's VNC server sends a frame a client asked for at its next refresh, and while the screen
does not change the refreshes back off: 80, 130, 180 ms... apart after a client connects
(``vnc_refresh`` in QEMU's ui/vnc.c). The proxy signs in when the browser's socket opens, and
the page asks for its first frame a moment later, so that frame waited up to 130 ms here for
a refresh. A new connection makes QEMU refresh at once (``vnc_connect`` resets the interval),
so right after the browser's first full-screen request has gone on, the proxy opens a second
connection to the same VNC server and closes it before the handshake: the frame is sent
within a few milliseconds.
"""

from __future__ import annotations

import logging

from vdi.console.relay import connect_vnc

log = logging.getLogger(__name__)


async def wake(host: str, port: int, socket: str = "") -> None:
    """Open and close a connection to the VNC server (it never gets past the greeting)."""
    try:
        connection = await connect_vnc(host, port, socket)
    except OSError as exc:  # the frame comes at the next refresh all the same
        log.debug("could not wake the VNC server's refresh: %s", exc)
        return
    connection.close()
