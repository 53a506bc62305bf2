"""Administrators' plain edits of records (hosts, images, pools, quotas, install media): saved
and deleted here, so the audit row and the clean-up of files hold whatever page made the
change (an uploaded ISO goes with its record).

Deleting what desktops still use is refused by the PROTECT foreign keys (the admin lists them
before it asks); an image version's files are removed by a worker once its row is gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import models, transaction

from vdi import task_names
from vdi.models import ImageVersion, InstallMedia
from vdi.services import audit, dispatch
from vdi.services.access import User

FILES_QUEUE = "vdi"  # any worker: image files live in VDI_IMAGE_DIR, shared by the hosts


def save(actor: User, obj: models.Model, *, created: bool, fields: Iterable[str] = (),
         source_address: str | None = None) -> None:
    with transaction.atomic():
        obj.save()
        audit.record(actor, f"{obj._meta.model_name}.{'add' if created else 'change'}", obj,
                     source_address, fields=sorted(fields))


def delete(actor: User | None, objects: Iterable[models.Model],
           source_address: str | None = None) -> int:
    """Delete each object with its audit row; returns how many went."""
    count = 0
    with transaction.atomic():
        for obj in objects:
            audit.record(actor, f"{obj._meta.model_name}.delete", obj, source_address)
            files = version_files(obj) if isinstance(obj, ImageVersion) else ()
            obj.delete()
            if isinstance(obj, InstallMedia) and obj.uploaded:
                transaction.on_commit(partial(remove_uploaded, Path(obj.path)))
            if files:
                transaction.on_commit(partial(
                    dispatch.send, task_names.REMOVE_VERSION_FILES, (list(files),), FILES_QUEUE))
            count += 1
    return count


def remove_uploaded(path: Path) -> None:
    """An uploaded ISO goes with its record (only ever a file in ``VDI_MEDIA_DIR``)."""
    if path.parent.resolve() == settings.MEDIA_DIR.resolve():
        path.unlink(missing_ok=True)


def version_files(version: ImageVersion) -> tuple[str, ...]:
    return tuple(p for p in (version.disk_path, version.kernel_path, version.initrd_path) if p)
