"""Writing a request body to a new file, counted as it comes (the declared length may lie),
and saying in words why the portal could not store it (no space left, a folder its service
user may not write...) instead of failing with a bare server error."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from portal.limits import BodyLimit
from vdi.causes import explain
from vdi.services.errors import ServiceError

NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})


class NotStored(ServiceError):
    """The portal could not store an upload: its message names the cause for operators
    (the folder, the setting that names it, what is wrong there); ``status`` is the HTTP
    status that says it (507 when the space ran out, 500 otherwise)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@contextmanager
def storing(folder: Path, setting: str) -> Iterator[None]:
    """Around writing an upload into ``folder`` (the setting ``setting`` names it): an OSError
    becomes NotStored, in words."""
    try:
        yield
    except OSError as exc:
        raise NotStored(f"the upload could not be stored in {folder} ({setting}): "
                        f"{explain(exc)}", 507 if exc.errno in NO_ROOM else 500) from exc


def check_length(limit: BodyLimit, length: int | None) -> None:
    """A declared ``length`` over ``limit``: ServiceError, in the server's words."""
    if length is not None and length > limit.max_bytes:
        raise ServiceError(limit.refusal(length))


def write_capped(path: Path, chunks: Iterator[bytes], limit: BodyLimit) -> int:
    """Write ``chunks`` to the new file ``path`` (0600), at most ``limit`` bytes; return the
    size. Past the limit: ServiceError (the caller removes the file)."""
    written = 0
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        for chunk in chunks:
            written += len(chunk)
            if written > limit.max_bytes:
                raise ServiceError(f"the upload passed {limit.max_bytes} bytes ({limit.setting}); "
                                   "it was not kept")
            f.write(chunk)
    return written
