"""A new image version from a desktop, on real guests: an administrator opens a maintenance
desktop from the image's current version, changes the system through its console, and
publishes it as the next version (shut down, a standalone copy cleaned by virt-sysprep); the
pool that follows the image rolls it out, canary first, and its canary boots the change."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.guest import ask, serial, wait_serial
from tests.support import as_the_service_wrote_it, wait_for, wait_gone, wait_status
from vdi.choices import DesktopStatus, OperationStatus, RolloutStatus
from vdi.images.registry import VersionFiles, register_version
from vdi.images.tiny import READY_MARKER
from vdi.models import Desktop, ImageVersion, Operation, Pool, Rollout
from vdi.services import rollouts
from vdi.services.capacity import maintain
from vdi.services.desktops import perform
from vdi.services.maintenance import (
    MaintenanceRequest,
    NextVersionRequest,
    open_maintenance_desktop,
    publish_next_version,
)
from vdi.testing.install_iso import installed_system_disk

pytestmark = [pytest.mark.vm, pytest.mark.django_db(transaction=True)]

IMAGE = "maintained"
READY = re.compile(rf"{READY_MARKER} (\S+) machine-id=(\S*)")


def first_version(tiny_files: Any, tmp_path: Path) -> ImageVersion:
    """v1: an installed Debian-looking system (virt-sysprep recognizes it), with a hostname
    and a machine-id of its own, booted with the tiny image's kernel."""
    shutil.rmtree(settings.IMAGE_DIR / IMAGE, ignore_errors=True)  # an earlier run's files
    disk = installed_system_disk(tmp_path / "installed.qcow2", hostname="installed")
    version = register_version(IMAGE, VersionFiles(
        disk, kernel=tiny_files.kernel, initrd=tiny_files.initrd,
        cmdline="root=/dev/vda rw console=ttyS0 quiet", readiness="serial"))
    as_the_service_wrote_it(settings.IMAGE_DIR / IMAGE)  # its worker adds the next versions
    return version


def ready_line(desktop: Desktop) -> tuple[str, str]:
    """What the guest said at its last boot: its hostname and machine-id."""
    wait_serial(desktop.serial_log_path, READY_MARKER, timeout=180)
    found: list[tuple[str, str]] = READY.findall(serial(desktop.serial_log_path))
    assert found, serial(desktop.serial_log_path)[-500:]
    return found[-1]


def idle_ready(pool: Pool) -> Desktop:
    maintain(pool)

    def ready() -> Desktop | None:
        return Desktop.objects.filter(pool=pool, owner__isnull=True, status=DesktopStatus.RUNNING,
                                      guest_ready_at__isnull=False).first()

    found: Desktop = wait_for(ready, 180, "the pool's idle desktop to be ready")
    return found


def test_a_maintenance_desktop_published_as_a_new_version_rolls_out_to_a_pool(
        worker, vm_host, tiny_files, administrator, tmp_path):
    v1 = first_version(tiny_files, tmp_path)
    pool = Pool.objects.create(
        name="Maintained", image=v1.image, vcpus=1, memory_mib=256, assignment="automatic",
        min_ready=1, max_size=1, rollout_canary_percent=100, rollout_health_seconds=120)
    idle = idle_ready(pool)
    assert ready_line(idle) == ("installed", "0123456789abcdef0123456789abcdef")

    maintenance = open_maintenance_desktop(administrator, MaintenanceRequest(
        v1.image, memory_mib=256, vcpus=1))
    wait_status(maintenance, DesktopStatus.RUNNING)
    maintenance.refresh_from_db()
    assert (maintenance.pool, maintenance.image_version) == (None, v1)
    assert ready_line(maintenance)[0] == "installed"
    ask(maintenance, "echo maintained > /etc/hostname; sync; echo CHANGED > /dev/ttyS0",
        "CHANGED")  # typed on its console, as the operator does

    operation = publish_next_version(administrator, Desktop.objects.get(pk=maintenance.pk),
                                     NextVersionRequest("hostname: maintained"))
    wait_for(lambda: Operation.objects.get(pk=operation.pk).status in (
        OperationStatus.SUCCEEDED, OperationStatus.FAILED), 600, "the publish to end")
    operation.refresh_from_db()
    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    v2 = ImageVersion.objects.get(image=v1.image, number=2)
    assert v2.notes == "hostname: maintained" and v2.cmdline == v1.cmdline
    info = subprocess.run(["qemu-img", "info", v2.disk_path], capture_output=True, text=True,
                          check=True).stdout
    assert "backing file" not in info and "file format: qcow2" in info
    assert Desktop.objects.get(pk=maintenance.pk).status == DesktopStatus.STOPPED
    assert not list(settings.IMAGE_DIR.glob(".publish-*")), "no copy left behind"

    rollout = Rollout.objects.get(pool=pool)  # the pool follows the image's latest version
    assert (rollout.from_version, rollout.to_version) == (v1, v2)

    def finished() -> bool:
        rollouts.advance_all()
        rollout.refresh_from_db()
        return rollout.status in (RolloutStatus.DONE, RolloutStatus.ROLLED_BACK)

    wait_for(finished, 420, "the rollout to finish", every=2)
    assert rollout.status == RolloutStatus.DONE, rollout.note
    assert rollout.canaries == [idle.pk] and rollout.failed == []
    pool.refresh_from_db()
    assert pool.version_for_new() == v2
    canary = Desktop.objects.get(pk=idle.pk)
    assert canary.image_version == v2
    assert ready_line(canary) == ("maintained", ""), \
        "the console's change, cleaned for cloning (each clone makes its own machine-id)"

    perform(Desktop.objects.get(pk=maintenance.pk), "delete", None)
    wait_gone(maintenance)
    assert not Path(maintenance.disk_path).exists()
    assert not v1.in_use(), "nothing is made from v1 any more: it may be retired"
