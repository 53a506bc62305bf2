"""Snapshots and backups through the API: the snapshot and backup pages' services and rules,
token scopes (a read token lists, a write token acts), someone else's desktop not found, and a
refusal that says why in the API's error shape. Who may call what is the role matrix's part
(test_api_permissions.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.roles import PERSONAS
from tests.support import drain
from vdi import actions, task_names
from vdi.choices import BackupKind, BackupStatus, DesktopStatus, SnapshotKind, SnapshotStatus
from vdi.models import AuditEvent, Backup, Desktop, Operation, Pool, Snapshot
from vdi.services import access, tokens

JSON = "application/json"


def bearer(user: Any, *scopes: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {tokens.make(user, 'tests', list(scopes), 1).key}")


def ready_backup(desktop: Desktop, **fields: Any) -> Backup:
    return Backup.objects.create(**{
        "desktop": desktop, "desktop_name": str(desktop), "pool": desktop.pool,
        "owner": desktop.owner, "host": desktop.host, "kind": BackupKind.FULL,
        "checkpoint": "cp", "folder": "/nonexistent", "status": BackupStatus.READY,
        "files": {"vda": {"path": "/x"}, "vdb": {"path": "/y"}}, **fields})


def ready_snapshot(desktop: Desktop, name: str = "kept", **fields: Any) -> Snapshot:
    return Snapshot.objects.create(**{
        "desktop": desktop, "name": name, "tag": f"vdi-{name}", "kind": SnapshotKind.LIVE,
        "status": SnapshotStatus.READY, "current": True, **fields})


def test_a_write_token_takes_a_snapshot_as_the_page_would(owner, persistent_desktop, host,
                                                          empty_queue,
                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = bearer(owner, "read", "write").post(
            f"/api/desktops/{persistent_desktop.pk}/snapshots/",
            {"name": "before the update", "description": "office 2026"}, content_type=JSON,
            REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 202, response.content
    operation = Operation.objects.get(pk=response.json()["id"])
    snapshot = Snapshot.objects.get(desktop=persistent_desktop)
    assert (snapshot.name, snapshot.description, snapshot.kind, snapshot.created_by) == (
        "before the update", "office 2026", SnapshotKind.LIVE, owner)
    assert operation.kind == "snapshot" and operation.params["snapshot"] == snapshot.pk
    assert drain(host.queue) == [{"task": task_names.DESKTOP_ACTION,
                                  "args": ["snapshot", persistent_desktop.pk, operation.pk]}]
    event = AuditEvent.objects.get(action="desktop.snapshot")
    assert (event.actor, event.source_address) == (owner, "192.0.2.7")
    followed = bearer(owner, "read").get(f"/api/operations/{operation.pk}/").json()
    assert followed["kind"] == "snapshot" and followed["desktop"] == persistent_desktop.pk


def test_a_stopped_desktops_snapshot_may_leave_the_data_disk_out(owner, persistent_desktop,
                                                                 empty_queue):
    Desktop.objects.filter(pk=persistent_desktop.pk).update(status=DesktopStatus.STOPPED)
    response = bearer(owner, "write").post(
        f"/api/desktops/{persistent_desktop.pk}/snapshots/",
        {"name": "disks", "with_data_disk": False}, content_type=JSON)
    assert response.status_code == 202, response.content
    snapshot = Snapshot.objects.get()
    assert (snapshot.kind, snapshot.with_data_disk) == (SnapshotKind.OFFLINE, False)


def test_a_read_token_lists_snapshots_but_cannot_take_one(owner, persistent_desktop, host,
                                                          empty_queue):
    kept = ready_snapshot(persistent_desktop)
    reader = bearer(owner, "read")
    listed = reader.get(f"/api/desktops/{persistent_desktop.pk}/snapshots/")
    assert [s["id"] for s in listed.json()] == [kept.pk]
    for refused in (
            reader.post(f"/api/desktops/{persistent_desktop.pk}/snapshots/", {"name": "x"},
                        content_type=JSON),
            reader.post(f"/api/snapshots/{kept.pk}/revert/"),
            reader.delete(f"/api/snapshots/{kept.pk}/"),
            reader.post(f"/api/desktops/{persistent_desktop.pk}/backups/")):
        assert refused.status_code == 403
        assert refused.json()["error"] == {
            "code": "permission_denied", "message": "This token's scopes do not allow it."}
    assert list(Snapshot.objects.all()) == [kept]
    assert Operation.objects.count() == 0 and drain(host.queue) == []
    persistent_desktop.refresh_from_db()
    assert persistent_desktop.status == DesktopStatus.RUNNING


def test_someone_elses_desktops_snapshots_and_backups_are_not_found(
        outsider, persistent_desktop, host, empty_queue):
    snapshot, backup = ready_snapshot(persistent_desktop), ready_backup(persistent_desktop)
    stranger = bearer(outsider, "read", "write")
    desktop = f"/api/desktops/{persistent_desktop.pk}"
    for response in (
            stranger.get(f"{desktop}/snapshots/"),
            stranger.post(f"{desktop}/snapshots/", {"name": "mine"}, content_type=JSON),
            stranger.get(f"/api/snapshots/{snapshot.pk}/"),
            stranger.post(f"/api/snapshots/{snapshot.pk}/revert/"),
            stranger.delete(f"/api/snapshots/{snapshot.pk}/"),
            stranger.get(f"{desktop}/backups/"),
            stranger.post(f"{desktop}/backups/"),
            stranger.get(f"/api/backups/{backup.pk}/"),
            stranger.post(f"/api/backups/{backup.pk}/restore/"),
            stranger.post(f"/api/backups/{backup.pk}/restore-as-new/")):
        assert response.status_code == 404, response.request["PATH_INFO"]
        assert response.json()["error"]["code"] == "not_found"
    for listing in ("snapshots", "backups"):
        found = stranger.get(f"/api/{listing}/?desktop={persistent_desktop.pk}").json()
        assert found["count"] == 0
    assert Operation.objects.count() == 0 and drain(host.queue) == []


def test_a_snapshot_of_a_desktop_whose_pool_has_none_is_refused_saying_why(
        owner, running_desktop, host, empty_queue):
    """The unit pool is not persistent: its desktops go back to their image anyway."""
    response = bearer(owner, "write").post(
        f"/api/desktops/{running_desktop.pk}/snapshots/", {"name": "x"}, content_type=JSON)
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "refused",
        "message": "Only persistent desktops have snapshots: a non-persistent one goes back "
                   "to its image anyway."}
    assert not Snapshot.objects.exists() and drain(host.queue) == []
    running_desktop.refresh_from_db()
    assert running_desktop.status == DesktopStatus.RUNNING


def test_a_pool_whose_snapshots_are_used_up_says_so(owner, persistent_desktop, empty_queue):
    ready_snapshot(persistent_desktop)
    Pool.objects.filter(pk=persistent_desktop.pool_id).update(max_snapshots=1)
    response = bearer(owner, "write").post(
        f"/api/desktops/{persistent_desktop.pk}/snapshots/", {"name": "one more"},
        content_type=JSON)
    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        "The pool Unit pool allows 1 snapshot(s) in all and has them.")
    assert Snapshot.objects.count() == 1


def test_a_snapshot_without_a_name_is_invalid_field_by_field(owner, persistent_desktop):
    response = bearer(owner, "write").post(
        f"/api/desktops/{persistent_desktop.pk}/snapshots/", {}, content_type=JSON)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and "name" in error["fields"]


def test_the_helpdesk_sees_the_desktop_not_its_snapshots(helpdesk, persistent_desktop):
    ready_snapshot(persistent_desktop)
    watcher = bearer(helpdesk, "read", "write")
    assert watcher.get(f"/api/desktops/{persistent_desktop.pk}/").status_code == 200
    refused = watcher.get(f"/api/desktops/{persistent_desktop.pk}/snapshots/")
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == (
        f"You may not see or change the snapshots of {persistent_desktop}.")
    assert watcher.get("/api/snapshots/").json()["count"] == 0


def test_an_offline_snapshot_of_a_running_desktop_waits_for_it_to_stop(
        owner, persistent_desktop, empty_queue):
    offline = ready_snapshot(persistent_desktop, kind=SnapshotKind.OFFLINE)
    response = bearer(owner, "write").delete(f"/api/snapshots/{offline.pk}/")
    assert response.status_code == 409
    assert response.json()["error"]["message"].startswith(
        "Stop the desktop to delete a snapshot taken while it was stopped")
    offline.refresh_from_db()
    assert offline.status == SnapshotStatus.READY


def test_a_backup_still_being_made_is_not_restored(owner, persistent_desktop, empty_queue):
    running = ready_backup(persistent_desktop, status=BackupStatus.RUNNING)
    writer = bearer(owner, "write")
    for what in ("restore", "restore-as-new"):
        response = writer.post(f"/api/backups/{running.pk}/{what}/")
        assert response.status_code == 409
        assert "it is not ready" in response.json()["error"]["message"]
    assert Operation.objects.count() == 0


def test_a_gone_desktops_backup_is_its_owners_to_restore_as_new(
        owner, outsider, persistent_desktop, host, empty_queue,
        django_capture_on_commit_callbacks):
    backup = ready_backup(persistent_desktop)
    Desktop.objects.filter(pk=persistent_desktop.pk).delete()
    backup.refresh_from_db()
    assert backup.desktop is None
    assert bearer(outsider, "read").get("/api/backups/").json()["count"] == 0
    mine = bearer(owner, "read", "write")
    assert [b["id"] for b in mine.get("/api/backups/").json()["results"]] == [backup.pk]
    with django_capture_on_commit_callbacks(execute=True):
        response = mine.post(f"/api/backups/{backup.pk}/restore-as-new/")
    assert response.status_code == 202, response.content
    operation = Operation.objects.get(pk=response.json()["id"])
    made = Desktop.objects.get()
    assert (made.owner, made.status, operation.desktop) == (
        owner, DesktopStatus.PROVISIONING, made)
    assert operation.params == {"backup": backup.pk}
    assert [m["args"][0] for m in drain(host.queue)] == ["provision"]


def test_the_answers_have_the_schemas_fields(owner, persistent_desktop, empty_queue):
    ready_snapshot(persistent_desktop)
    ready_backup(persistent_desktop)
    components = Client().get("/api/schema/?format=json").json()["components"]["schemas"]
    client = bearer(owner, "read", "write")
    desktop = f"/api/desktops/{persistent_desktop.pk}"
    answers = {"Snapshot": client.get(f"{desktop}/snapshots/").json()[0],
               "Backup": client.get(f"{desktop}/backups/").json()[0],
               "Operation": client.post(f"{desktop}/backups/").json()}
    for name, answer in answers.items():
        assert set(answer) == set(components[name]["properties"]), name


def test_lists_cost_the_same_queries_for_two_or_forty(owner, persistent_desktop):
    client = bearer(owner, "read")
    paths = ["/api/snapshots/?limit=500", "/api/backups/?limit=500",
             f"/api/desktops/{persistent_desktop.pk}/snapshots/",
             f"/api/desktops/{persistent_desktop.pk}/backups/"]

    def costs() -> list[int]:
        counted = []
        for path in paths:
            with CaptureQueriesContext(connection) as captured:
                assert client.get(path).status_code == 200
            counted.append(len(captured))
        return counted

    def add(first: int, count: int) -> None:
        for n in range(first, first + count):
            ready_snapshot(persistent_desktop, f"s{n}", current=False, created_by=owner)
            ready_backup(persistent_desktop)

    add(0, 2)
    costs()  # warm: content types, permissions
    with_two = costs()
    add(2, 38)
    assert costs() == with_two


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_lists_hold_the_desktops_each_action_may_be_asked_for_on(
        request, persona, running_desktop, outsider, other_operator):
    """``access.desktops_for`` (what the lists show) is ``access.standing`` (what the actions
    check) as a query, for every action: the owner's desktop, someone else's in the same pool,
    one in a pool the other operator operates."""
    elsewhere = Pool.objects.get(name="Elsewhere")
    for owner, pool in ((outsider, running_desktop.pool), (outsider, elsewhere)):
        Desktop.objects.create(owner=owner, pool=pool, host=running_desktop.host,
                               image_version=running_desktop.image_version,
                               domain_name=f"other-{pool.pk}", disk_path="/n/o.qcow2",
                               serial_log_path="/n/o.log", vcpus=1, memory_mib=256)
    user = (request.getfixturevalue(persona) if persona != "anonymous"
            else AnonymousUser())
    for action in actions.ACTIONS.values():
        expected = {d.pk for d in Desktop.objects.all()
                    if access.standing(user, action, d) is not access.Standing.NONE}
        found = set(access.desktops_for(user, action).values_list("pk", flat=True))
        assert found == expected, f"{persona} {action.name}"
