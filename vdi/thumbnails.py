"""Where the dashboard's thumbnails of desktops' screens are kept: one JPEG per desktop,
named after its domain, in ``VDI_THUMBNAIL_DIR``. The workers write them
(``vdi.worker.thumbnails``); the portal serves them to those who may see the screen
(``vdi.services.dashboard``). Nothing here talks to a hypervisor."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

SUFFIX = ".jpg"


def path_for(domain_name: str) -> Path:
    return Path(settings.THUMBNAIL_DIR) / f"{domain_name}{SUFFIX}"


def taken_at(domain_name: str) -> datetime | None:
    """When the desktop's thumbnail was taken, or None when it has none."""
    try:
        stamp = path_for(domain_name).stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(stamp, tz=UTC)


def store(domain_name: str, jpeg: bytes) -> Path:
    """Write the thumbnail whole or not at all (a reader never sees half a file)."""
    folder = Path(settings.THUMBNAIL_DIR)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = path_for(domain_name)
    partial = final.with_name(f".{final.name}.{os.getpid()}.part")
    partial.write_bytes(jpeg)
    partial.chmod(0o600)
    os.replace(partial, final)
    return final


def stored() -> list[Path]:
    """Every thumbnail on record (for pruning)."""
    folder = Path(settings.THUMBNAIL_DIR)
    return sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []
