"""Faults on real guests: the worker killed with SIGKILL at each step of provisioning, and
virsh acting behind the portal's back. The reconciler leaves no orphan and no limbo."""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from tests.support import wait_gone, wait_status
from vdi.choices import TRANSITIONAL_STATUSES, DesktopStatus
from vdi.hypervisor import PowerState, get_driver
from vdi.services.desktops import create_desktop, request_action
from vdi.testing.processes import WorkerProcess, wait_for
from vdi.worker.faults import STEPS
from vdi.worker.reconcile import reconcile

pytestmark = [pytest.mark.vm, pytest.mark.django_db(transaction=True)]


def virsh(*args: str) -> None:
    subprocess.run(["virsh", "-c", settings.LIBVIRT_URI, *args], check=True, capture_output=True)


@pytest.fixture
def persistent_pool(tiny_pool):
    tiny_pool.persistence, tiny_pool.max_per_user = "persistent", 10
    tiny_pool.save()
    return tiny_pool


def test_killed_at_every_step_of_provisioning_leaves_nothing_behind(
    persistent_pool, owner, tmp_path, monkeypatch
):
    from vdi.models import UserQuota

    UserQuota.objects.create(user=owner, max_desktops=10, max_vcpus=10, max_memory_mib=99999)
    driver = get_driver(settings.LIBVIRT_URI)
    for step in STEPS:
        monkeypatch.setenv("VDI_CRASH_AT", step)
        worker = WorkerProcess(tmp_path / f"worker-{step}.log")
        worker.start()
        try:
            desktop = create_desktop(owner, persistent_pool)
            assert worker.process is not None
            wait_for(lambda w=worker: w.process.poll() is not None, 120,  # type: ignore[misc]
                     f"the worker to die at {step}")
            assert worker.process.returncode == -signal.SIGKILL
        finally:
            worker.stop()  # one that did not die is not left consuming the queue
        monkeypatch.delenv("VDI_CRASH_AT")
        worker = WorkerProcess(tmp_path / f"worker-{step}-restarted.log")
        worker.start()
        try:
            reconcile(desktop.host,
                      now=timezone.now() + timedelta(seconds=settings.STUCK_AFTER + 1))
        finally:
            worker.stop()
        desktop.refresh_from_db()
        assert desktop.status not in TRANSITIONAL_STATUSES, step
        assert desktop.status == DesktopStatus.ERROR and "stuck" in desktop.error_detail, step
        assert driver.lookup(desktop.domain_name) is None, f"orphan domain after {step}"
        assert not Path(desktop.disk_path).exists(), f"orphan disk after {step}"
        assert not Path(desktop.data_disk_path).exists(), f"orphan data disk after {step}"
    left = [p.name for p in settings.DISK_DIR.glob(f"{settings.DOMAIN_PREFIX}-*")]
    assert left == []
    assert os.environ.get("VDI_CRASH_AT") is None


@pytest.mark.parametrize(("action", "step"), [("start", "boot"), ("reset", "power-off"),
                                             ("delete", "undefine")])
def test_killed_during_start_reset_or_delete_is_repaired(tiny_pool, owner, tmp_path, monkeypatch,
                                                         action, step):
    """Stuck in its transitional state, the desktop becomes an error; the user's next action
    (here: delete) works, and nothing is left."""
    healthy = WorkerProcess(tmp_path / "worker.log")
    healthy.start()
    try:
        desktop = create_desktop(owner, tiny_pool)
        wait_status(desktop, DesktopStatus.RUNNING)
        if action == "start":
            request_action(owner, desktop, "stop")
            wait_status(desktop, DesktopStatus.STOPPED)
    finally:
        healthy.stop()

    monkeypatch.setenv("VDI_CRASH_AT", step)
    doomed = WorkerProcess(tmp_path / f"worker-{step}.log")
    doomed.start()
    try:
        request_action(owner, desktop, action)
        process = doomed.process
        assert process is not None
        wait_for(lambda: process.poll() is not None, 120, f"the worker to die at {step}")
    finally:
        doomed.stop()  # one that did not die is not left consuming the queue
    monkeypatch.delenv("VDI_CRASH_AT")

    restarted = WorkerProcess(tmp_path / "worker-restarted.log")
    restarted.start()
    try:
        reconcile(desktop.host, now=timezone.now() + timedelta(seconds=settings.STUCK_AFTER + 1))
        desktop.refresh_from_db()
        assert desktop.status == DesktopStatus.ERROR and "stuck" in desktop.error_detail
        request_action(owner, desktop, "delete")
        wait_gone(desktop)
    finally:
        restarted.stop()
    assert get_driver(settings.LIBVIRT_URI).lookup(desktop.domain_name) is None
    assert not Path(desktop.disk_path).exists()


def test_virsh_destroy_and_undefine_behind_the_portals_back(worker, tiny_pool, owner):
    desktop = create_desktop(owner, tiny_pool)
    wait_status(desktop, DesktopStatus.RUNNING)
    virsh("destroy", desktop.domain_name)
    reconcile(desktop.host)
    wait_status(desktop, DesktopStatus.STOPPED)
    assert "powered off outside the portal" in desktop.last_error

    request_action(owner, desktop, "start")
    wait_status(desktop, DesktopStatus.RUNNING)
    virsh("destroy", desktop.domain_name)
    virsh("undefine", desktop.domain_name)
    reconcile(desktop.host)
    wait_status(desktop, DesktopStatus.STOPPED)
    assert "undefined outside the portal" in desktop.last_error
    assert Path(desktop.disk_path).exists(), "the desktop's disk is kept"

    request_action(owner, desktop, "start")  # the domain is defined again from the database
    wait_status(desktop, DesktopStatus.RUNNING)
    assert get_driver(settings.LIBVIRT_URI).state(desktop.domain_name) == PowerState.RUNNING
