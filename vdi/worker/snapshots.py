"""The worker's snapshot steps: take, revert to, delete (``vdi.actions`` SNAPSHOT, REVERT,
DELETE_SNAPSHOT), and what a reset leaves to remove.

The snapshot's row (``vdi.services.snapshots``) exists before the step runs, in the state
``creating`` or ``deleting``; the step makes the files agree and then the row. A failed take
removes what it made and its row (the row goes even when its files can't be removed: the
operation's detail then names what is left); a failed delete leaves the snapshot ready if it
is still in the disks, forgotten if not. A crash leaves the row for the reconciler to settle
against the files (``settle``), the same way.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from vdi.causes import explain
from vdi.choices import DesktopStatus, Readiness, SnapshotKind, SnapshotStatus
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


def _forget_take(desktop: Desktop, operation_id: int) -> list[str]:
    """A take that failed: whatever it made goes, and so does its row."""
    snapshot = Snapshot.objects.filter(pk=_snapshot_id(operation_id),
                                       status=SnapshotStatus.CREATING).first()
    return [] if snapshot is None else _drop_unfinished(desktop, snapshot)


def _drop_unfinished(desktop: Desktop, snapshot: Snapshot) -> list[str]:
    """A snapshot that was never finished: its files go if they can, its row goes anyway (it
    never became the user's, and a row left ``creating`` would say "being taken" for ever).
    What was done or left, in words for operators."""
    try:
        _remove_files(desktop, snapshot)
    except (HypervisorError, OSError) as exc:
        disks = ", ".join(str(d) for d in disks_of(desktop, True))
        return [f"removed the unfinished snapshot {snapshot.name}'s row, but its tag "
                f"{snapshot.tag} may be left in {disks} ({explain(exc)}); once that is fixed, "
                f"remove it with virsh snapshot-delete or qemu-img snapshot -d {snapshot.tag}"]
    finally:
        snapshot.delete()
    return [f"removed the unfinished snapshot {snapshot.name}"]


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
    Desktop.objects.filter(pk=desktop.pk).update(guest_ready_at=timezone.now(),
                                                 guest_facts=_facts_after_revert(desktop))


def _facts_after_revert(desktop: Desktop) -> dict[str, object]:
    """What the agent of a desktop image says after the revert (its session's user among
    them: files and the keyboard layout go to that user); the agent may need a moment.
    Empty for other images, or an agent that does not answer (its next refresh fills it)."""
    version = desktop.image_version
    if version is None or version.readiness != Readiness.AGENT:
        return {}
    agent = driver_for(desktop.host).agent
    for _ in range(THAW_TRIES):
        try:
            return agent.facts(desktop.domain_name).as_dict()
        except HypervisorError:
            time.sleep(0.5)
    log.warning("no facts from the agent of %s after its revert", desktop)
    return {}


def _end_deletion(desktop: Desktop, operation_id: int) -> list[str]:
    """A delete that failed: the snapshot is ready again (to delete later) if it is still
    there, forgotten if its files went."""
    snapshot = Snapshot.objects.filter(pk=_snapshot_id(operation_id),
                                       status=SnapshotStatus.DELETING).first()
    return [] if snapshot is None else [_settle_deletion(desktop, snapshot)]


FAILURE_CLEANUPS["unsnapshot"] = _end_deletion


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
    for snapshot in Snapshot.objects.filter(desktop=desktop).exclude(
            status=SnapshotStatus.READY):
        if snapshot.status == SnapshotStatus.CREATING:
            done += _drop_unfinished(desktop, snapshot)  # half taken: never the user's
        else:
            done.append(_settle_deletion(desktop, snapshot))
    return done


def _settle_deletion(desktop: Desktop, snapshot: Snapshot) -> str:
    """A row left ``deleting``: ready again if the snapshot is still in the disks (or if that
    can't be read: the user may delete it again), forgotten if it is not."""
    try:
        there = _exists(desktop, snapshot)
        left = [] if there else _tagged(desktop, snapshot)
    except (HypervisorError, OSError) as exc:
        Snapshot.objects.filter(pk=snapshot.pk).update(status=SnapshotStatus.READY)
        return (f"kept the snapshot {snapshot.name} as ready: whether it is still in the disks "
                f"could not be read ({explain(exc)})")
    if there:
        Snapshot.objects.filter(pk=snapshot.pk).update(status=SnapshotStatus.READY)
        return f"kept the snapshot {snapshot.name} (its deletion did not happen)"
    forget(snapshot)
    if left:
        return (f"forgot the snapshot {snapshot.name}: it is gone from some of its disks, so "
                f"it can't be reverted to, but its tag {snapshot.tag} is still in "
                f"{', '.join(left)}; once the cause is fixed, remove it with qemu-img snapshot "
                f"-d {snapshot.tag}")
    return f"forgot the deleted snapshot {snapshot.name}"


def _tagged(desktop: Desktop, snapshot: Snapshot) -> list[str]:
    """The desktop's disk files that still hold the snapshot's tag."""
    return [str(d) for d in disks_of(desktop, True) if d.exists() and snapshot.tag in disk_tags(d)]


def _exists(desktop: Desktop, snapshot: Snapshot) -> bool:
    if snapshot.kind == SnapshotKind.LIVE:
        return snapshot.tag in driver_for(desktop.host).snapshots.live_tags(desktop.domain_name)
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
