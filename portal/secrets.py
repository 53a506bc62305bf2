"""Files that hold secrets (the database, the secret key, credentials) live in their own
folder, ``VDI_SECRETS_DIR`` (0700), and are 0600 from the moment they exist."""

from __future__ import annotations

import os
from pathlib import Path


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only from creation on."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # an older file may have had wider modes
