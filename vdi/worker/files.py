"""Removing an image version's files once its row is gone (the image folder is shared by the
hosts; only files under ``VDI_IMAGE_DIR`` are ever touched)."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings

from vdi.hypervisor.files import LocalFiles

log = logging.getLogger(__name__)


def remove_version_files(paths: list[Path]) -> list[Path]:
    """Delete each file (and then its folder, if empty); returns what was removed."""
    root = settings.IMAGE_DIR.resolve()
    files = LocalFiles()
    removed = []
    for path in paths:
        if not path.resolve().is_relative_to(root):
            log.error("refusing to remove %s: it is not under %s", path, root)
            continue
        if files.remove(path):
            removed.append(path)
        folder = path.parent
        if folder != root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return removed
