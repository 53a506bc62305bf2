"""Idle and lifetime policies: when a claimed desktop must be given back or stopped.

A desktop is idle when no console is connected to it; its idle clock starts at the later of
the claim and the last console activity. After the pool's ``idle_minutes`` of that, or
``max_session_minutes`` after the claim, a non-persistent desktop is released (reset to the
image) and a persistent one is stopped. ``now`` is a parameter so tests can freeze the clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet

from vdi.choices import DesktopStatus
from vdi.models import Desktop
from vdi.services.desktops import perform
from vdi.services.errors import ServiceError
from vdi.state import TransitionRefused

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Deadline:
    at: datetime
    reason: str  # "idle" or "session"
    action: str  # "release" or "stop"


def with_console_activity(desktops: QuerySet[Desktop], now: datetime) -> QuerySet[Desktop]:
    """Annotate ``open_consoles`` and ``last_console_at`` in the same query."""
    fresh = Q(console_sessions__closed_at__isnull=True,
              console_sessions__last_seen_at__gte=now - timedelta(
                  seconds=settings.CONSOLE_STALE))
    return desktops.annotate(
        open_consoles=Count("console_sessions", filter=fresh, distinct=True),
        last_console_at=Max("console_sessions__last_seen_at"),
    )


def deadline_for(desktop: Desktop, now: datetime) -> Deadline | None:
    """When the pool's policies act on a claimed, running desktop (None: not scheduled).

    ``desktop`` must come from ``with_console_activity``.
    """
    pool = desktop.pool
    if pool is None or desktop.owner_id is None or desktop.assigned_at is None:
        return None  # unclaimed, or an install desktop (no pool policies)
    if desktop.status != DesktopStatus.RUNNING:
        return None
    action = "stop" if pool.is_persistent else "release"
    candidates = []
    if pool.max_session_minutes:
        candidates.append(Deadline(
            desktop.assigned_at + timedelta(minutes=pool.max_session_minutes), "session", action))
    if pool.idle_minutes and not getattr(desktop, "open_consoles", 0):
        last = getattr(desktop, "last_console_at", None)
        start = max(desktop.assigned_at, last) if last else desktop.assigned_at
        candidates.append(Deadline(start + timedelta(minutes=pool.idle_minutes), "idle", action))
    return min(candidates, key=lambda d: d.at) if candidates else None


def due(now: datetime) -> list[tuple[Desktop, Deadline]]:
    claimed = Desktop.objects.filter(
        status=DesktopStatus.RUNNING, owner__isnull=False
    ).filter(Q(pool__idle_minutes__gt=0) | Q(pool__max_session_minutes__gt=0))
    found = []
    for desktop in with_console_activity(claimed.select_related("pool"), now):
        deadline = deadline_for(desktop, now)
        if deadline is not None and deadline.at <= now:
            found.append((desktop, deadline))
    return found


def enforce(now: datetime) -> list[str]:
    """Act on every desktop past its deadline; returns what was done, in words."""
    done = []
    for desktop, deadline in due(now):
        try:
            perform(desktop, deadline.action, None, reason=f"{deadline.reason} policy")
        except (ServiceError, TransitionRefused) as exc:
            log.info("policy on %s skipped: %s", desktop, exc)
            continue
        done.append(f"{deadline.action} {desktop} ({deadline.reason})")
    return done
