"""Backups of persistent desktops: asked for, scheduled, kept, restored.

A pool with ``backup_every_hours`` has its persistent desktops backed up on that schedule
(beat: ``due``); anyone holding ``vdi.backup_desktop`` on a desktop, and its owner, may back it
up now or restore one of its backups in place. What is kept follows the pool's retention:
the last ``backup_keep_last`` backups, the newest of each of the last ``backup_keep_daily`` days
that have one and of each of the last ``backup_keep_weekly`` weeks, and every backup one of
those builds on. The rest is
removed by the worker after each backup (``expired``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max, Q, QuerySet

from vdi import actions, task_names
from vdi.choices import BackupStatus, Persistence
from vdi.models import Backup, Desktop, FileTransfer, Operation
from vdi.services import access, audit, dispatch, quotas
from vdi.services.access import Account, Standing, User
from vdi.services.desktops import new_desktop, perform, request_named_action
from vdi.services.errors import AccessDenied, ServiceError


def visible(user: User) -> QuerySet[Backup]:
    """The backups ``user`` may see and restore: those of the desktops they may back up and,
    of a desktop that is gone, their own (all of them with the permission everywhere), as
    ``restore_as_new`` allows."""
    if not access.active(user):
        return Backup.objects.none()
    if access.holds(user, actions.BACKUP.permission):
        return Backup.objects.all()
    return Backup.objects.filter(
        Q(desktop__in=access.desktops_for(user, actions.BACKUP))
        | Q(desktop__isnull=True, owner_id=user.pk))


def back_up(user: User, desktop: Desktop, source_address: str | None = None) -> Operation:
    return request_named_action(user, desktop, actions.BACKUP, {}, source_address)


def restore(user: User, backup: Backup, source_address: str | None = None) -> Operation:
    if backup.status != BackupStatus.READY or backup.desktop is None:
        raise ServiceError("This backup can't be restored in place (it is not ready, or its "
                           "desktop is gone).")
    return request_named_action(user, backup.desktop, actions.RESTORE, {"backup": backup.pk},
                                source_address, backup=backup.pk)


def restore_as_new(user: User, backup: Backup, source_address: str | None = None) -> Desktop:
    """A new desktop of the backup's pool, for the backup's owner, whose disks are the
    backup's: the old desktop (if it is still there) is left as it is."""
    pool, owner = backup.pool, backup.owner
    if backup.status != BackupStatus.READY or pool is None or owner is None:
        raise ServiceError("This backup can't be restored to a new desktop (it is not ready, "
                           "or its pool or owner is gone).")
    allowed = (access.standing(user, actions.BACKUP, backup.desktop) is not Standing.NONE
               if backup.desktop is not None else
               user == owner or access.holds(user, actions.BACKUP.permission, None))
    if not allowed:
        raise AccessDenied("You may not restore this backup.")
    with transaction.atomic():
        quotas.check_room(owner, pool)
        desktop = new_desktop(pool, owner, user, source_address, params={"backup": backup.pk})
        audit.record(user, "backup.restore_as_new", desktop, source_address, backup=backup.pk)
    return desktop


DATA_PATH = re.compile(r"(?!.*(^|/)\.\.(/|$))[\w .,:()+@=-]+(/[\w .,:()+@=-]+)*")


def restore_file(user: User, backup: Backup, path: str,
                 source_address: str | None = None) -> FileTransfer:
    """One file of a backup's data disk, read by the worker from the backup itself (not
    from the desktop) into the spool, for ``user`` to download like a Files panel download.
    ``path`` is where it was under /data."""
    desktop = backup.desktop
    if desktop is None or access.standing(user, actions.BACKUP, desktop) is Standing.NONE:
        raise AccessDenied("You may not restore files of this backup.")
    if backup.status != BackupStatus.READY or "vdb" not in backup.files:
        raise ServiceError("This backup has no data disk to restore a file from.")
    path = path.strip().removeprefix("/data/").strip("/")
    if not DATA_PATH.fullmatch(path) or len(path) > 400:
        raise ServiceError("Give the file's path under /data, e.g. reports/2026.odt (no '..').")
    with transaction.atomic():
        transfer = FileTransfer.objects.create(
            desktop=desktop, user=user if isinstance(user, Account) else None,
            direction=FileTransfer.Direction.OUT, name=path.rsplit("/", 1)[-1])
        audit.record(user, "backup.restore_file", desktop, source_address, backup=backup.pk,
                     path=path)
        transaction.on_commit(lambda: dispatch.send(
            task_names.RESTORE_FILE, (transfer.pk, backup.pk, path), desktop.host.queue))
    return transfer


def expired(backups: Iterable[Backup], keep_last: int, keep_daily: int,
            keep_weekly: int) -> list[Backup]:
    """Of one desktop's ready backups, those the retention lets go (none that a kept one
    builds on)."""
    ready = sorted((b for b in backups if b.status == BackupStatus.READY),
                   key=lambda b: (b.created_at, b.pk), reverse=True)
    kept: set[int] = set()
    for bucket, count in ((_itself, keep_last), (_day, keep_daily), (_week, keep_weekly)):
        seen: list[object] = []
        for backup in ready:
            key = bucket(backup.created_at)
            if key not in seen and len(seen) < count:
                seen.append(key)
                kept.add(backup.pk)
    by_pk = {b.pk: b for b in ready}
    for pk in list(kept):  # what a kept backup builds on is kept too
        parent = by_pk[pk].parent_id
        while parent is not None and parent in by_pk:
            kept.add(parent)
            parent = by_pk[parent].parent_id
    return [b for b in ready if b.pk not in kept]


def _itself(moment: datetime) -> object:
    return moment


def _day(moment: datetime) -> object:
    return moment.date()


def _week(moment: datetime) -> object:
    return tuple(moment.isocalendar()[:2])


def due(now: datetime) -> list[Desktop]:
    """Persistent desktops whose pool backs them up and whose last backup is older than the
    pool's interval (or who have none)."""
    candidates = (Desktop.objects
                  .filter(pool__persistence=Persistence.PERSISTENT, pool__backup_every_hours__gt=0,
                          status__in=actions.BACKUP.allowed_from)
                  .select_related("pool")
                  .annotate(last=Max("backups__created_at")))
    return [d for d in candidates if d.pool is not None and (
        d.last is None or d.last <= now - timedelta(hours=d.pool.backup_every_hours))]


def schedule(now: datetime) -> list[str]:
    """Beat: ask for the backups that are due (the system asks: no person, audited)."""
    asked = []
    for desktop in due(now):
        if Operation.objects.filter(desktop=desktop, kind=actions.BACKUP.name,
                                    finished_at__isnull=True).exists():
            continue
        try:
            perform(desktop, actions.BACKUP.name, None, params={}, scheduled=True)
        except ServiceError as exc:
            asked.append(f"{desktop}: not backed up ({exc})")
            continue
        asked.append(str(desktop))
    return asked

