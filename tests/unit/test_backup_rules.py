"""What backups are kept (newest per day and per week, and whatever a kept one builds on)
and which desktops are due for one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from vdi.choices import BackupKind, BackupStatus, DesktopStatus
from vdi.models import Backup, Desktop
from vdi.services import backups

pytestmark = pytest.mark.django_db
START = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # a Monday


def made(desktop: Desktop, at: datetime, parent: Backup | None = None,
         status: str = BackupStatus.READY) -> Backup:
    backup = Backup.objects.create(
        desktop=desktop, desktop_name=str(desktop), host=desktop.host,
        kind=BackupKind.INCREMENTAL if parent else BackupKind.FULL, parent=parent,
        checkpoint=f"cp-{at:%d%H}", folder=f"/nonexistent/{at:%d%H}", status=status)
    Backup.objects.filter(pk=backup.pk).update(created_at=at)
    backup.refresh_from_db()
    return backup


def test_retention_keeps_the_newest_per_day_and_week_and_what_they_build_on(running_desktop):
    # a full backup each Monday, then two incremental ones a day (a chain per week)
    every: list[Backup] = []
    for week in range(3):
        full = made(running_desktop, START + timedelta(weeks=week))
        every.append(full)
        parent = full
        for day in range(1, 7):
            for hour in (8, 20):
                parent = made(running_desktop, START + timedelta(weeks=week, days=day,
                                                                 hours=hour), parent)
                every.append(parent)
    gone = backups.expired(Backup.objects.filter(desktop=running_desktop), keep_last=1,
                           keep_daily=2, keep_weekly=2)
    kept = [b for b in every if b not in gone]
    newest = every[-1]
    assert newest in kept and every[-3] in kept, "the newest of each of the last 2 days"
    last_week_end = every[-14]  # the newest of the week before
    assert last_week_end in kept, "the newest of each of the last 2 weeks"
    for backup in kept:  # nothing kept lacks what it builds on
        ancestor = backup.parent
        while ancestor is not None:
            assert ancestor in kept, (backup, ancestor)
            ancestor = ancestor.parent
    assert every[0] in gone and all(b in gone for b in every[:13]), "the first week goes whole"
    assert len(kept) == 26, "two weeks of chains, whole: the kept ones build on all of them"


def test_unfinished_backups_are_never_expired(running_desktop):
    made(running_desktop, START)
    running = made(running_desktop, START + timedelta(days=3), status=BackupStatus.RUNNING)
    assert running not in backups.expired(Backup.objects.all(), 1, 1, 1)


def test_the_last_few_are_kept_whatever_their_day(running_desktop):
    at = START + timedelta(days=3)
    full = made(running_desktop, at)
    same_day = [full] + [made(running_desktop, at + timedelta(minutes=m)) for m in (1, 2, 3)]
    gone = backups.expired(Backup.objects.all(), keep_last=2, keep_daily=1, keep_weekly=1)
    assert gone == [same_day[1], full], "the two newest stay; the rest of that day goes"


def test_desktops_are_due_by_their_pools_interval(running_desktop):
    pool = running_desktop.pool
    pool.persistence, pool.backup_every_hours = "persistent", 24
    pool.save()
    now = timezone.now()
    assert backups.due(now) == [running_desktop], "never backed up"
    made(running_desktop, now - timedelta(hours=23))
    assert backups.due(now) == []
    assert backups.due(now + timedelta(hours=2)) == [running_desktop]
    Desktop.objects.filter(pk=running_desktop.pk).update(status=DesktopStatus.STARTING)
    assert backups.due(now + timedelta(hours=2)) == [], "busy desktops wait"
    pool.backup_every_hours = 0
    pool.save()
    Desktop.objects.filter(pk=running_desktop.pk).update(status=DesktopStatus.RUNNING)
    assert backups.due(now + timedelta(days=9)) == [], "no schedule"
