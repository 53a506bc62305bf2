"""Image rollouts on real guests: a version that does not boot stops at its canary and rolls
back with no desktop lost; a good one rolls out, and a desktop in use stays on the old
version until it is released."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tests.support import make_version, wait_status
from vdi.choices import DesktopStatus, RolloutStatus
from vdi.models import Desktop, ImageVersion, Rollout
from vdi.services import rollouts
from vdi.services.capacity import maintain
from vdi.services.claims import claim_desktop
from vdi.services.desktops import request_action
from vdi.testing.processes import wait_for

pytestmark = [pytest.mark.vm, pytest.mark.django_db(transaction=True)]


def next_version(tiny_version: ImageVersion, name: str, cmdline: str) -> ImageVersion:
    """A new version of the tiny image: an overlay of its disk (a file of its own), booted
    with ``cmdline``."""
    disk = Path(settings.IMAGE_DIR) / f"{name}.qcow2"
    disk.unlink(missing_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    tiny_version.disk_path, str(disk)], check=True)
    disk.chmod(0o644)
    return make_version("tiny", str(disk), kernel_path=tiny_version.kernel_path,
                        initrd_path=tiny_version.initrd_path, cmdline=cmdline)


@pytest.fixture
def warm_pool(tiny_pool):
    tiny_pool.assignment, tiny_pool.min_ready, tiny_pool.max_size = "automatic", 2, 3
    tiny_pool.rollout_canary_percent, tiny_pool.rollout_health_seconds = 50, 90
    tiny_pool.save()
    return tiny_pool


def ready_idle(pool, count: int) -> list[Desktop]:
    maintain(pool)

    def all_ready() -> list[Desktop] | None:
        idle = list(Desktop.objects.filter(pool=pool, owner__isnull=True,
                                           status=DesktopStatus.RUNNING,
                                           guest_ready_at__isnull=False))
        return idle if len(idle) >= count else None

    found: list[Desktop] = wait_for(all_ready, 180, f"{count} idle desktops ready")
    return found


def finish(rollout: Rollout) -> Rollout:
    def settled() -> bool:
        rollouts.advance_all()
        rollout.refresh_from_db()
        return rollout.status in (RolloutStatus.DONE, RolloutStatus.ROLLED_BACK)

    wait_for(settled, 420, "the rollout to finish", every=2)
    return rollout


def test_a_version_that_does_not_boot_rolls_back_at_its_canary(worker, warm_pool,
                                                               tiny_version):
    before = {d.pk for d in ready_idle(warm_pool, 2)}
    broken = next_version(tiny_version, "broken-v2", "root=/dev/vdz rw console=ttyS0 quiet")
    [rollout] = rollouts.version_ready(broken)
    assert rollout.from_version == tiny_version
    finish(rollout)
    assert rollout.status == RolloutStatus.ROLLED_BACK and len(rollout.canaries) == 1
    assert rollout.failed == rollout.canaries
    warm_pool.refresh_from_db()
    assert warm_pool.version_for_new() == tiny_version, "the pool still serves the old one"
    after = ready_idle(warm_pool, 2)
    assert {d.pk for d in after} == before, "no desktop lost"
    assert {d.image_version_id for d in after} == {tiny_version.pk}


def test_a_good_version_rolls_out_and_leaves_desktops_in_use_alone(worker, warm_pool,
                                                                   tiny_version, owner):
    in_use = claim_desktop(owner, warm_pool)
    wait_status(in_use, DesktopStatus.RUNNING)
    ready_idle(warm_pool, 2)
    good = next_version(tiny_version, "good-v2", tiny_version.cmdline)
    [rollout] = rollouts.version_ready(good)
    finish(rollout)
    assert rollout.status == RolloutStatus.DONE, rollout.note
    warm_pool.refresh_from_db()
    assert warm_pool.version_for_new() == good
    in_use.refresh_from_db()
    assert in_use.image_version == tiny_version, "in use: untouched"
    wait_for(lambda: {d.image_version_id for d in ready_idle(warm_pool, 2)} == {good.pk}, 180,
             "every idle desktop on the new version")

    request_action(owner, in_use, "release")
    wait_status(in_use, DesktopStatus.RUNNING)
    in_use.refresh_from_db()
    assert in_use.image_version == good, "released: it moves to the new version"
