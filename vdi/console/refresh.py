"""The first frame without waiting for QEMU's refresh timer.

QEMU's VNC server sends a frame a client asked for at its next refresh, and while the screen
does not change the refreshes back off: 80, 130, 180 ms... apart after a client connects
(``vnc_refresh`` in QEMU's ui/vnc.c). A first frame asked for just after a connection waited
up to 130 ms here for a refresh. A new connection brings the interval back to its base, 30 ms
(``vnc_connect``), so right after the first full-screen request has gone on (the proxy's own,
``vdi.console.first_frame``, or else the browser's), the proxy opens a second connection to
the same VNC server and closes it before the handshake. Measured against QEMU's VNC server
here: a full frame asked for right after signing in came after 82 ms without it, 33 ms with
it; one asked for later, within a few milliseconds.
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
