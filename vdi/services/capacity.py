"""Warm capacity: keep ``min_ready`` desktops running ahead of demand, never above
``max_size``; trim unassigned surplus. The arithmetic is pure; ``maintain`` applies it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from django.db import transaction

from vdi.choices import DesktopStatus
from vdi.models import Pool
from vdi.services.claims import lock_pool
from vdi.services.desktops import new_desktop, perform
from vdi.services.errors import ServiceError
from vdi.state import TransitionRefused

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    create: int
    remove: int


def plan(total: int, ready: int, pending: int, min_ready: int, max_size: int,
         draining: bool = False) -> Plan:
    """How many desktops to create and how many ready, unassigned ones to remove.

    ``total``: live desktops of the pool; ``ready``: running and unassigned; ``pending``:
    unassigned and on their way (provisioning, resetting).
    """
    if draining:
        return Plan(create=0, remove=ready)
    room = max(0, max_size - total)
    create = max(0, min(min_ready - ready - pending, room))
    surplus = max(ready + pending - min_ready, total - max_size, 0)
    return Plan(create=create, remove=min(ready, surplus))


SETTLED = (DesktopStatus.RUNNING, DesktopStatus.STOPPED, DesktopStatus.ERROR)


def _reset_orphans(pool: Pool) -> int:
    """Non-persistent desktops that lost their user without a reset (an account deleted, a
    crash in the middle of a release) are reset before anyone may have them. A persistent
    one keeps its user's data for an administrator to hand over or delete."""
    if pool.is_persistent:
        return 0
    orphans = pool.desktops.filter(owner__isnull=True, pristine=False, status__in=SETTLED)
    count = 0
    for desktop in orphans.select_related("pool", "host"):
        try:
            perform(desktop, "release", None, reason="left by its user without a reset")
            count += 1
        except (ServiceError, TransitionRefused) as exc:
            log.info("pool %s: orphan %s not reset: %s", pool, desktop, exc)
    return count


def maintain(pool: Pool) -> Plan:
    """Reset orphans, then top the pool up or trim it, once."""
    with transaction.atomic():
        lock_pool(pool)
        pool.refresh_from_db()
        _reset_orphans(pool)
        live = pool.desktops.all()
        unassigned = live.filter(owner__isnull=True)
        ready = list(unassigned.filter(status=DesktopStatus.RUNNING, pristine=True)
                     .order_by("-created_at"))
        pending = unassigned.filter(
            status__in=[DesktopStatus.PROVISIONING, DesktopStatus.STARTING,
                        DesktopStatus.RESETTING]).count()
        steps = plan(live.count(), len(ready), pending, pool.min_ready, pool.max_size,
                     pool.draining or not pool.enabled)
        if steps.create and pool.version_for_new() is None:  # its image is still being built:
            steps = replace(steps, create=0)  # topped up once a version is registered
        for _ in range(steps.create):
            try:
                new_desktop(pool, None, None)
            except ServiceError as exc:
                log.warning("pool %s: can't add a ready desktop: %s", pool, exc)
                break
        for desktop in ready[: steps.remove]:
            perform(desktop, "delete", None, reason="pool trim")
    return steps
