"""A snapshot, a snapshot's deletion or a backup that fails ends every row it had "being ..."
(a half-taken snapshot goes with what it made, a deletion's snapshot is ready again, an
unfinished backup goes), and the person who asked reads why on the page where they asked, in
their words (operators also read the cause), until they dismiss it or one of its kind
succeeds. Real qcow2 files and libvirt's test driver; the failures are the machine's (a
permission, a full disk) as the worker meets them."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from tests.support import make_version, signed_in
from vdi.choices import DesktopStatus, OperationStatus, SnapshotKind, SnapshotStatus
from vdi.hypervisor import HypervisorError
from vdi.hypervisor import snapshots as qcow2_snapshots
from vdi.hypervisor.backups import Backups
from vdi.hypervisor.disks import create_blank
from vdi.hypervisor.snapshots import Snapshots, disk_tags
from vdi.models import AuditEvent, Backup, Desktop, Host, Operation, Pool, Snapshot
from vdi.services import backups, snapshots
from vdi.worker import jobs

pytestmark = pytest.mark.django_db
TEST_URI = "test:///default"
TAKE_FAILED = "The snapshot could not be taken; an administrator has been told the cause."
# as libvirt reported it on a machine whose backup folder QEMU could not write
BLOCKDEV = ("back up {domain}: internal error: unable to execute QEMU command 'blockdev-add': "
            "Could not open '{path}': Permission denied")


@pytest.fixture
def stopped_desktop(owner, tmp_path: Path, settings) -> Desktop:
    """The owner's stopped persistent desktop, with real system and data disks (qcow2)."""
    settings.BACKUP_DIR = tmp_path / "backups"
    host = Host.objects.create(name=settings.HOST_NAME, libvirt_uri=TEST_URI,
                               domain_type="qemu", storage_dir=str(tmp_path),
                               memory_capacity_mib=4096)
    version = make_version("failures", str(tmp_path / "base.qcow2"))
    pool = Pool.objects.create(name="Kept", image=version.image, memory_mib=128,
                               persistence="persistent")
    pool.users.add(owner)
    system, data = tmp_path / "system.qcow2", tmp_path / "system-data.qcow2"
    for disk in (system, data):
        create_blank(disk, 16 * 1024 * 1024)
    return Desktop.objects.create(
        owner=owner, pool=pool, host=host, image_version=version,
        domain_name="vditest-failures", disk_path=str(system), data_disk_path=str(data),
        serial_log_path=str(tmp_path / "serial.log"), vcpus=1, memory_mib=128,
        status=DesktopStatus.STOPPED)


def run(operation: Operation) -> str:
    assert operation.desktop_id is not None
    return jobs.execute(operation.kind, operation.desktop_id, operation.pk)


def denied_on(path: Path, real: Callable[[list[str], str], str]
              ) -> Callable[[list[str], str], str]:
    """``qemu-img`` as the worker runs it, refused on ``path`` as the kernel refuses it."""
    def qemu_img(args: list[str], what: str) -> str:
        if str(path) in args and args[0] == "snapshot":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(args, what)
    return qemu_img


def page(user: Any, name: str, desktop: Desktop) -> str:
    return signed_in(user).get(reverse(name, args=[desktop.pk])).content.decode()


def test_a_take_that_meets_a_permission_error_leaves_no_row_and_no_snapshot_in_the_disks(
        owner, admin_user, stopped_desktop, monkeypatch):
    system, data = Path(stopped_desktop.disk_path), Path(stopped_desktop.data_disk_path)
    # the system disk takes the snapshot; the data disk is refused
    monkeypatch.setattr(qcow2_snapshots, "_qemu_img", denied_on(data, qcow2_snapshots._qemu_img))
    operation = snapshots.take(owner, stopped_desktop, "before the update")
    tag = Snapshot.objects.get().tag

    assert run(operation) == "failed"

    assert not Snapshot.objects.exists(), "no row left 'being taken'"
    assert tag not in disk_tags(system) and tag not in disk_tags(data), "nothing it made is left"
    stopped_desktop.refresh_from_db()
    assert stopped_desktop.status == DesktopStatus.STOPPED, "back where it was"
    operation.refresh_from_db()
    assert (operation.status, operation.error) == (OperationStatus.FAILED, TAKE_FAILED)
    assert f"permission denied for the service user root on {data}" in operation.detail
    assert "removed the unfinished snapshot before the update" in operation.detail

    mine = page(owner, "desktop-snapshots", stopped_desktop)
    assert TAKE_FAILED in mine and "No snapshots yet." in mine
    assert str(data) not in mine, "the path is the operators' business"
    assert f"on {data}" in page(admin_user, "desktop-snapshots", stopped_desktop)
    part = page(owner, "desktop-snapshots-part", stopped_desktop)
    assert TAKE_FAILED in part and 'id="snapshots-part" data-live' in part


def test_a_take_whose_files_cant_be_removed_still_ends_its_row_and_says_what_is_left(
        owner, stopped_desktop, monkeypatch):
    """The failure as seen on a fresh machine: qemu-img could not read the disks, to take the
    snapshot nor to remove it."""
    system = Path(stopped_desktop.disk_path)
    refused = HypervisorError(f"list the snapshots of {system}: qemu-img: Could not open "
                              f"'{system}': Permission denied")
    real_take = Snapshots.take_offline

    def take_then_fail(self: Snapshots, disks: tuple[Path, ...], tag: str) -> None:
        real_take(self, disks[:1], tag)  # it got as far as the system disk
        raise refused

    def cannot_delete(self: Snapshots, disks: tuple[Path, ...], tag: str) -> None:
        raise refused

    monkeypatch.setattr(Snapshots, "take_offline", take_then_fail)
    monkeypatch.setattr(Snapshots, "delete_offline", cannot_delete)
    operation = snapshots.take(owner, stopped_desktop, "left over")
    tag = Snapshot.objects.get().tag

    assert run(operation) == "failed"

    assert not Snapshot.objects.filter(status=SnapshotStatus.CREATING).exists()
    assert not Snapshot.objects.exists()
    operation.refresh_from_db()
    assert operation.error == TAKE_FAILED
    assert "Permission denied (permission denied: whoever opened the file" in operation.detail
    assert f"its tag {tag} may be left in {system}" in operation.detail
    assert tag in disk_tags(system), "what the detail says is left, is"
    stopped_desktop.refresh_from_db()
    assert stopped_desktop.status == DesktopStatus.STOPPED
    assert TAKE_FAILED in page(owner, "desktop-snapshots", stopped_desktop)


def test_a_failed_deletion_leaves_the_snapshot_ready_until_a_later_one_succeeds(
        owner, stopped_desktop, monkeypatch):
    system = Path(stopped_desktop.disk_path)
    assert run(snapshots.take(owner, stopped_desktop, "keep")) == "done"
    snapshot = Snapshot.objects.get()
    real = qcow2_snapshots._qemu_img
    monkeypatch.setattr(qcow2_snapshots, "_qemu_img", denied_on(system, real))

    assert run(snapshots.delete(owner, snapshot)) == "failed"

    snapshot.refresh_from_db()
    assert snapshot.status == SnapshotStatus.READY, "not 'being deleted' for ever"
    words = "The snapshot could not be deleted; an administrator has been told the cause."
    mine = page(owner, "desktop-snapshots", stopped_desktop)
    assert words in mine and reverse("snapshot-delete", args=[snapshot.pk]) in mine

    monkeypatch.setattr(qcow2_snapshots, "_qemu_img", real)  # the operator fixed it
    assert run(snapshots.delete(owner, snapshot)) == "done"
    assert not Snapshot.objects.exists()
    assert words not in page(owner, "desktop-snapshots", stopped_desktop)


def test_a_deletion_that_fails_half_way_forgets_the_snapshot_and_names_what_is_left(
        owner, stopped_desktop, monkeypatch):
    data = Path(stopped_desktop.data_disk_path)
    assert run(snapshots.take(owner, stopped_desktop, "half")) == "done"
    snapshot = Snapshot.objects.get()
    monkeypatch.setattr(qcow2_snapshots, "_qemu_img", denied_on(data, qcow2_snapshots._qemu_img))

    operation = snapshots.delete(owner, snapshot)
    assert run(operation) == "failed"

    assert not Snapshot.objects.exists(), "gone from the system disk: it can't be reverted to"
    assert snapshot.tag in disk_tags(data)
    operation.refresh_from_db()
    assert f"its tag {snapshot.tag} is still in {data}" in operation.detail


def test_a_failed_backup_leaves_nothing_and_says_so_until_dismissed(
        owner, outsider, stopped_desktop, monkeypatch, settings):
    folder = Path(settings.BACKUP_DIR) / stopped_desktop.domain_name

    def refused(self: Backups, name: str) -> None:
        raise HypervisorError(BLOCKDEV.format(domain=name, path=next(folder.glob("*/vda*"))))

    monkeypatch.setattr("vdi.worker.backups.prepare_host", lambda desktop: None)
    monkeypatch.setattr(Backups, "start_paused", refused)
    operation = backups.back_up(owner, stopped_desktop)

    assert run(operation) == "failed"

    assert not Backup.objects.exists(), "no row left 'being made'"
    assert list(folder.iterdir()) == [], "nor its files"
    stopped_desktop.refresh_from_db()
    assert stopped_desktop.status == DesktopStatus.STOPPED
    assert stopped_desktop.backup_chain_broken, "the next one is full"
    words = "The backup could not be made; an administrator has been told the cause."
    operation.refresh_from_db()
    assert operation.error == words and "blockdev-add" in operation.detail
    mine = page(owner, "desktop-backups", stopped_desktop)
    assert words in mine and "No backups yet." in mine

    dismiss = reverse("backup-failure-dismiss", args=[stopped_desktop.pk, operation.pk])
    assert signed_in(outsider).post(dismiss).status_code == 404
    assert words in page(owner, "desktop-backups", stopped_desktop), "an outsider can't"
    signed_in(owner).post(dismiss)
    assert words not in page(owner, "desktop-backups", stopped_desktop)
    assert AuditEvent.objects.get(action="operation.dismiss").details == {
        "operation": operation.pk, "kind": "backup"}
    # a snapshot's page does not dismiss a backup's failure
    other = reverse("snapshot-failure-dismiss", args=[stopped_desktop.pk, operation.pk])
    assert signed_in(owner).post(other).status_code == 404


def test_an_unexpected_error_in_the_cleanup_still_records_the_failure(
        owner, stopped_desktop, monkeypatch):
    def broken(desktop: Desktop, operation_id: int) -> list[str]:
        raise RuntimeError("cleanup bug")

    monkeypatch.setitem(jobs.FAILURE_CLEANUPS, "backup", broken)
    monkeypatch.setattr("vdi.worker.backups.prepare_host", lambda desktop: None)
    monkeypatch.setattr(Backups, "start_paused", lambda self, name: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device", "/var/lib/backups")))
    operation = backups.back_up(owner, stopped_desktop)

    assert run(operation) == "failed"

    operation.refresh_from_db()
    assert operation.status == OperationStatus.FAILED and operation.finished_at is not None
    assert "no space left on the file system holding /var/lib/backups" in operation.detail
    assert "the cleanup failed: cleanup bug" in operation.detail
    stopped_desktop.refresh_from_db()
    assert stopped_desktop.status == DesktopStatus.STOPPED


def test_a_request_the_queue_never_took_puts_its_snapshot_back(owner, stopped_desktop,
                                                                monkeypatch):
    from vdi.services import desktops

    def unreachable(*args: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr("vdi.services.dispatch.send", unreachable)
    take = snapshots.take(owner, stopped_desktop, "never taken")
    desktops.publish(stopped_desktop.pk, take.pk, take.kind, "q")
    assert not Snapshot.objects.exists(), "the snapshot to take goes"
    assert Desktop.objects.get(pk=stopped_desktop.pk).status == DesktopStatus.STOPPED
    Snapshot.objects.create(desktop=stopped_desktop, name="old", tag="vdi-old",
                            kind=SnapshotKind.OFFLINE, status=SnapshotStatus.READY)
    delete = snapshots.delete(owner, Snapshot.objects.select_related("desktop").get())
    assert Snapshot.objects.get().status == SnapshotStatus.DELETING
    desktops.publish(stopped_desktop.pk, delete.pk, delete.kind, "q")
    assert Snapshot.objects.get().status == SnapshotStatus.READY, "the one to delete is back"


def test_a_later_success_of_the_same_kind_ends_the_failure_on_the_page(owner, stopped_desktop):
    failed = Operation.objects.create(kind="backup", desktop=stopped_desktop, target="x",
                                      status=OperationStatus.FAILED, error="It broke.")
    Operation.objects.filter(pk=failed.pk).update(finished_at=failed.created_at)
    assert "It broke." in page(owner, "desktop-backups", stopped_desktop)
    later = Operation.objects.create(kind="restore", desktop=stopped_desktop, target="x",
                                     status=OperationStatus.SUCCEEDED)
    Operation.objects.filter(pk=later.pk).update(finished_at=later.created_at)
    assert "It broke." in page(owner, "desktop-backups", stopped_desktop), "another kind"
    again = Operation.objects.create(kind="backup", desktop=stopped_desktop, target="x",
                                     status=OperationStatus.SUCCEEDED)
    Operation.objects.filter(pk=again.pk).update(finished_at=again.created_at)
    assert "It broke." not in page(owner, "desktop-backups", stopped_desktop)
