"""The production wiring, run for real: beat's schedule through a real worker, a Celery retry
with backoff after a transient hypervisor error, and a libvirtd that stops and comes back in
the middle of a provisioning (on a namespaced test host, not the machine's own libvirtd)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from tests.support import signed_in, wait_for, wait_gone, wait_status
from tests.vm_fixtures import hvhost
from vdi.choices import DesktopStatus
from vdi.models import (
    ConsoleTicket,
    DeletedDesktop,
    Desktop,
    Host,
    Operation,
    Pool,
    ReconcileRun,
)
from vdi.services.desktops import create_desktop, request_action
from vdi.testing.processes import BeatProcess, WorkerProcess

pytestmark = [pytest.mark.vm, pytest.mark.django_db(transaction=True)]
SHORT_INTERVALS = {"VDI_POLICY_INTERVAL": "5", "VDI_RECONCILE_INTERVAL": "5",
                   "VDI_TICKET_PURGE_INTERVAL": "5", "VDI_HISTORY_INTERVAL": "5"}


def test_beat_runs_every_periodic_job_through_a_real_worker(worker, tiny_pool, owner, tmp_path):
    pool = Pool.objects.get(pk=tiny_pool.pk)
    pool.assignment, pool.min_ready, pool.idle_minutes = "automatic", 1, 1
    pool.save()
    forgotten = DeletedDesktop.objects.create(
        desktop_id=99999, name="Old #1", domain_name="vditest-old", pool_name="Old",
        host_name="test", image_version="tiny v0", created_at=timezone.now())
    DeletedDesktop.objects.filter(pk=forgotten.pk).update(
        deleted_at=timezone.now() - timedelta(days=settings.HISTORY_DAYS + 1))
    beat = BeatProcess(tmp_path / "beat.log", env=SHORT_INTERVALS)
    beat.start()
    try:
        # maintain_pools: the warm desktop is made and boots
        warm = wait_for(lambda: Desktop.objects.filter(pool=pool, owner__isnull=True).first(),
                        30, "beat to top the pool up")
        wait_status(warm, DesktopStatus.RUNNING)
        # reconcile_hosts -> reconcile_host on the host's own queue
        wait_for(lambda: ReconcileRun.objects.filter(host=warm.host).exists(), 30,
                 "a reconciler run of the test host")
        # a claim left idle past the pool's policy is released by enforce_policies
        ticket = ConsoleTicket.objects.create(  # used long ago: only the purge removes it
            token_hash="0" * 64, user=owner, session_hash="x", desktop=warm,
            expires_at=timezone.now() - timedelta(hours=1), used_at=timezone.now())
        Desktop.objects.filter(pk=warm.pk).update(
            owner=owner, assigned_at=timezone.now() - timedelta(minutes=5))
        wait_for(lambda: Desktop.objects.get(pk=warm.pk).owner_id is None, 30,
                 "the idle policy to release the desktop")
        wait_status(warm, DesktopStatus.RUNNING)
        assert Operation.objects.filter(desktop=warm, kind="release").exists()
        # purge_console_tickets and purge_history
        wait_for(lambda: not ConsoleTicket.objects.filter(pk=ticket.pk).exists(), 30,
                 "the expired ticket to be purged")
        wait_for(lambda: not DeletedDesktop.objects.filter(pk=forgotten.pk).exists(), 30,
                 "old history to be purged")
    finally:
        beat.stop()
        pool.min_ready = 0
        pool.save()


def test_a_transient_hypervisor_error_is_retried_by_celery_with_backoff(
        tiny_pool, owner, tmp_path):
    marker = Path(settings.DATA_DIR) / "run" / "failed-once"  # the worker's user writes it
    marker.unlink(missing_ok=True)
    worker = WorkerProcess(tmp_path / "worker.log", env={
        "VDI_FAIL_ONCE_AT": "define", "VDI_FAIL_ONCE_MARKER": str(marker)})
    worker.start()
    try:
        desktop = create_desktop(owner, tiny_pool)
        wait_status(desktop, DesktopStatus.RUNNING)
        assert marker.exists(), "the first attempt failed at define"
        operation = Operation.objects.get(desktop=desktop, kind="provision")
        assert operation.attempts == 2
        assert "injected transient failure at define" in operation.detail
        assert "Retry in 1s" in worker.log.read_text(), "Celery's own retry, with backoff"
        request_action(owner, desktop, "delete")
        wait_gone(desktop)
    finally:
        worker.stop()


@pytest.fixture
def outage_host(transactional_db: None, tiny_version) -> Iterator[Host]:
    """A hypervisor host of its own (libvirtd in namespaces), the only one enabled."""
    uri = hvhost("start", "outage")
    Host.objects.update(enabled=False)
    host = Host.objects.create(name="outage", libvirt_uri=uri, domain_type="qemu",
                               storage_dir=str(settings.DISK_DIR), memory_capacity_mib=4096)
    try:
        yield host
    finally:
        hvhost("stop", "outage")


def test_libvirtd_stopped_and_restarted_during_a_provisioning_ends_running(
        outage_host, tiny_pool, owner, tmp_path):
    worker = WorkerProcess(tmp_path / "worker.log", hosts=(outage_host.name,))
    worker.start()
    try:
        hvhost("daemon-stop", "outage")
        desktop = create_desktop(owner, tiny_pool)
        assert desktop.host == outage_host
        operation = Operation.objects.get(desktop=desktop)
        wait_for(lambda: Operation.objects.get(pk=operation.pk).step.startswith(
            "Waiting for its host outage"), 60, "the provisioning to wait for its host")
        rows = signed_in(owner).get("/desktops/rows/").content.decode()
        assert "Waiting for its host outage to come back" in rows, "the user is told, in words"
        assert "libvirt-sock" not in rows, "the raw detail is for operators"
        assert status_of_desktop(desktop) == DesktopStatus.PROVISIONING

        hvhost("daemon-start", "outage")
        wait_status(desktop, DesktopStatus.RUNNING, timeout=180)
        operation.refresh_from_db()
        assert operation.attempts >= 2 and operation.waiting_since is not None
        assert "libvirt-sock" in operation.detail
        request_action(owner, desktop, "delete")
        wait_gone(desktop)
        assert not Path(desktop.disk_path).exists()
    finally:
        worker.stop()


def status_of_desktop(desktop: Desktop) -> str:
    return Desktop.objects.get(pk=desktop.pk).status
