"""Console recordings: started and finished by the console proxy, replayed by those who may
view them, forgotten (rows and files) after ``VDI_RECORDING_DAYS``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from vdi.models import Desktop, Recording
from vdi.services import audit
from vdi.services.access import Account, User
from vdi.services.errors import AccessDenied

VIEW = "vdi.view_recording"


def start(desktop_id: int, user: User) -> Recording:
    desktop = Desktop.objects.select_related("pool").get(pk=desktop_id)
    folder = Path(settings.RECORDING_DIR) / timezone.now().strftime("%Y-%m")
    return Recording.objects.create(
        desktop=desktop, desktop_name=str(desktop),
        pool_name=desktop.pool.name if desktop.pool else "",
        user=user if isinstance(user, Account) else None,
        path=str(folder / f"{uuid.uuid4().hex}.vdirec"))


def finish(recording_id: int, size_bytes: int, duration_ms: int, truncated: bool) -> None:
    Recording.objects.filter(pk=recording_id).update(
        ended_at=timezone.now(), size_bytes=size_bytes, duration_ms=duration_ms,
        truncated=truncated)


def for_replay(user: User, recording_id: int) -> Recording:
    """The recording, if ``user`` may replay it (``vdi.view_recording``)."""
    if not user.has_perm(VIEW):
        raise AccessDenied("You may not replay console recordings.")
    found = Recording.objects.filter(pk=recording_id, ended_at__isnull=False).first()
    if found is None or not Path(found.path).is_file():
        raise AccessDenied("No such recording (it may have been purged).")
    return found


def purge(now: datetime) -> int:
    """Forget recordings past their retention: files first, then rows."""
    old = Recording.objects.filter(started_at__lt=now - timedelta(days=settings.RECORDING_DAYS))
    for path in old.values_list("path", flat=True):
        Path(path).unlink(missing_ok=True)
    return int(old.delete()[0])



def delete(actor: User, doomed: list[Recording], source_address: str | None = None) -> None:
    """Delete recordings (files, then rows), audited."""
    for recording in doomed:
        Path(recording.path).unlink(missing_ok=True)
        audit.record(actor, "recording.delete", recording, source_address,
                     desktop=recording.desktop_name)
        recording.delete()
