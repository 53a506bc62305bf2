"""The role matrix, the portal's other pages: settings, recordings, the Files panel's
endpoints, snapshots (take, revert and its confirmation page, delete), backups (now, restore,
restore to a new desktop, restore a file) and the older "new desktop" form, for every persona
(``tests/roles.py``).

Each persona gets exactly its status. A refused call reaches no hypervisor driver, enqueues
nothing and changes nothing; an allowed call takes effect (the row, the task on the host's
queue, the bytes served).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpResponseBase
from django.test import Client
from django.utils import timezone

from tests.roles import EVERYONE, OK, PERSONAS, admin_page, client_for, only, outcome, user_of
from tests.support import drain, purge
from vdi import task_names
from vdi.choices import (
    BackupKind,
    BackupStatus,
    DesktopStatus,
    Readiness,
    SnapshotKind,
    SnapshotStatus,
)
from vdi.models import AuditEvent, Backup, Desktop, FileTransfer, Recording, Snapshot

pytestmark = pytest.mark.django_db

RECORDED = b"RFB 003.008\n...a recorded console"
DOWNLOADED = b"the report"


@dataclass
class World:
    """The owner's persistent desktop with a session agent, and what the pages act on."""

    desktop: Desktop
    snapshot: Snapshot
    backup: Backup
    recording: Recording
    download: FileTransfer
    user: Any = None  # the persona asking (None: anonymous)

    def queue(self) -> str:
        return self.desktop.host.queue

    def now(self) -> Desktop:
        return Desktop.objects.get(pk=self.desktop.pk)


@pytest.fixture
def world(owner: Any, persistent_desktop: Desktop, settings: Any, tmp_path: Path) -> World:
    settings.SPOOL_DIR = tmp_path / "spool"
    version = persistent_desktop.image_version
    assert version is not None
    version.readiness, version.session_process = Readiness.AGENT, "icewm"
    version.save()
    recorded = tmp_path / "recording.bin"
    recorded.write_bytes(RECORDED)
    spooled = tmp_path / "report.txt"
    spooled.write_bytes(DOWNLOADED)
    desktop = persistent_desktop
    return World(
        desktop=desktop,
        snapshot=Snapshot.objects.create(desktop=desktop, name="kept", tag="vdi-kept",
                                         kind=SnapshotKind.LIVE, status=SnapshotStatus.READY,
                                         current=True),
        backup=Backup.objects.create(
            desktop=desktop, desktop_name=str(desktop), pool=desktop.pool, owner=owner,
            host=desktop.host, kind=BackupKind.FULL, checkpoint="cp", folder="/nonexistent",
            status=BackupStatus.READY, files={"vda": {"path": "/x"}, "vdb": {"path": "/y"}}),
        recording=Recording.objects.create(desktop=desktop, desktop_name=str(desktop),
                                           user=owner, ended_at=timezone.now(),
                                           path=str(recorded), size_bytes=len(RECORDED)),
        download=FileTransfer.objects.create(
            desktop=desktop, user=owner, direction=FileTransfer.Direction.OUT,
            name="report.txt", status=FileTransfer.Status.DONE, spool_path=str(spooled)),
    )


Queued = list[dict[str, Any]]


def steps(queued: Queued) -> list[str]:
    """The desktop actions queued (``vdi.desktop_action`` tasks)."""
    return [m["args"][0] for m in queued if m["task"] == task_names.DESKTOP_ACTION]


def tasks(queued: Queued) -> list[str]:
    return [m["task"] for m in queued]


def body(response: HttpResponseBase) -> bytes:
    streamed = getattr(response, "streaming_content", None)
    return b"".join(streamed) if streamed is not None else b""


def moved_to(status: str, action: str) -> Callable[[World, HttpResponseBase, Queued], bool]:
    return lambda w, r, q: w.now().status == status and steps(q) == [action]


def audited(action: str) -> Callable[[World, HttpResponseBase, Queued], bool]:
    return lambda w, r, q: AuditEvent.objects.filter(action=action).exists()


def transfer_queued(task: str, direction: str | None = None) -> Callable[..., bool]:
    def check(w: World, r: HttpResponseBase, q: Queued) -> bool:
        made = (direction is None or FileTransfer.objects.filter(
            user=w.user, direction=direction).exclude(pk=w.download.pk).exists())
        return made and tasks(q) == [task]

    return check


def new_desktop_for(owner_of: Callable[[World], Any]) -> Callable[..., bool]:
    def check(w: World, r: HttpResponseBase, q: Queued) -> bool:
        owner = owner_of(w)
        made = Desktop.objects.exclude(pk=w.desktop.pk).filter(owner=owner)
        return owner is not None and made.count() == 1 and steps(q) == ["provision"]

    return check


@dataclass(frozen=True)
class Page:
    who: dict[str, str]
    send: Callable[[Client, World], HttpResponseBase]
    took_effect: Callable[[World, HttpResponseBase, Queued], bool] | None = None


INTERACTIVE = only("owner", "operator", "administrator")  # a console with a keyboard
SNAPSHOTS = BACKUPS = only("owner", "operator", "administrator")
CLAIMERS = only("owner", "member", "administrator")

PAGES: dict[str, Page] = {
    "GET settings": Page(EVERYONE, lambda c, w: c.get("/settings/")),
    "POST settings": Page(EVERYONE, lambda c, w: c.post("/settings/", {"keyboard_layout": "de"}),
                          audited("preferences.keyboard")),
    # recordings: staff only; among staff, those who may view recordings (administrators)
    "GET recording": Page(admin_page("administrator", staff="404"),
                          lambda c, w: c.get(f"/recordings/{w.recording.pk}/"),
                          audited("recording.replay")),
    "GET recording file": Page(admin_page("administrator", staff="404"),
                               lambda c, w: c.get(f"/recordings/{w.recording.pk}/file/"),
                               lambda w, r, q: body(r) == RECORDED),
    "GET files": Page(INTERACTIVE, lambda c, w: c.get(f"/desktops/{w.desktop.pk}/files/")),
    "POST files upload": Page(
        INTERACTIVE,
        lambda c, w: c.post(f"/desktops/{w.desktop.pk}/files/upload/?name=notes.txt", b"hi",
                            content_type="application/octet-stream"),
        transfer_queued(task_names.PUSH_FILE, FileTransfer.Direction.IN)),
    "POST files list": Page(INTERACTIVE,
                            lambda c, w: c.post(f"/desktops/{w.desktop.pk}/files/list/"),
                            transfer_queued(task_names.LIST_SHARED)),
    "POST files fetch": Page(
        INTERACTIVE,
        lambda c, w: c.post(f"/desktops/{w.desktop.pk}/files/fetch/", {"name": "a.txt"}),
        transfer_queued(task_names.PULL_FILE, FileTransfer.Direction.OUT)),
    # a finished download is its user's alone
    "GET file download": Page(only("owner"), lambda c, w: c.get(f"/files/{w.download.pk}/"),
                              lambda w, r, q: body(r) == DOWNLOADED),
    "POST snapshot take": Page(
        SNAPSHOTS,
        lambda c, w: c.post(f"/desktops/{w.desktop.pk}/snapshots/take/",
                            {"name": "new", "with_data_disk": "on"}),
        moved_to(DesktopStatus.SNAPSHOTTING, "snapshot")),
    "GET snapshot revert": Page(
        SNAPSHOTS, lambda c, w: c.get(f"/snapshots/{w.snapshot.pk}/revert/"),
        lambda w, r, q: b"What will be lost" in getattr(r, "content", b"")),
    "POST snapshot revert": Page(
        SNAPSHOTS,
        lambda c, w: c.post(f"/snapshots/{w.snapshot.pk}/revert/", {"confirm": "revert"}),
        moved_to(DesktopStatus.REVERTING, "revert")),
    "POST snapshot delete": Page(
        SNAPSHOTS, lambda c, w: c.post(f"/snapshots/{w.snapshot.pk}/delete/"),
        moved_to(DesktopStatus.SNAPSHOTTING, "unsnapshot")),
    "POST backup now": Page(
        BACKUPS, lambda c, w: c.post(f"/desktops/{w.desktop.pk}/backups/now/"),
        moved_to(DesktopStatus.BACKING_UP, "backup")),
    "POST backup restore": Page(
        BACKUPS, lambda c, w: c.post(f"/backups/{w.backup.pk}/restore/"),
        moved_to(DesktopStatus.RESTORING, "restore")),
    "POST backup restore-new": Page(
        BACKUPS, lambda c, w: c.post(f"/backups/{w.backup.pk}/restore-new/"),
        new_desktop_for(lambda w: w.backup.owner)),  # the backup's owner's, whoever asks
    "POST backup restore-file": Page(
        BACKUPS,
        lambda c, w: c.post(f"/backups/{w.backup.pk}/restore-file/", {"path": "/data/a.txt"}),
        transfer_queued(task_names.RESTORE_FILE, FileTransfer.Direction.OUT)),
    "POST desktops/new": Page(
        CLAIMERS, lambda c, w: c.post("/desktops/new/", {"pool": w.desktop.pool_id}),
        new_desktop_for(lambda w: w.user)),
}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("what", list(PAGES))
def test_page_matrix(request, world, spy_driver, persona, what,
                     django_capture_on_commit_callbacks):
    page = PAGES[what]
    world.user = user_of(request, persona)
    purge(world.queue())
    client = client_for(request, persona)
    with django_capture_on_commit_callbacks(execute=True):
        response = page.send(client, world)
    expected = page.who[persona]
    assert outcome(response) == expected, f"{persona} {what}: {response.status_code}"
    assert spy_driver == [], "no web request reaches a hypervisor"
    queued = drain(world.queue())
    if expected != OK:
        assert queued == [], "a refused request enqueues nothing"
        assert world.now().status == DesktopStatus.RUNNING
    if page.took_effect is not None:
        assert page.took_effect(world, response, queued) == (expected == OK), (
            f"{persona} {what}: the effect")
