"""Idle and session-length policies, with a frozen clock (``now`` passed in)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from vdi.choices import DesktopStatus
from vdi.models import ConsoleSession, Desktop, Pool
from vdi.services.claims import claim_desktop
from vdi.services.policies import deadline_for, due, enforce, with_console_activity

T0 = timezone.now().replace(microsecond=0)

pytestmark = pytest.mark.usefixtures("empty_queue")


@pytest.fixture
def claimed(owner, pool: Pool) -> Desktop:
    pool.idle_minutes, pool.max_session_minutes = 10, 60
    pool.save()
    desktop = claim_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING, assigned_at=T0)
    return desktop


def deadline(desktop: Desktop, now):
    annotated = with_console_activity(Desktop.objects.filter(pk=desktop.pk), now).get()
    return deadline_for(annotated, now)


def test_idle_clock_starts_at_the_claim(claimed):
    found = deadline(claimed, T0 + timedelta(minutes=1))
    assert (found.reason, found.action, found.at) == ("idle", "release", T0 + timedelta(minutes=10))
    assert due(T0 + timedelta(minutes=9)) == []
    assert [d.pk for d, _ in due(T0 + timedelta(minutes=10))] == [claimed.pk]


def test_an_open_console_stops_the_idle_clock(claimed):
    ConsoleSession.objects.create(desktop=claimed, user=claimed.owner)
    ConsoleSession.objects.update(last_seen_at=T0 + timedelta(minutes=30))
    now = T0 + timedelta(minutes=31)
    found = deadline(claimed, now)
    assert (found.reason, found.at) == ("session", T0 + timedelta(minutes=60))


def test_the_idle_clock_restarts_when_the_console_closes(claimed):
    ConsoleSession.objects.create(desktop=claimed, user=claimed.owner)
    ConsoleSession.objects.update(last_seen_at=T0 + timedelta(minutes=20),
                                  closed_at=T0 + timedelta(minutes=20))
    assert deadline(claimed, T0 + timedelta(minutes=21)).at == T0 + timedelta(minutes=30)


def test_a_console_whose_proxy_died_stops_counting(claimed):
    ConsoleSession.objects.create(desktop=claimed, user=claimed.owner)
    ConsoleSession.objects.update(last_seen_at=T0 + timedelta(minutes=5))  # never closed
    found = deadline(claimed, T0 + timedelta(minutes=20))
    assert (found.reason, found.at) == ("idle", T0 + timedelta(minutes=15))


def test_session_limit_applies_even_with_a_console(claimed):
    ConsoleSession.objects.create(desktop=claimed, user=claimed.owner)
    ConsoleSession.objects.update(last_seen_at=T0 + timedelta(minutes=60))
    assert [dl.reason for _, dl in due(T0 + timedelta(minutes=60))] == ["session"]


def test_enforce_releases_non_persistent_and_stops_persistent(claimed, pool):
    done = enforce(T0 + timedelta(minutes=11))
    claimed.refresh_from_db()
    assert claimed.status == DesktopStatus.RESETTING and claimed.owner is None
    assert done == [f"release {claimed} (idle)"]

    pool.persistence = "persistent"
    pool.save()
    Desktop.objects.filter(pk=claimed.pk).update(status=DesktopStatus.RUNNING,
                                                 owner=pool.users.first(), assigned_at=T0)
    enforce(T0 + timedelta(minutes=11))
    claimed.refresh_from_db()
    assert claimed.status == DesktopStatus.STOPPING and claimed.owner is not None


def test_no_policy_no_deadline(owner, pool):
    desktop = claim_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING, assigned_at=T0)
    assert deadline(desktop, T0 + timedelta(days=30)) is None
