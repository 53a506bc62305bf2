"""SPICE's link step, read and written by the proxy (pure: bytes in, bytes out).

Every SPICE channel is its own connection and starts with a link: the client sends a
``SpiceLinkHeader`` and a ``SpiceLinkMess`` (which channel, which session it joins, its
capabilities); the server answers with its own header and a ``SpiceLinkReply`` holding an RSA
public key; the client sends the password encrypted with that key (RSA-OAEP, SHA-1), preceded
by the authentication mechanism when both ends chose to select one; the server answers a
32-bit result. After that the channel's messages flow and the proxy only relays.

The proxy stands in the middle of the password step: the client gets the proxy's key
(``ProxyKey``) and its "password" is a portal ticket; QEMU gets the real password, encrypted
with QEMU's own key. See ``vdi.console.spice_proxy``.
"""

from __future__ import annotations

import enum
import functools
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MAGIC = b"REDQ"
VERSION = (2, 2)
HEADER = struct.Struct("<4sIII")  # magic, major, minor, size of what follows
LINK_MESS = struct.Struct("<IBBIII")  # connection id, channel type, id, caps counts, offset
LINK_REPLY = struct.Struct("<I162sIII")  # error, public key, caps counts, offset
RESULT = struct.Struct("<I")
PUBLIC_KEY_BYTES = 162  # a 1024-bit key as X.509 SubjectPublicKeyInfo
TICKET_BYTES = 128  # RSA-1024 ciphertext
MAX_LINK = 4096  # no real link message comes near this
CAP_AUTH_SELECTION = 0
AUTH_SPICE = 1


class Channel(enum.IntEnum):
    MAIN = 1
    DISPLAY = 2
    INPUTS = 3
    CURSOR = 4
    PLAYBACK = 5
    RECORD = 6
    TUNNEL = 7
    SMARTCARD = 8
    USBREDIR = 9
    PORT = 10
    WEBDAV = 11


class LinkError(enum.IntEnum):
    OK = 0
    ERROR = 1
    INVALID_MAGIC = 2
    INVALID_DATA = 3
    VERSION_MISMATCH = 4
    PERMISSION_DENIED = 7
    BAD_CONNECTION_ID = 8
    CHANNEL_NOT_AVAILABLE = 9


class SpiceProtocolError(Exception):
    """What a peer sent is not a SPICE link."""


@dataclass(frozen=True)
class LinkMessage:
    connection_id: int
    channel_type: int
    channel_id: int
    common_caps: tuple[int, ...]
    raw: bytes  # header and message, passed on to QEMU as they came

    @property
    def selects_auth(self) -> bool:
        """The client sends the mechanism (4 bytes) before the encrypted password."""
        return bool(self.common_caps and self.common_caps[0] & (1 << CAP_AUTH_SELECTION))

    @property
    def ticket_bytes(self) -> int:
        return TICKET_BYTES + (RESULT.size if self.selects_auth else 0)

    @property
    def channel_name(self) -> str:
        try:
            return Channel(self.channel_type).name.lower()
        except ValueError:
            return f"channel {self.channel_type}"


def body_size(header: bytes) -> int:
    """The size announced by a link header; refuses anything that is not SPICE 2.x."""
    magic, major, _minor, size = HEADER.unpack(header)
    if magic != MAGIC:
        raise SpiceProtocolError("not a SPICE link (bad magic)")
    if major != VERSION[0]:
        raise SpiceProtocolError(f"SPICE protocol {major} is not supported")
    if not LINK_MESS.size <= size <= MAX_LINK:
        raise SpiceProtocolError(f"a link of {size} bytes")
    return int(size)


def parse_link(header: bytes, body: bytes) -> LinkMessage:
    connection_id, channel_type, channel_id, n_common, n_channel, offset = \
        LINK_MESS.unpack_from(body)
    end = offset + 4 * (n_common + n_channel)
    if n_common > 64 or n_channel > 64 or offset < LINK_MESS.size or end > len(body):
        raise SpiceProtocolError("link capabilities out of bounds")
    common = struct.unpack_from(f"<{n_common}I", body, offset)
    return LinkMessage(connection_id, channel_type, channel_id, tuple(common), header + body)


def replace_public_key(body: bytes, key: bytes) -> bytes:
    """QEMU's link reply with ``key`` in place of QEMU's: the client encrypts for the proxy."""
    if len(body) < LINK_REPLY.size:
        raise SpiceProtocolError("short link reply")
    return body[:4] + key + body[4 + PUBLIC_KEY_BYTES:]


def reply_error(body: bytes) -> int:
    return int(RESULT.unpack_from(body)[0])


def public_key_of(body: bytes) -> bytes:
    return body[4:4 + PUBLIC_KEY_BYTES]


def refusal_reply(error: LinkError) -> bytes:
    """A whole link reply (header and body) that refuses the channel."""
    body = LINK_REPLY.pack(int(error), bytes(PUBLIC_KEY_BYTES), 0, 0, LINK_REPLY.size)
    return HEADER.pack(MAGIC, *VERSION, len(body)) + body


def result(error: LinkError) -> bytes:
    return RESULT.pack(int(error))


# SPICE's protocol fixes RSA-1024 with OAEP over SHA-1; the link runs on loopback or inside the
# portal's TLS, and the password it protects is a single-use ticket.
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()),  # noqa: S303
                     algorithm=hashes.SHA1(), label=None)  # noqa: S303


def encrypt_password(public_key_der: bytes, password: str) -> bytes:
    """The password as QEMU wants it: NUL-terminated, RSA-OAEP with QEMU's key."""
    key = serialization.load_der_public_key(public_key_der)
    if not isinstance(key, rsa.RSAPublicKey):
        raise SpiceProtocolError("the SPICE server's key is not RSA")
    return key.encrypt(password.encode() + b"\0", _OAEP)


class ProxyKey:
    """The proxy's own RSA key pair, made once per process: what clients encrypt for."""

    def __init__(self) -> None:
        self._private = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
        self.public_der = self._private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert len(self.public_der) == PUBLIC_KEY_BYTES

    def decrypt(self, ciphertext: bytes) -> str | None:
        """The client's password, or None when it is not something encrypted for us."""
        try:
            plain = self._private.decrypt(ciphertext, _OAEP)
        except ValueError:
            return None
        return plain.rstrip(b"\0").decode("utf-8", "replace")


@functools.cache
def proxy_key() -> ProxyKey:
    return ProxyKey()
