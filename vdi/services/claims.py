"""Claiming a desktop from a pool (giving it back is the action "release" of ``vdi.actions``).

A claim runs in one transaction that locks the pool row (PostgreSQL) or the database
(SQLite's BEGIN IMMEDIATE), so two users asking for the last free desktop at the same instant
are served one after the other: one gets it, the other a new desktop or "pool is full". The
hand-over itself is also a compare-and-set on ``owner IS NULL``.
"""

from __future__ import annotations

import time
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from vdi import telemetry
from vdi.choices import DesktopStatus
from vdi.live import events as live
from vdi.models import ClaimTiming, Desktop, Pool
from vdi.services import access, audit, quotas
from vdi.services.access import Account, User
from vdi.services.desktops import new_desktop
from vdi.services.errors import AccessDenied, ServiceError


class PoolFull(ServiceError):
    pass


class PoolUnavailable(ServiceError):
    pass


def lock_pool(pool: Pool) -> None:
    if connection.vendor == "postgresql":
        Pool.objects.select_for_update().filter(pk=pool.pk).first()


def _take_ready(pool: Pool, user: Account) -> Desktop | None:
    """Hand a running, unassigned, pristine desktop of the pool to ``user`` (compare-and-set).

    Only a desktop the worker reset since its last user is pristine: one that lost its owner any
    other way (the account was deleted, a crash in the middle of a release) is never handed on.
    """
    free = {"owner__isnull": True, "status": DesktopStatus.RUNNING, "pristine": True}
    for desktop in pool.desktops.filter(**free).order_by("created_at")[:5]:
        taken = Desktop.objects.filter(pk=desktop.pk, **free).update(
            owner=user, assigned_at=timezone.now(), pristine=False)
        if taken == 1:
            live.desktop_changed(desktop.pk)
            desktop.refresh_from_db()
            return desktop
    return None


def claim_desktop(user: User, pool: Pool, source_address: str | None = None) -> Desktop:
    """A desktop of ``pool`` for ``user``: a ready one if there is one (no boot to wait for),
    else a new one while the pool has room, else PoolFull."""
    if not isinstance(user, Account) or not access.can_use_pool(user, pool):
        raise AccessDenied(f"You may not use the pool {pool.name}.")
    if pool.draining:
        raise PoolUnavailable(f"{pool.name} is being drained: it takes no new claims.")
    started = time.time()
    with transaction.atomic():
        lock_pool(pool)
        quotas.check_room(user, pool)
        desktop = _take_ready(pool, user)
        if desktop is not None:
            audit.record(user, "desktop.claim", desktop, source_address, pool=pool.name,
                         warm=True)
            _measure(desktop, pool, started, warm=True)
            return desktop
        if pool.desktops.all().count() >= pool.max_size:
            raise PoolFull(f"{pool.name} is full: all {pool.max_size} desktops are in use. "
                           "Try again later.")
        desktop = new_desktop(pool, user, user, source_address)
        audit.record(user, "desktop.claim", desktop, source_address, pool=pool.name, warm=False)
        _measure(desktop, pool, started, warm=False)
        return desktop


def _measure(desktop: Desktop, pool: Pool, started: float, warm: bool) -> None:
    """Count the claim and time it to its guest's readiness (metrics), once it is committed:
    at once when a warm desktop's guest is already ready, else when the worker sees it ready
    (``vdi.worker.guests``)."""
    ready = warm and desktop.guest_ready_at is not None

    def record() -> None:
        telemetry.inc("claims_total", {"pool": pool.name, "warm": str(warm).lower()})
        telemetry.claim_started(desktop.pk, pool.name, started)
        if ready:
            now = timezone.now()
            timed(desktop, telemetry.claim_ready(desktop.pk, now.timestamp()), now)

    transaction.on_commit(record)


def timed(desktop: Desktop, seconds: float | None, ready_at: datetime) -> None:
    """Keep how long the claim of ``desktop`` took to be ready (the dashboard's chart), when
    a claim was waiting for it (``seconds`` from ``telemetry.claim_ready``)."""
    if seconds is not None:
        ClaimTiming.objects.create(pool_id=desktop.pool_id, desktop_id=desktop.pk,
                                   seconds=seconds, ready_at=ready_at)
