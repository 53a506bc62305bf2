"""The snapshot and backup pages of a persistent desktop: what they show, and what their
forms ask the services for (the worker's side runs on real guests in tests/integration)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.support import signed_in
from vdi.choices import BackupKind, BackupStatus, SnapshotKind, SnapshotStatus
from vdi.models import Backup, Desktop, FileTransfer, Operation, Snapshot

pytestmark = pytest.mark.django_db


def test_the_desktop_list_links_a_persistent_desktops_pages(owner, persistent_desktop):
    page = signed_in(owner).get(reverse("desktop-list")).content.decode()
    assert reverse("desktop-snapshots", args=[persistent_desktop.pk]) in page
    assert reverse("desktop-backups", args=[persistent_desktop.pk]) in page


def test_taking_a_snapshot_from_its_page(owner, persistent_desktop, empty_queue):
    client = signed_in(owner)
    page = client.get(reverse("desktop-snapshots", args=[persistent_desktop.pk])).content.decode()
    assert "Take a live snapshot" in page
    response = client.post(reverse("snapshot-take", args=[persistent_desktop.pk]),
                           {"name": "before", "with_data_disk": "on"})
    assert response.status_code == 302
    snapshot = Snapshot.objects.get()
    assert (snapshot.name, snapshot.kind) == ("before", SnapshotKind.LIVE)
    assert Operation.objects.get().kind == "snapshot"
    Snapshot.objects.filter(pk=snapshot.pk).update(status=SnapshotStatus.READY, current=True)
    persistent_desktop.refresh_from_db()
    Desktop.objects.filter(pk=persistent_desktop.pk).update(status="running")
    page = client.get(reverse("desktop-snapshots", args=[persistent_desktop.pk])).content.decode()
    assert "you are here" in page and reverse("snapshot-revert", args=[snapshot.pk]) in page


def test_a_revert_is_asked_on_a_page_that_says_what_is_lost(owner, persistent_desktop,
                                                           empty_queue):
    snapshot = Snapshot.objects.create(desktop=persistent_desktop, name="before", tag="vdi-b",
                                       kind=SnapshotKind.LIVE, status=SnapshotStatus.READY)
    client = signed_in(owner)
    revert = reverse("snapshot-revert", args=[snapshot.pk])
    listed = client.get(reverse("desktop-snapshots", args=[persistent_desktop.pk]))
    assert f'<a class="button revert" href="{revert}">Revert…</a>' in listed.content.decode()

    page = client.get(revert).content.decode()
    assert "Go back to the snapshot before?" in page and "What will be lost" in page
    assert "on its data disk (/data): your files there" in page
    assert "the programs open now and their unsaved work" in page
    assert "open consoles on it are closed" in page
    assert '<input type="hidden" name="confirm" value="revert">' in page
    assert not Operation.objects.exists(), "reading the page changes nothing"


def test_a_revert_without_its_confirmation_is_refused(owner, persistent_desktop, empty_queue):
    snapshot = Snapshot.objects.create(desktop=persistent_desktop, name="before", tag="vdi-b",
                                       kind=SnapshotKind.LIVE, status=SnapshotStatus.READY)
    client = signed_in(owner)
    revert = reverse("snapshot-revert", args=[snapshot.pk])
    for sent in ({}, {"confirm": ""}, {"confirm": "yes please"}):
        response = client.post(revert, sent)
        assert (response.status_code, response["Location"]) == (302, revert), sent
    assert not Operation.objects.exists()
    assert Desktop.objects.get(pk=persistent_desktop.pk).status == "running"

    response = client.post(revert, {"confirm": "revert"})
    assert response["Location"] == reverse("desktop-snapshots", args=[persistent_desktop.pk])
    assert Operation.objects.get().kind == "revert"
    assert Desktop.objects.get(pk=persistent_desktop.pk).status == "reverting"


def test_the_revert_page_of_an_offline_snapshot_says_the_desktop_is_powered_off(
        owner, persistent_desktop):
    snapshot = Snapshot.objects.create(desktop=persistent_desktop, name="cold", tag="vdi-c",
                                       kind=SnapshotKind.OFFLINE, with_data_disk=False,
                                       status=SnapshotStatus.READY)
    page = signed_in(owner).get(reverse("snapshot-revert", args=[snapshot.pk])).content.decode()
    assert "it is powered off first, without a shut-down, and comes back stopped" in page
    assert "your files there are kept as they are now" in page
    assert "on its data disk (/data)" not in page, "not in this snapshot"


def test_a_snapshot_being_taken_offers_no_revert(owner, persistent_desktop):
    snapshot = Snapshot.objects.create(desktop=persistent_desktop, name="busy", tag="vdi-u",
                                       kind=SnapshotKind.LIVE, status=SnapshotStatus.CREATING)
    page = signed_in(owner).get(reverse("snapshot-revert", args=[snapshot.pk])).content.decode()
    assert "The snapshot busy is being taken." in page
    assert 'name="confirm"' not in page


def test_backing_up_and_restoring_a_file_from_the_page(owner, persistent_desktop, empty_queue):
    client = signed_in(owner)
    assert client.post(reverse("backup-now", args=[persistent_desktop.pk])).status_code == 302
    assert Operation.objects.get().kind == "backup"
    backup = Backup.objects.create(
        desktop=persistent_desktop, desktop_name=str(persistent_desktop),
        host=persistent_desktop.host,
        kind=BackupKind.FULL, checkpoint="cp", folder="/nonexistent", status=BackupStatus.READY,
        files={"vda": {"path": "/x"}, "vdb": {"path": "/y"}})
    response = client.post(reverse("backup-restore-file", args=[backup.pk]),
                           {"path": "../etc/shadow"}, follow=True)
    assert "Give the file&#x27;s path under /data" in response.content.decode()
    assert not FileTransfer.objects.exists()
    client.post(reverse("backup-restore-file", args=[backup.pk]), {"path": "/data/notes.txt"})
    transfer = FileTransfer.objects.get()
    assert transfer.name == "notes.txt" and transfer.direction == FileTransfer.Direction.OUT


def test_outsiders_find_no_pages(outsider, persistent_desktop):
    client = signed_in(outsider)
    for name in ("desktop-snapshots", "desktop-backups", "desktop-snapshots-part",
                 "desktop-backups-part"):
        assert client.get(reverse(name, args=[persistent_desktop.pk])).status_code == 404, name
    snapshot = Snapshot.objects.create(desktop=persistent_desktop, name="mine", tag="vdi-m",
                                       kind=SnapshotKind.LIVE, status=SnapshotStatus.READY)
    assert client.get(reverse("snapshot-revert", args=[snapshot.pk])).status_code == 404
