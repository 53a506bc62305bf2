"""The proxy signs in to the guest's VNC server with the desktop's password on the user's
behalf, then offers the browser a server that needs no password: the browser never sees a
hypervisor credential.

RFB 3.8 (RFC 6143): VNC Authentication encrypts a 16-byte challenge with DES, keyed by the
password's first 8 bytes, each byte's bits reversed (a quirk every VNC server shares).
"""

from __future__ import annotations

import struct

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from vdi.console.relay import VncConnection

VERSION = b"RFB 003.008\n"
SECURITY_NONE = 1
SECURITY_VNC_AUTH = 2


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


async def sign_in(vnc: VncConnection, password: str) -> None:
    """Complete the server's handshake up to (not including) ClientInit, with VNC
    Authentication: the only security type accepted when the desktop has a password."""
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


class BrowserGreeter:
    """Plays the server's part of the handshake to the browser, offering no security."""

    def __init__(self) -> None:
        self.buffer = b""
        self.stage = "version"

    @property
    def done(self) -> bool:
        return self.stage == "done"

    def opening(self) -> bytes:
        return VERSION

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """Bytes from the browser in; (to the browser, to the VNC server) out."""
        self.buffer += data
        reply = b""
        if self.stage == "version" and len(self.buffer) >= 12:
            self.buffer = self.buffer[12:]
            reply += struct.pack("!BB", 1, SECURITY_NONE)
            self.stage = "security"
        if self.stage == "security" and len(self.buffer) >= 1:
            self.buffer = self.buffer[1:]
            reply += struct.pack("!I", 0)
            self.stage = "done"
        if self.done:
            rest, self.buffer = self.buffer, b""
            return reply, rest
        return reply, b""
