"""Snapshots of a persistent tiny desktop: three levels, a revert to each with the files of
that point read back, a middle one deleted, an offline snapshot without the data disk, a
reset that takes every snapshot with it, and a worker killed during a take and a revert."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from tests.guest import booted, present, wait_serial, write
from tests.support import done, process_ended
from vdi.choices import DesktopStatus, SnapshotKind, SnapshotStatus
from vdi.hypervisor.snapshots import disk_tags
from vdi.images.tiny import READY_MARKER
from vdi.models import Desktop, Snapshot
from vdi.services import snapshots
from vdi.services.desktops import request_action
from vdi.testing.processes import WorkerProcess, wait_for
from vdi.worker.reconcile import reconcile

pytestmark = [pytest.mark.vm, pytest.mark.django_db(transaction=True)]


def take(owner, desktop: Desktop, name: str, **options) -> Snapshot:
    origin = desktop.status
    done(snapshots.take(owner, desktop, name, **options), desktop, origin)
    return Snapshot.objects.get(desktop=desktop, name=name)


def test_three_levels_revert_to_each_then_delete_the_middle_one(worker, persistent_pool, owner):
    desktop = booted(owner, persistent_pool)
    levels = ["one", "two", "three"]
    taken = []
    for name in levels:
        write(desktop, name)
        taken.append(take(owner, desktop, f"after {name}"))
    assert [(n.snapshot.name, n.depth) for n in snapshots.tree(desktop)] == [
        ("after one", 0), ("after two", 1), ("after three", 2)]
    assert all(s.kind == SnapshotKind.LIVE and s.size_bytes > 0 for s in taken)
    write(desktop, "four")  # after the last snapshot: every revert loses it

    for depth, snapshot in enumerate(taken):
        done(snapshots.revert(owner, snapshot), desktop, DesktopStatus.RUNNING)
        files = present(desktop, [*levels, "four"])
        assert files == {name: (i <= depth, i <= depth) for i, name in
                         enumerate([*levels, "four"])}, snapshot.name
    assert Snapshot.objects.get(current=True).name == "after three"

    middle = taken[1]
    done(snapshots.delete(owner, middle), desktop, DesktopStatus.RUNNING)
    assert not Snapshot.objects.filter(pk=middle.pk).exists()
    assert middle.tag not in disk_tags(Path(desktop.disk_path)), "its qcow2 snapshot is gone"
    assert Snapshot.objects.get(name="after three").parent.name == "after one"
    done(snapshots.revert(owner, taken[2]), desktop, DesktopStatus.RUNNING)
    assert present(desktop, levels) == {n: (True, True) for n in levels}


def test_an_offline_snapshot_without_the_data_disk_and_a_reset(worker, persistent_pool, owner):
    desktop = booted(owner, persistent_pool)
    write(desktop, "before")
    done(request_action(owner, desktop, "stop"), desktop, DesktopStatus.STOPPED)
    offline = take(owner, desktop, "system only", with_data_disk=False)
    assert offline.kind == SnapshotKind.OFFLINE and not offline.with_data_disk
    assert offline.tag in disk_tags(Path(desktop.disk_path))
    assert offline.tag not in disk_tags(Path(desktop.data_disk_path))

    done(request_action(owner, desktop, "start"), desktop, DesktopStatus.RUNNING)
    wait_serial(desktop.serial_log_path, READY_MARKER, count=2)
    write(desktop, "after")
    done(snapshots.revert(owner, offline), desktop, DesktopStatus.STOPPED)
    done(request_action(owner, desktop, "start"), desktop, DesktopStatus.RUNNING)
    wait_serial(desktop.serial_log_path, READY_MARKER, count=3)
    assert present(desktop, ["before", "after"]) == {
        "before": (True, True), "after": (False, True)}, "the data disk was left as it was"

    live = take(owner, desktop, "live")
    done(request_action(owner, desktop, "reset"), desktop, DesktopStatus.RUNNING)
    assert not Snapshot.objects.filter(desktop=desktop).exists()
    data = Path(desktop.data_disk_path)
    assert live.tag not in disk_tags(data) and disk_tags(data) == {}, "no orphan snapshot"


def test_a_worker_killed_in_a_take_or_a_revert_leaves_a_clear_state(persistent_pool, owner,
                                                                    tmp_path, monkeypatch):
    healthy = WorkerProcess(tmp_path / "worker.log")
    healthy.start()
    try:
        desktop = booted(owner, persistent_pool)
        kept = take(owner, desktop, "kept")
    finally:
        healthy.stop()
    for crash_at, ask_for in (("snapshot", lambda: snapshots.take(owner, desktop, "doomed")),
                              ("revert", lambda: snapshots.revert(owner, kept))):
        monkeypatch.setenv("VDI_CRASH_AT", crash_at)
        doomed = WorkerProcess(tmp_path / f"worker-{crash_at}.log")
        doomed.start()
        try:
            desktop.refresh_from_db()
            ask_for()
            process = doomed.process
            assert process is not None
            wait_for(process_ended(process), 120, f"the worker to die at {crash_at}")
        finally:
            doomed.stop()  # one that did not die is not left consuming the queue
        monkeypatch.delenv("VDI_CRASH_AT")
        reconcile(desktop.host, now=timezone.now() + timedelta(seconds=settings.STUCK_AFTER + 1))
        desktop.refresh_from_db()
        assert desktop.status == DesktopStatus.ERROR and "stuck" in desktop.error_detail
        assert list(Snapshot.objects.values_list("name", "status")) == [
            ("kept", SnapshotStatus.READY)], f"nothing half-made after a crash at {crash_at}"
        assert set(disk_tags(Path(desktop.disk_path))) == {kept.tag}

    restarted = WorkerProcess(tmp_path / "worker-restarted.log")
    restarted.start()
    try:
        done(snapshots.revert(owner, kept), desktop, DesktopStatus.RUNNING)
    finally:
        restarted.stop()
