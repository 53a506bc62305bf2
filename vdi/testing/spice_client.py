"""A minimal SPICE client for tests and benchmarks: the link step of one channel, as
remote-viewer and spice-html5 do it (optionally through an HTTP CONNECT proxy, as a ``.vv``
file's ``proxy=`` key makes remote-viewer do)."""

from __future__ import annotations

import socket
import struct

from vdi.console.spice_link import (
    AUTH_SPICE,
    CAP_AUTH_SELECTION,
    HEADER,
    LINK_MESS,
    MAGIC,
    RESULT,
    VERSION,
    body_size,
    encrypt_password,
    public_key_of,
    reply_error,
)

CAP_MINI_HEADER = 3


def link_message(channel_type: int, connection_id: int = 0, channel_id: int = 0) -> bytes:
    common = (1 << CAP_AUTH_SELECTION) | (1 << AUTH_SPICE) | (1 << CAP_MINI_HEADER)
    body = LINK_MESS.pack(connection_id, channel_type, channel_id, 1, 0, LINK_MESS.size)
    body += struct.pack("<I", common)
    return HEADER.pack(MAGIC, *VERSION, len(body)) + body


def read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {count} bytes")
        data += chunk
    return data


def http_connect(sock: socket.socket, target: str) -> None:
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(1024)
        if not chunk:
            raise ConnectionError(f"the proxy closed: {answer!r}")
        answer += chunk
    status = answer.split(b"\r\n", 1)[0]
    if b" 200" not in status:
        raise ConnectionError(f"the proxy refused: {status.decode(errors='replace')}")


def link(sock: socket.socket, channel_type: int, password: str,
         connection_id: int = 0) -> int:
    """Link one channel on ``sock``; SPICE's result (0 when the channel is open)."""
    sock.sendall(link_message(channel_type, connection_id))
    header = read_exactly(sock, HEADER.size)
    body = read_exactly(sock, body_size(header))
    if (error := reply_error(body)) != 0:
        return error
    sock.sendall(RESULT.pack(AUTH_SPICE) + encrypt_password(public_key_of(body), password))
    return int(RESULT.unpack(read_exactly(sock, RESULT.size))[0])


def main_session_id(sock: socket.socket) -> int:
    """After a main channel's link: the session id from SPICE_MSG_MAIN_INIT (mini header)."""
    while True:
        kind, size = struct.unpack("<HI", read_exactly(sock, 6))
        body = read_exactly(sock, size)
        if kind == 103:  # SPICE_MSG_MAIN_INIT
            return int(struct.unpack_from("<I", body)[0])
