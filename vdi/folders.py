"""Folders QEMU must traverse (images, disks, logs, media): 0755 whatever the umask.

The services run with umask 077 (their secrets are private), so a plain ``mkdir`` would make
folders QEMU (another user) cannot enter: a guest then fails to open its backing file.
"""

from __future__ import annotations

from pathlib import Path

SHARED = 0o755


def shared_folder(path: Path) -> Path:
    """Create ``path`` and any missing parents, each new one 0755; return it."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        folder.chmod(SHARED)
    return path
