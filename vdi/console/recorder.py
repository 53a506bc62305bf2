"""A console session's recording: every binary frame the proxy sends the browser, with the
milliseconds since the first, so that a player can feed noVNC the same stream again.

File format: ``VDIREC1\\n``, then per frame a big-endian ``u32`` time in ms, a ``u32``
length and the bytes. The file stops growing at ``max_bytes`` (``truncated``); the page is
told the session is recorded before the first frame.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import BinaryIO

MAGIC = b"VDIREC1\n"
FRAME = struct.Struct("!II")


class Recorder:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.file: BinaryIO | None = os.fdopen(descriptor, "wb")
        self.file.write(MAGIC)
        self.size = len(MAGIC)
        self.started = time.monotonic()
        self.last_ms = 0
        self.truncated = False

    def write(self, data: bytes) -> None:
        if self.file is None or self.truncated:
            return
        if self.size + FRAME.size + len(data) > self.max_bytes:
            self.truncated = True
            return
        self.last_ms = int((time.monotonic() - self.started) * 1000)
        self.file.write(FRAME.pack(self.last_ms, len(data)))
        self.file.write(data)
        self.size += FRAME.size + len(data)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def read_frames(path: Path) -> list[tuple[int, bytes]]:
    """The recorded frames (ms, bytes), for tests and tools; a cut-off last frame is left out."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not a console recording")
    frames, position = [], len(MAGIC)
    while position + FRAME.size <= len(data):
        ms, length = FRAME.unpack_from(data, position)
        position += FRAME.size
        if position + length > len(data):
            break
        frames.append((ms, data[position:position + length]))
        position += length
    return frames
