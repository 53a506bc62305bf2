"""The role matrix over every API endpoint: each persona, with a read+write token of its own,
gets exactly what the pages would give it. Refused calls reach no driver and enqueue nothing;
allowed ones take effect."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from tests.roles import PERSONAS, prepare
from tests.support import drain, purge
from vdi import actions, task_names
from vdi.choices import BackupKind, BackupStatus, DesktopStatus, SnapshotKind, SnapshotStatus
from vdi.models import ApiToken, Backup, Desktop, Operation, Pool, Snapshot
from vdi.services import tokens

SEES_DESKTOP = ("owner", "helpdesk", "operator", "administrator")
SEES_POOL = ("owner", "member", "helpdesk", "operator", "administrator")
ACTORS = ("owner", "operator", "administrator")


def table(allowed: int, *personas: str, refused: int = 404,
          visible_but_refused: tuple[str, ...] = (), signed_in_status: int | None = None
          ) -> dict[str, int]:
    """The status each persona gets: ``allowed`` for ``personas``, 403 for those who see the
    object but may not act, ``refused`` for the rest, 401 without a live account."""
    result = {p: signed_in_status or refused for p in PERSONAS}
    result |= {p: 403 for p in visible_but_refused} | {p: allowed for p in personas}
    return result | {"anonymous": 401, "disabled_user": 401}


EVERYONE = table(200, *PERSONAS)
ADMINS_ONLY = table(200, "administrator", refused=403)
MATRIX: dict[str, dict[str, int]] = {
    "GET /api/pools/": EVERYONE,
    "GET pool": table(200, *SEES_POOL),
    "POST claim": table(201, "owner", "member", "administrator",
                        visible_but_refused=("helpdesk", "operator")),
    "POST drain": table(200, "operator", "administrator",
                        visible_but_refused=("owner", "member", "helpdesk")),
    "POST undrain": table(200, "operator", "administrator",
                          visible_but_refused=("owner", "member", "helpdesk")),
    "GET /api/desktops/": EVERYONE,
    "GET desktop": table(200, *SEES_DESKTOP),
    **{f"POST {a.name}": table(202, *ACTORS, visible_but_refused=("helpdesk",))
       for a in actions.REQUESTABLE},
    # tokens never get console tickets (a ticket belongs to a browser session)
    "POST console-ticket": table(403, *SEES_DESKTOP),
    "GET /api/images/": ADMINS_ONLY,
    "GET /api/image-versions/": ADMINS_ONLY,
    "GET /api/hosts/": table(200, "administrator", "helpdesk", refused=403),  # the dashboard
    "GET /api/operations/": EVERYONE,
    "GET /api/audit/": ADMINS_ONLY,
    "GET /api/quotas/": ADMINS_ONLY,
    "GET /api/quotas/me/": EVERYONE,
    "GET /api/tokens/": EVERYONE,
    "GET /api/schema/": {p: 200 for p in PERSONAS},  # public
}


def client_for(request, persona: str) -> Client:
    if persona == "anonymous":
        return Client()
    user = request.getfixturevalue(persona)
    was_active = user.is_active
    if not was_active:  # its token was made while it could still sign in
        type(user).objects.filter(pk=user.pk).update(is_active=True)
        user.refresh_from_db()
    made = tokens.make(user, "matrix", [ApiToken.READ, ApiToken.WRITE], 1)
    if not was_active:
        type(user).objects.filter(pk=user.pk).update(is_active=False)
    return Client(HTTP_AUTHORIZATION=f"Bearer {made.key}")


def send(client: Client, what: str, desktop: Desktop):
    method, _, target = what.partition(" ")
    paths = {
        "pool": f"/api/pools/{desktop.pool_id}/",
        **{name: f"/api/pools/{desktop.pool_id}/{name}/"
           for name in ("claim", "drain", "undrain")},
        "desktop": f"/api/desktops/{desktop.pk}/",
        "console-ticket": f"/api/desktops/{desktop.pk}/console-ticket/",
        **{a.name: f"/api/desktops/{desktop.pk}/actions/{a.name}/"
           for a in actions.REQUESTABLE},
    }
    path = paths.get(target, target)
    return client.post(path) if method == "POST" else client.get(path)




def effect(what: str, desktop: Desktop, pool: Pool, claims: str | None) -> bool:
    desktop.refresh_from_db()
    pool.refresh_from_db()
    if what == "POST drain":
        return pool.draining
    if what == "POST claim":
        return Desktop.objects.filter(pool=pool).count() == 2
    if claims is not None:
        return desktop.status == claims
    return False


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("what", list(MATRIX))
def test_api_matrix(request, running_desktop, pool, host, spy_driver, persona, what,
                    django_capture_on_commit_callbacks):
    purge(host.queue)
    if what == "POST undrain":
        Pool.objects.filter(pk=pool.pk).update(draining=True)
    claims = prepare(what, running_desktop)
    client = client_for(request, persona)
    with django_capture_on_commit_callbacks(execute=True):
        response = send(client, what, running_desktop)
    expected = MATRIX[what][persona]
    assert response.status_code == expected, f"{persona} {what}: {response.content[:300]!r}"
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"code", "message"}
    assert spy_driver == [], "no API request reaches a hypervisor"
    queued = drain(host.queue)
    took_effect = effect(what, running_desktop, pool, claims)
    if expected >= 400:
        assert queued == [] and not took_effect, f"{persona} {what} had an effect"
        assert running_desktop.owner.username == "owner"
    elif what.startswith("POST") and what not in ("POST undrain",):
        assert took_effect, f"{persona} {what} took no effect"
    if what == "POST undrain" and expected == 200:
        assert not Pool.objects.get(pk=pool.pk).draining


def test_every_endpoint_is_in_the_matrix():
    from vdi.api.urls import router

    described = " ".join([*MATRIX, *POINTS])
    for prefix, viewset, _basename in router.registry:
        assert f"/api/{prefix}/" in described or prefix in ("pools", "desktops"), prefix
        for extra in viewset.get_extra_actions():
            path = extra.url_path  # type: ignore[attr-defined]
            assert path.startswith("actions/") or f"POST {path}" in MATRIX \
                or f"/api/{prefix}/{path}/" in described \
                or f"/api/{prefix}/{{id}}/{path}/" in described, f"{prefix} {path}"


# --- Snapshots and backups, on the owner's persistent desktop -------------------------------

SNAPSHOTTERS = ("owner", "operator", "administrator")  # as the pages: vdi.snapshot_desktop
# (and .backup_desktop) on the desktop, or its owner; the helpdesk sees the desktop only


@dataclass
class Points:
    """The owner's running persistent desktop, a snapshot and a backup of it."""

    desktop: Desktop
    snapshot: Snapshot
    backup: Backup

    def now(self) -> Desktop:
        return Desktop.objects.get(pk=self.desktop.pk)


@pytest.fixture
def points(owner, persistent_desktop) -> Points:
    desktop = persistent_desktop
    return Points(
        desktop=desktop,
        snapshot=Snapshot.objects.create(desktop=desktop, name="kept", tag="vdi-kept",
                                         kind=SnapshotKind.LIVE, status=SnapshotStatus.READY,
                                         current=True),
        backup=Backup.objects.create(
            desktop=desktop, desktop_name=str(desktop), pool=desktop.pool, owner=owner,
            host=desktop.host, kind=BackupKind.FULL, checkpoint="cp", folder="/nonexistent",
            status=BackupStatus.READY, files={"vda": {"path": "/x"}, "vdb": {"path": "/y"}}))


Queued = list[dict[str, Any]]
Effect = Callable[[Points, Any, Queued], bool]


def ids(response) -> set[int]:
    body = response.json()
    return {row["id"] for row in (body["results"] if isinstance(body, dict) else body)}


def lists(row: Callable[[Points], Snapshot | Backup]) -> Effect:
    return lambda p, r, q: r.status_code == 200 and row(p).pk in ids(r)


def shows(row: Callable[[Points], Snapshot | Backup]) -> Effect:
    return lambda p, r, q: r.status_code == 200 and r.json()["id"] == row(p).pk


def queued_on_its_host(kind: str, claims: str, **params: Callable[[Points], int]) -> Effect:
    """The answer names the operation, which is queued on the desktop's host's queue as the
    one task, with what it acts on in its params, and the desktop is claimed for it."""
    def check(p: Points, r: Any, q: Queued) -> bool:
        if r.status_code != 202:
            return False
        operation = Operation.objects.get(pk=r.json()["id"])
        return (operation.kind == kind and p.now().status == claims
                and all(operation.params.get(k) == v(p) for k, v in params.items())
                and q == [{"task": task_names.DESKTOP_ACTION,
                           "args": [kind, p.desktop.pk, operation.pk]}])
    return check


def snapshot_deleting(p: Points, r: Any, q: Queued) -> bool:
    p.snapshot.refresh_from_db()
    return (p.snapshot.status == SnapshotStatus.DELETING
            and queued_on_its_host("unsnapshot", DesktopStatus.SNAPSHOTTING,
                                   snapshot=lambda p: p.snapshot.pk)(p, r, q))


def new_desktop_from_the_backup(p: Points, r: Any, q: Queued) -> bool:
    """A second desktop of the pool, the backup's owner's, provisioning from the backup."""
    if r.status_code != 202:
        return False
    operation = Operation.objects.get(pk=r.json()["id"])
    made = Desktop.objects.exclude(pk=p.desktop.pk).filter(pool=p.desktop.pool,
                                                           owner=p.backup.owner)
    return (made.count() == 1 and operation.desktop_id == made.get().pk
            and operation.params == {"backup": p.backup.pk}
            and q == [{"task": task_names.DESKTOP_ACTION,
                       "args": ["provision", operation.desktop_id, operation.pk]}])


@dataclass(frozen=True)
class Row:
    who: dict[str, int]
    send: Callable[[Client, Points], Any]
    took_effect: Effect
    effect_for: tuple[str, ...] = SNAPSHOTTERS  # who the call takes effect for


SEEN_BY_SNAPSHOTTERS = table(200, *SNAPSHOTTERS)
ACTED_BY_SNAPSHOTTERS = table(202, *SNAPSHOTTERS)
DESKTOP_PART = table(200, *SNAPSHOTTERS, visible_but_refused=("helpdesk",))
DESKTOP_ACT = table(202, *SNAPSHOTTERS, visible_but_refused=("helpdesk",))
TAKE = {"name": "new", "description": "before the update"}

POINTS: dict[str, Row] = {
    "GET /api/snapshots/": Row(EVERYONE, lambda c, p: c.get("/api/snapshots/"),
                               lists(lambda p: p.snapshot)),
    "GET /api/snapshots/{id}/": Row(SEEN_BY_SNAPSHOTTERS,
                                    lambda c, p: c.get(f"/api/snapshots/{p.snapshot.pk}/"),
                                    shows(lambda p: p.snapshot)),
    "GET /api/desktops/{id}/snapshots/": Row(
        DESKTOP_PART, lambda c, p: c.get(f"/api/desktops/{p.desktop.pk}/snapshots/"),
        lists(lambda p: p.snapshot)),
    "POST /api/desktops/{id}/snapshots/": Row(
        DESKTOP_ACT, lambda c, p: c.post(f"/api/desktops/{p.desktop.pk}/snapshots/", TAKE,
                                         content_type="application/json"),
        queued_on_its_host("snapshot", DesktopStatus.SNAPSHOTTING,
                           snapshot=lambda p: Snapshot.objects.get(name="new").pk)),
    "POST /api/snapshots/{id}/revert/": Row(
        ACTED_BY_SNAPSHOTTERS, lambda c, p: c.post(f"/api/snapshots/{p.snapshot.pk}/revert/"),
        queued_on_its_host("revert", DesktopStatus.REVERTING,
                           snapshot=lambda p: p.snapshot.pk)),
    "DELETE /api/snapshots/{id}/": Row(
        ACTED_BY_SNAPSHOTTERS, lambda c, p: c.delete(f"/api/snapshots/{p.snapshot.pk}/"),
        snapshot_deleting),
    "GET /api/backups/": Row(EVERYONE, lambda c, p: c.get("/api/backups/"),
                             lists(lambda p: p.backup)),
    "GET /api/backups/{id}/": Row(SEEN_BY_SNAPSHOTTERS,
                                  lambda c, p: c.get(f"/api/backups/{p.backup.pk}/"),
                                  shows(lambda p: p.backup)),
    "GET /api/desktops/{id}/backups/": Row(
        DESKTOP_PART, lambda c, p: c.get(f"/api/desktops/{p.desktop.pk}/backups/"),
        lists(lambda p: p.backup)),
    "POST /api/desktops/{id}/backups/": Row(
        DESKTOP_ACT, lambda c, p: c.post(f"/api/desktops/{p.desktop.pk}/backups/"),
        queued_on_its_host("backup", DesktopStatus.BACKING_UP)),
    "POST /api/backups/{id}/restore/": Row(
        ACTED_BY_SNAPSHOTTERS, lambda c, p: c.post(f"/api/backups/{p.backup.pk}/restore/"),
        queued_on_its_host("restore", DesktopStatus.RESTORING, backup=lambda p: p.backup.pk)),
    "POST /api/backups/{id}/restore-as-new/": Row(
        ACTED_BY_SNAPSHOTTERS,
        lambda c, p: c.post(f"/api/backups/{p.backup.pk}/restore-as-new/"),
        new_desktop_from_the_backup),
}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("what", list(POINTS))
def test_api_matrix_of_snapshots_and_backups(request, points, spy_driver, persona, what,
                                             django_capture_on_commit_callbacks):
    row = POINTS[what]
    queue = points.desktop.host.queue
    purge(queue)
    client = client_for(request, persona)
    with django_capture_on_commit_callbacks(execute=True):
        response = row.send(client, points)
    expected = row.who[persona]
    assert response.status_code == expected, f"{persona} {what}: {response.content[:300]!r}"
    if expected >= 400:
        assert set(response.json()["error"]) >= {"code", "message"}
    assert spy_driver == [], "no API request reaches a hypervisor"
    queued = drain(queue)
    assert row.took_effect(points, response, queued) == (persona in row.effect_for), (
        f"{persona} {what}: the effect")
    if persona not in row.effect_for:
        assert queued == [] and points.now().status == DesktopStatus.RUNNING
        assert Operation.objects.count() == 0 and Desktop.objects.count() == 1


def test_every_snapshot_and_backup_operation_of_the_schema_is_in_the_matrix(db):
    schema = Client().get("/api/schema/?format=json").json()
    operations = {f"{method.upper()} {path}" for path, methods in schema["paths"].items()
                  for method in methods if "snapshots" in path or "backups" in path}
    assert operations == set(POINTS)
