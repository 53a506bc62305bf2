"""A pool's upkeep provisions again, by itself, a desktop whose provisioning failed: after
1, 2 and 4 minutes, then it leaves it in error for a person."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.dashboard_fixtures import desktop, failed
from tests.support import drain
from vdi.choices import DesktopStatus, OperationStatus
from vdi.models import AuditEvent, Operation
from vdi.services.retries import retry_failed_provisions

pytestmark = pytest.mark.usefixtures("empty_queue")


def ago(seconds: int) -> object:
    return timezone.now() - timedelta(seconds=seconds)


def test_a_failed_provisioning_is_tried_again_a_minute_later(
        pool, host, owner, django_capture_on_commit_callbacks):
    broken = desktop(pool, host, status=DesktopStatus.ERROR, owner=owner)
    first = failed(broken, "provision", error="The desktop could not be made.",
                   finished_at=ago(30), params={"seed": "x"})
    assert retry_failed_provisions(pool.pk, timezone.now()) == [], "not before a minute"
    with django_capture_on_commit_callbacks(execute=True):
        again, = retry_failed_provisions(pool.pk, timezone.now() + timedelta(seconds=31))
    broken.refresh_from_db()
    assert broken.status == DesktopStatus.PROVISIONING and broken.owner == owner
    assert (again.kind, again.status, again.params, again.requested_by) == (
        "provision", OperationStatus.QUEUED, {"seed": "x"}, None)
    event = AuditEvent.objects.get(action="desktop.provision")
    assert event.actor is None and event.details["retry_of"] == first.pk
    assert "pool upkeep: try 2" in event.details["reason"]
    assert drain(host.queue) == [
        {"task": "vdi.desktop_action", "args": ["provision", broken.pk, again.pk]}]


def test_later_tries_wait_longer_and_stop_after_three(pool, host):
    broken = desktop(pool, host, status=DesktopStatus.ERROR)
    for _ in range(2):
        failed(broken, "provision", finished_at=ago(100))
    assert retry_failed_provisions(pool.pk, timezone.now()) == [], "2 min after the second"
    failed(broken, "provision", finished_at=ago(100))
    failed(broken, "provision", finished_at=ago(3600))
    assert retry_failed_provisions(pool.pk, timezone.now()) == [], "three tries are enough"
    assert Operation.objects.filter(desktop=broken).count() == 4


def test_a_desktop_in_error_for_another_reason_is_left_to_a_person(pool, host):
    broken = desktop(pool, host, status=DesktopStatus.ERROR)
    failed(broken, "provision", finished_at=ago(3600))
    failed(broken, "stop", finished_at=ago(3600))
    assert retry_failed_provisions(pool.pk, timezone.now()) == []
    broken.refresh_from_db()
    assert broken.status == DesktopStatus.ERROR
