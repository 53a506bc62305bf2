"""The worker's snapshot steps: take, revert to, delete (``vdi.actions`` SNAPSHOT, REVERT,
DELETE_SNAPSHOT), and what a reset leaves to remove.

The snapshot's row (``vdi.services.snapshots``) exists before the step runs, in the state
``creating`` or ``deleting``; the step makes the files agree and then the row. A failed take
removes what it made; a crash leaves the row for the reconciler to settle against the files
(``settle``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from vdi.choices import DesktopStatus, SnapshotKind, SnapshotStatus
from vdi.hypervisor import HypervisorError, PowerState
from vdi.hypervisor.snapshots import allocated, disk_tags
from vdi.models import Desktop, Snapshot
from vdi.worker import operations
from vdi.worker.faults import crash_point
from vdi.worker.hosts import driver_for
from vdi.worker.jobs import FAILURE_CLEANUPS, StepRefused, record_endpoint, step, uses_agent

log = logging.getLogger(__name__)
THAW_TRIES = 20


def _snapshot_id(operation_id: int) -> int:
    return int(operations.params(operation_id).get("snapshot") or 0)


def _snapshot_of(operation_id: int) -> Snapshot:
    snapshot_id = _snapshot_id(operation_id)
    snapshot = Snapshot.objects.filter(pk=snapshot_id).first()
    if snapshot is None:
        raise StepRefused("The snapshot is gone.", f"no snapshot {snapshot_id}")
    return snapshot


def disks_of(desktop: Desktop, with_data_disk: bool) -> tuple[Path, ...]:
    disks = [Path(desktop.disk_path)]
    if with_data_disk and desktop.data_disk_path:
        disks.append(Path(desktop.data_disk_path))
    return tuple(disks)


@step("snapshot")
def _take(desktop: Desktop, operation_id: int) -> None:
    snapshot = _snapshot_of(operation_id)
    driver = driver_for(desktop.host)
    disks = disks_of(desktop, snapshot.with_data_disk)
    before = sum(allocated(d) for d in disks)
    operations.progress(operation_id, 20, f"taking the snapshot {snapshot.name}")
    crash_point("snapshot")
    if snapshot.kind == SnapshotKind.LIVE:
        frozen = _freeze(desktop)
        try:
            driver.snapshots.take_live(desktop.domain_name, snapshot.tag, snapshot.description)
        finally:
            if frozen:
                _thaw(desktop)
        memory = disk_tags(disks[0]).get(snapshot.tag, 0)
    else:
        driver.snapshots.take_offline(disks, snapshot.tag)
        memory, frozen = 0, False
    size = max(0, sum(allocated(d) for d in disks) - before) + memory
    with transaction.atomic():
        Snapshot.objects.filter(desktop=desktop, current=True).update(current=False)
        Snapshot.objects.filter(pk=snapshot.pk).update(
            status=SnapshotStatus.READY, current=True, size_bytes=size, frozen=frozen)


def _forget_take(desktop: Desktop, operation_id: int) -> None:
    """A take that failed: whatever it made goes, and so does its row."""
    snapshot = Snapshot.objects.filter(pk=_snapshot_id(operation_id)).first()
    if snapshot is None:
        return
    try:
        _remove_files(desktop, snapshot)
    except HypervisorError as exc:
        log.error("could not remove the failed snapshot %s: %s", snapshot.tag, exc)
        return  # the reconciler settles it later
    snapshot.delete()


FAILURE_CLEANUPS["snapshot"] = _forget_take


@step("revert")
def _revert(desktop: Desktop, operation_id: int) -> DesktopStatus:
    snapshot = _snapshot_of(operation_id)
    driver = driver_for(desktop.host)
    record_endpoint(desktop.pk, None)
    operations.progress(operation_id, 30, f"going back to {snapshot.name}")
    crash_point("revert")
    # QEMU won't go back with active dirty bitmaps; the next backup is then a full one
    driver.backups.drop_checkpoints(desktop.domain_name, disks_of(desktop, True))
    Desktop.objects.filter(pk=desktop.pk).update(backup_chain_broken=True)
    if snapshot.kind == SnapshotKind.LIVE:
        driver.snapshots.revert_live(desktop.domain_name, snapshot.tag)
        ends = DesktopStatus.RUNNING
    else:
        driver.power_off(desktop.domain_name)  # the confirmation said so
        driver.snapshots.revert_offline(disks_of(desktop, snapshot.with_data_disk),
                                        snapshot.tag)
        ends = DesktopStatus.STOPPED
    with transaction.atomic():
        Snapshot.objects.filter(desktop=desktop, current=True).update(current=False)
        Snapshot.objects.filter(pk=snapshot.pk).update(current=True)
    if ends == DesktopStatus.RUNNING:
        _resumed(desktop, frozen=snapshot.frozen)
    return ends


def _resumed(desktop: Desktop, frozen: bool) -> None:
    """A live revert: the guest runs on from its saved memory, as ready as it was then."""
    driver = driver_for(desktop.host)
    if driver.state(desktop.domain_name) != PowerState.RUNNING:
        raise HypervisorError(f"{desktop.domain_name} is not running after the revert")
    record_endpoint(desktop.pk, driver.vnc_endpoint(desktop.domain_name))
    if frozen:
        _thaw(desktop)
    Desktop.objects.filter(pk=desktop.pk).update(guest_ready_at=timezone.now())


@step("unsnapshot")
def _delete(desktop: Desktop, operation_id: int) -> None:
    snapshot = _snapshot_of(operation_id)
    if snapshot.kind == SnapshotKind.OFFLINE and \
            driver_for(desktop.host).state(desktop.domain_name) == PowerState.RUNNING:
        raise StepRefused("Stop the desktop to delete a snapshot taken while it was stopped.",
                          "offline snapshot of a running domain")
    operations.progress(operation_id, 30, f"deleting the snapshot {snapshot.name}")
    crash_point("unsnapshot")
    _remove_files(desktop, snapshot)
    forget(snapshot)


def _remove_files(desktop: Desktop, snapshot: Snapshot) -> None:
    driver = driver_for(desktop.host)
    if snapshot.kind == SnapshotKind.LIVE:
        driver.snapshots.delete_live(desktop.domain_name, snapshot.tag)
    # a live snapshot's tag is in every disk; libvirt removes it from those of the domain
    driver.snapshots.delete_offline(disks_of(desktop, True), snapshot.tag)


def forget(snapshot: Snapshot) -> None:
    """The row goes; its children hang from its parent, which becomes current if it was."""
    with transaction.atomic():
        Snapshot.objects.filter(parent=snapshot).update(parent=snapshot.parent)
        if snapshot.current and snapshot.parent_id is not None:
            Snapshot.objects.filter(pk=snapshot.parent_id).update(current=True)
        snapshot.delete()


def settle(desktop: Desktop) -> list[str]:
    """After a crash: rows still ``creating`` or ``deleting`` agree with the files again. What
    it did, in words (for the reconciler's findings)."""
    done = []
    driver = driver_for(desktop.host)
    for snapshot in Snapshot.objects.filter(desktop=desktop).exclude(
            status=SnapshotStatus.READY):
        if snapshot.status == SnapshotStatus.CREATING:
            _remove_files(desktop, snapshot)  # half taken: it never became the user's
            snapshot.delete()
            done.append(f"removed the unfinished snapshot {snapshot.name}")
        elif _exists(desktop, snapshot, driver.snapshots.live_tags(desktop.domain_name)):
            Snapshot.objects.filter(pk=snapshot.pk).update(status=SnapshotStatus.READY)
            done.append(f"kept the snapshot {snapshot.name} (its deletion did not happen)")
        else:
            forget(snapshot)
            done.append(f"forgot the deleted snapshot {snapshot.name}")
    return done


def _exists(desktop: Desktop, snapshot: Snapshot, live: set[str]) -> bool:
    if snapshot.kind == SnapshotKind.LIVE:
        return snapshot.tag in live
    return all(snapshot.tag in disk_tags(d) for d in disks_of(desktop, snapshot.with_data_disk))


def _freeze(desktop: Desktop) -> bool:
    """Freeze the guest's file systems through its agent, when it has one that answers."""
    if not uses_agent(desktop):
        return False
    try:
        return driver_for(desktop.host).agent.freeze(desktop.domain_name) > 0
    except HypervisorError as exc:
        log.info("no freeze for %s (%s): the snapshot is taken as it is", desktop, exc)
        return False


def _thaw(desktop: Desktop) -> None:
    """Thaw (after the snapshot, and after a revert to a snapshot taken frozen: its memory
    was saved frozen). The agent may need a moment after a revert."""
    agent = driver_for(desktop.host).agent
    for _ in range(THAW_TRIES):
        try:
            agent.thaw(desktop.domain_name)
            return
        except HypervisorError:
            time.sleep(0.5)
    log.error("could not thaw the file systems of %s", desktop)
