"""History that does not pin everything forever: old records are purged, retired versions no
desktop uses go with their files, and "in use" means exactly what the foreign keys protect."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.utils import timezone

from tests.support import drain, make_version, purge
from vdi.choices import DesktopStatus, ImageStatus, OperationStatus
from vdi.models import (
    ClaimTiming,
    DeletedDesktop,
    Desktop,
    ImageVersion,
    Operation,
    ReconcileRun,
)
from vdi.services import history
from vdi.services.desktops import create_desktop
from vdi.services.records import FILES_QUEUE
from vdi.worker.files import remove_version_files

NOW = timezone.now()


def deleted_desktop(days_ago: float) -> DeletedDesktop:
    record = DeletedDesktop.objects.create(
        desktop_id=1, name="Old #1", domain_name="vditest-old", pool_name="Old", host_name="h",
        image_version="old v1", created_at=NOW - timedelta(days=days_ago + 1))
    DeletedDesktop.objects.filter(pk=record.pk).update(deleted_at=NOW - timedelta(days=days_ago))
    return record


def operation(days_ago: float, status: str) -> Operation:
    op = Operation.objects.create(kind="start", target="x", status=status)
    Operation.objects.filter(pk=op.pk).update(
        finished_at=None if status == OperationStatus.RUNNING
        else NOW - timedelta(days=days_ago))
    return op


def test_purge_forgets_what_is_older_than_the_retention(settings, host):
    settings.HISTORY_DAYS = 30
    old, recent = deleted_desktop(31), deleted_desktop(29)
    old_op, recent_op = operation(31, OperationStatus.SUCCEEDED), operation(1, "failed")
    running = operation(0, OperationStatus.RUNNING)
    Operation.objects.filter(pk=running.pk).update(created_at=NOW - timedelta(days=40))
    for days in (31, 29):  # the dashboard's claim-to-ready chart
        ClaimTiming.objects.create(desktop_id=1, seconds=2.0, ready_at=NOW - timedelta(days=days))
    quiet = ReconcileRun.objects.create(host=host)
    telling = ReconcileRun.objects.create(host=host, findings=[{"kind": "drift"}])
    ReconcileRun.objects.filter(pk__in=[quiet.pk, telling.pk]).update(
        started_at=NOW - timedelta(days=2))

    done = history.purge(NOW)

    assert done == {"deleted_desktops": 1, "operations": 1, "reconcile_runs": 1,
                    "claim_timings": 1, "recordings": 0, "file_transfers": 0}
    assert ClaimTiming.objects.get().ready_at == NOW - timedelta(days=29)
    assert set(DeletedDesktop.objects.values_list("pk", flat=True)) == {recent.pk}
    assert set(Operation.objects.values_list("pk", flat=True)) == {recent_op.pk, running.pk}
    assert set(ReconcileRun.objects.values_list("pk", flat=True)) == {telling.pk}
    assert old.pk != recent.pk and old_op.pk != recent_op.pk


def test_in_use_is_exactly_what_the_foreign_key_protects(owner, pool, host, image_version):
    desktop = create_desktop(owner, pool)
    assert image_version.in_use()
    with pytest.raises(ValidationError, match="backing file"):
        image_version.delete()
    with pytest.raises(ProtectedError):  # the database says the same
        ImageVersion.objects.filter(pk=image_version.pk).delete()
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.DELETING)
    from vdi import state

    assert state.succeed(desktop.pk, "delete")
    assert not image_version.in_use()
    image_version.delete()  # the archived desktop pins nothing


def test_retired_versions_no_desktop_uses_go_with_their_files(
        owner, pool, host, image_version, django_capture_on_commit_callbacks):
    purge(FILES_QUEUE)
    retired = make_version("unit", "/nonexistent/unit/v2/disk.qcow2",
                           kernel_path="/nonexistent/unit/v2/vmlinuz")
    still_used = make_version("unit", "/nonexistent/unit/v3/disk.qcow2")
    ImageVersion.objects.filter(pk__in=[retired.pk, still_used.pk]).update(
        status=ImageStatus.RETIRED)
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(image_version=still_used)

    with django_capture_on_commit_callbacks(execute=True):
        gone = history.purge_retired_versions()

    assert gone == ["unit v2"]
    assert set(ImageVersion.objects.values_list("pk", flat=True)) == {image_version.pk,
                                                                     still_used.pk}
    assert drain(FILES_QUEUE) == [{"task": "vdi.remove_version_files", "args": [[
        "/nonexistent/unit/v2/disk.qcow2", "/nonexistent/unit/v2/vmlinuz"]]}]


def test_version_files_are_removed_only_under_the_image_folder(settings, tmp_path):
    settings.IMAGE_DIR = tmp_path / "images"
    folder = settings.IMAGE_DIR / "office" / "v1"
    folder.mkdir(parents=True)
    disk, kernel = folder / "disk.qcow2", folder / "vmlinuz"
    disk.write_bytes(b"x")
    kernel.write_bytes(b"k")
    outside = tmp_path / "precious.qcow2"
    outside.write_bytes(b"keep")
    sneaky = settings.IMAGE_DIR / ".." / "precious.qcow2"

    removed = remove_version_files([disk, kernel, sneaky])

    assert removed == [disk, kernel]
    assert not folder.exists(), "the version's empty folder goes too"
    assert (settings.IMAGE_DIR / "office").is_dir()
    assert outside.read_bytes() == b"keep"
    assert Path(sneaky).resolve() == outside
