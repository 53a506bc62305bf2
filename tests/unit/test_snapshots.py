"""The snapshot service's rules, limits and tree, and the states its actions move through
(no hypervisor: the worker's side is tested on real guests in tests/integration)."""

from __future__ import annotations

import pytest

from vdi import state
from vdi.choices import DesktopStatus, Profile, SnapshotKind, SnapshotStatus
from vdi.models import Desktop, Operation, Snapshot, UserQuota
from vdi.services import snapshots
from vdi.services.errors import AccessDenied, ServiceError
from vdi.services.snapshots import SnapshotLimit

pytestmark = pytest.mark.django_db


def ready(desktop: Desktop, name: str, parent: Snapshot | None = None, size: int = 0,
          current: bool = False) -> Snapshot:
    return Snapshot.objects.create(desktop=desktop, name=name, tag=f"vdi-{name}",
                                   kind=SnapshotKind.LIVE, status=SnapshotStatus.READY,
                                   parent=parent, size_bytes=size, current=current)


def test_a_running_desktop_gets_a_live_snapshot_that_returns_it_to_running(
        owner, persistent_desktop, empty_queue):
    parent = ready(persistent_desktop, "base", current=True)
    operation = snapshots.take(owner, persistent_desktop, "  before the update ", "note")
    snapshot = Snapshot.objects.get(name="before the update")
    assert (snapshot.kind, snapshot.status, snapshot.parent, snapshot.with_data_disk) == (
        SnapshotKind.LIVE, SnapshotStatus.CREATING, parent, True)
    assert operation.kind == "snapshot" and operation.params == {
        "snapshot": snapshot.pk, "origin": "running"}
    persistent_desktop.refresh_from_db()
    assert persistent_desktop.status == DesktopStatus.SNAPSHOTTING
    assert state.succeed(persistent_desktop.pk, "snapshot", DesktopStatus.RUNNING)
    persistent_desktop.refresh_from_db()
    assert persistent_desktop.status == DesktopStatus.RUNNING


def test_a_failed_snapshot_leaves_the_desktop_as_it_was(owner, persistent_desktop, empty_queue):
    Desktop.objects.filter(pk=persistent_desktop.pk).update(status=DesktopStatus.STOPPED)
    snapshots.take(owner, persistent_desktop, "offline", with_data_disk=False)
    snapshot = Snapshot.objects.get()
    assert snapshot.kind == SnapshotKind.OFFLINE and not snapshot.with_data_disk
    assert state.fail(persistent_desktop.pk, "snapshot", "no room", origin=DesktopStatus.STOPPED)
    persistent_desktop.refresh_from_db()
    assert persistent_desktop.status == DesktopStatus.STOPPED
    assert persistent_desktop.last_error == "no room"


@pytest.mark.parametrize(("setup", "words"), [
    ("non-persistent", "Only persistent desktops have snapshots"),
    ("uefi", "UEFI"),
    ("without-data", "Stop the desktop to take a snapshot without the data disk"),
    ("bad-name", "Name the snapshot"),
    ("same-name", "already has a snapshot named"),
    ("busy", "Snapshots are taken of running or stopped desktops"),
    ("vnc-clipboard", "VNC clipboard channel"),
])
def test_refusals_say_why(owner, persistent_desktop, empty_queue, setup, words):
    with_data_disk = True
    name = "fine"
    if setup == "non-persistent":
        persistent_desktop.pool.persistence = "non_persistent"
        persistent_desktop.pool.save()
    elif setup == "uefi":
        version = persistent_desktop.image_version
        version.profile = Profile.WINDOWS
        version.save()
    elif setup == "without-data":
        with_data_disk = False
    elif setup == "bad-name":
        name = "<script>"
    elif setup == "same-name":
        ready(persistent_desktop, "fine")
    elif setup == "vnc-clipboard":
        version = persistent_desktop.image_version
        version.profile = Profile.LINUX_DESKTOP
        version.save()
    elif setup == "busy":
        Desktop.objects.filter(pk=persistent_desktop.pk).update(status=DesktopStatus.RESTARTING)
    with pytest.raises(ServiceError, match=words):
        snapshots.take(owner, persistent_desktop, name, with_data_disk=with_data_disk)
    assert not Operation.objects.exists()
    assert Snapshot.objects.filter(status=SnapshotStatus.CREATING).count() == 0


@pytest.mark.parametrize(("limit", "words"), [
    ("user count", "your limit is 1"),
    ("user space", "of your 1 GiB"),
    ("pool count", "allows 1 snapshot"),
    ("pool space", "of its 1 GiB"),
])
def test_each_limit_refuses_with_its_own_words(owner, persistent_desktop, empty_queue, limit,
                                               words):
    quota = UserQuota.objects.create(user=owner, max_snapshots=10, max_snapshot_gib=10)
    pool = persistent_desktop.pool
    pool.max_snapshots, pool.max_snapshot_gib = 10, 10
    ready(persistent_desktop, "old", size=900 * 1024**2)
    if limit == "user count":
        quota.max_snapshots = 1
    elif limit == "user space":
        quota.max_snapshot_gib = 1
    elif limit == "pool count":
        pool.max_snapshots = 1
    else:
        pool.max_snapshot_gib = 1
    quota.save()
    pool.save()
    with pytest.raises(SnapshotLimit, match=words):
        snapshots.take(owner, persistent_desktop, "one more")


def test_the_tree_lists_parents_before_children(persistent_desktop):
    root = ready(persistent_desktop, "root")
    left = ready(persistent_desktop, "left", parent=root)
    ready(persistent_desktop, "left child", parent=left)
    ready(persistent_desktop, "right", parent=root)
    assert [(n.snapshot.name, n.depth) for n in snapshots.tree(persistent_desktop)] == [
        ("root", 0), ("left", 1), ("left child", 2), ("right", 1)]


def test_an_offline_snapshot_is_deleted_only_while_stopped(owner, persistent_desktop, empty_queue):
    offline = ready(persistent_desktop, "disks")
    Snapshot.objects.filter(pk=offline.pk).update(kind=SnapshotKind.OFFLINE)
    offline.refresh_from_db()
    with pytest.raises(ServiceError, match="Stop the desktop"):
        snapshots.delete(owner, offline)
    Desktop.objects.filter(pk=persistent_desktop.pk).update(status=DesktopStatus.STOPPED)
    offline.refresh_from_db()
    snapshots.delete(owner, offline)
    assert Snapshot.objects.get().status == SnapshotStatus.DELETING
    with pytest.raises(ServiceError, match="is being deleted"):
        snapshots.delete(owner, Snapshot.objects.get())


def test_outsiders_may_not_and_operators_may(owner, outsider, admin_user, persistent_desktop,
                                             empty_queue):
    with pytest.raises(AccessDenied):
        snapshots.take(outsider, persistent_desktop, "theirs")
    assert not Snapshot.objects.exists(), "the row goes with the refusal"
    snapshots.take(admin_user, persistent_desktop, "by the admin")
    assert Snapshot.objects.get().created_by == admin_user
