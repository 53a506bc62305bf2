"""Writing a request body to a new file, counted as it comes (the declared length may lie)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from vdi.services.errors import ServiceError


def write_capped(path: Path, chunks: Iterator[bytes], limit: int, setting: str) -> int:
    """Write ``chunks`` to the new file ``path`` (0600), at most ``limit`` bytes (the setting
    ``setting``); return the size. Past the limit: ServiceError (the caller removes the file)."""
    written = 0
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        for chunk in chunks:
            written += len(chunk)
            if written > limit:
                raise ServiceError(f"the upload passed {limit} bytes ({setting}); "
                                   "it was not kept")
            f.write(chunk)
    return written
