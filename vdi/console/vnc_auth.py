"""The proxy signs in to the guest's VNC server with the desktop's password on the user's
behalf, then offers the browser a server that needs no password: the browser never sees a
hypervisor credential.

The proxy also opens the session (ClientInit, always shared: a helpdesk watching or a second
tab does not cut the user off), so the browser's whole greeting goes out at once, in two
messages: the version, then security None, its result and the server's ServerInit. noVNC
stops reading after the version until another message comes, then reads on through the rest
and answers all of it together: the handshake takes one round trip instead of four.

RFB 3.8 (RFC 6143): VNC Authentication encrypts a 16-byte challenge with DES, keyed by the
password's first 8 bytes, each byte's bits reversed (a quirk every VNC server shares).
"""

from __future__ import annotations

import struct

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from vdi.console.client_filter import ProtocolError
from vdi.console.relay import VncConnection

VERSION = b"RFB 003.008\n"
SECURITY_NONE = 1
SECURITY_VNC_AUTH = 2
SHARED = b"\x01"  # ClientInit: leave other clients connected
MAX_NAME = 4096  # a desktop name longer than this is not a VNC server's


class VncAuthError(Exception):
    pass


def _reverse_bits(byte: int) -> int:
    return int(f"{byte:08b}"[::-1], 2)


def des_response(password: str, challenge: bytes) -> bytes:
    key = bytes(_reverse_bits(b) for b in password.encode("latin-1")[:8].ljust(8, b"\0"))
    # ECB and DES are what the RFB protocol prescribes; 3 x the same key is single DES.
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()  # noqa: S305
    return encryptor.update(challenge) + encryptor.finalize()


async def _reason(vnc: VncConnection) -> str:
    (length,) = struct.unpack("!I", await vnc.read_exactly(4))
    return (await vnc.read_exactly(min(length, 1024))).decode(errors="replace")


async def sign_in(vnc: VncConnection, password: str) -> bytes:
    """Complete the server's handshake with VNC Authentication (the only security type
    accepted when the desktop has a password) and a shared ClientInit; the server's
    ServerInit, whole."""
    version = await vnc.read_exactly(12)
    if not version.startswith(b"RFB 003."):
        raise VncAuthError(f"not a VNC server (it said {version!r})")
    await vnc.write(VERSION)
    (count,) = struct.unpack("!B", await vnc.read_exactly(1))
    if count == 0:
        raise VncAuthError(f"the VNC server refused: {await _reason(vnc)}")
    types = await vnc.read_exactly(count)
    if SECURITY_VNC_AUTH not in types:
        # The desktop has a password: a server that asks for none is not the desktop's (or
        # its password was taken off behind the portal's back). Never fall back to None.
        raise VncAuthError(f"the VNC server does not ask for the desktop's password "
                           f"(it offered {list(types)}); refusing")
    await vnc.write(bytes([SECURITY_VNC_AUTH]))
    challenge = await vnc.read_exactly(16)
    await vnc.write(des_response(password, challenge))
    (result,) = struct.unpack("!I", await vnc.read_exactly(4))
    if result != 0:
        raise VncAuthError(f"VNC authentication failed: {await _reason(vnc)}")
    await vnc.write(SHARED)
    head = await vnc.read_exactly(24)  # size, pixel format, name length
    (name_length,) = struct.unpack_from("!I", head, 20)
    if name_length > MAX_NAME:
        raise VncAuthError(f"not a VNC server (a desktop name of {name_length} bytes)")
    return head + await vnc.read_exactly(name_length)


class BrowserGreeter:
    """Plays the server's part of the handshake to the browser, offering no security, with
    the VNC server's own ServerInit: all of it at once, then the browser's answers are
    checked and dropped (the proxy sent the server its ClientInit already)."""

    ANSWERS = len(VERSION) + 1 + 1  # version, security type, ClientInit

    def __init__(self, server_init: bytes) -> None:
        self.server_init = server_init
        self.buffer = b""
        self.done = False

    def opening(self) -> tuple[bytes, bytes]:
        """The greeting's two messages (see the module's docstring)."""
        return VERSION, struct.pack("!BBI", 1, SECURITY_NONE, 0) + self.server_init

    def feed(self, data: bytes) -> bytes:
        """Bytes from the browser in; what follows its handshake out (for the VNC server).
        ProtocolError when it answers what was not offered."""
        if self.done:
            return data
        self.buffer += data
        if len(self.buffer) < self.ANSWERS:
            return b""
        version, security = self.buffer[:12], self.buffer[12]
        if version != VERSION:
            raise ProtocolError(f"the browser answered RFB version {version!r}")
        if security != SECURITY_NONE:
            raise ProtocolError(f"the browser chose security type {security}, not None")
        rest, self.buffer, self.done = self.buffer[self.ANSWERS:], b"", True
        return rest
