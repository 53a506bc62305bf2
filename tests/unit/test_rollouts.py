"""Rollout decisions without a hypervisor: the worker's resets are played by updating rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support import make_version
from vdi.choices import DesktopStatus, RolloutStatus, VersionPolicy
from vdi.models import Desktop, Operation, Rollout
from vdi.services import rollouts

pytestmark = pytest.mark.django_db


@pytest.fixture
def idle(pool, host, image_version) -> list[Desktop]:
    pool.rollout_canary_percent, pool.rollout_health_seconds = 50, 60
    pool.save()
    return [Desktop.objects.create(
        pool=pool, host=host, image_version=image_version, domain_name=f"vditest-idle-{i}",
        disk_path=f"/nonexistent/{i}.qcow2", serial_log_path=f"/nonexistent/{i}.log",
        vcpus=1, memory_mib=256, status=DesktopStatus.RUNNING, pristine=True)
        for i in range(4)]


def resets(version) -> set[int | None]:
    return {op.desktop_id for op in Operation.objects.filter(kind="reset")
            if op.params.get("version") == (version.pk if version else None)}


def settle(desktops, version, ready: bool = True) -> None:
    """What the worker does for a reset: the desktop runs again on ``version``."""
    Desktop.objects.filter(pk__in=[d.pk if hasattr(d, "pk") else d for d in desktops]).update(
        status=DesktopStatus.RUNNING, image_version=version,
        guest_ready_at=timezone.now() if ready else None)


def test_healthy_canaries_promote_the_version(pool, idle, image_version, empty_queue):
    new = make_version(pool.image.name, "/nonexistent/v2.qcow2")
    [rollout] = rollouts.version_ready(new)
    assert (rollout.from_version, rollout.status) == (image_version, RolloutStatus.CANARY)
    rollouts.advance(rollout, timezone.now())
    assert len(rollout.canaries) == 2 and resets(new) == set(rollout.canaries)
    assert rollouts.advance(rollout, timezone.now()) == "waiting for the canaries"
    settle(rollout.canaries, new)
    rollouts.advance(rollout, timezone.now())
    rollout.refresh_from_db()
    pool.refresh_from_db()
    assert rollout.status == RolloutStatus.DONE and pool.version_for_new() == new
    assert resets(new) == {d.pk for d in idle}, "the other idle desktops follow"


def test_unready_canaries_roll_back(pool, idle, image_version, empty_queue):
    new = make_version(pool.image.name, "/nonexistent/v2.qcow2")
    [rollout] = rollouts.version_ready(new)
    now = timezone.now()
    rollouts.advance(rollout, now)
    settle(rollout.canaries, new, ready=False)  # it runs, but its guest never says ready
    assert rollouts.advance(rollout, now + timedelta(seconds=30)) == "waiting for the canaries"
    Operation.objects.all().delete()
    rollouts.advance(rollout, now + timedelta(seconds=61))
    rollout.refresh_from_db()
    pool.refresh_from_db()
    assert rollout.status == RolloutStatus.ROLLED_BACK and rollout.failed == rollout.canaries
    assert resets(image_version) == set(rollout.canaries), "the canaries go back"
    assert pool.version_for_new() == image_version


def test_desktops_in_use_are_never_canaries(pool, idle, owner, empty_queue):
    Desktop.objects.filter(pk__in=[d.pk for d in idle]).update(owner=owner, pristine=False)
    new = make_version(pool.image.name, "/nonexistent/v2.qcow2")
    [rollout] = rollouts.version_ready(new)
    rollouts.advance(rollout, timezone.now())
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.DONE and not Operation.objects.exists()
    assert "no idle desktop" in rollout.note


def test_pinned_pools_do_not_roll_out_and_admins_pause_and_roll_back(
        pool, idle, image_version, admin_user, empty_queue):
    pool.version_policy, pool.pinned_version = VersionPolicy.PINNED, image_version
    pool.save()
    assert rollouts.version_ready(make_version(pool.image.name, "/nonexistent/v2.qcow2")) == []
    pool.version_policy = VersionPolicy.LATEST
    pool.save()
    [rollout] = rollouts.version_ready(make_version(pool.image.name, "/nonexistent/v3.qcow2"))
    rollouts.pause(admin_user, rollout)
    assert rollouts.advance_all() == []
    rollout.refresh_from_db()
    rollouts.resume(admin_user, rollout)
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.CANARY
    rollouts.roll_back(admin_user, rollout)
    assert Rollout.objects.get().status == RolloutStatus.ROLLING_BACK
