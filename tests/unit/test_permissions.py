"""The role matrix, desktop side: the desktop list, claims, every desktop action, the
console pages and the console websocket, for every persona (``tests/roles.py``): the owner (a
plain user), a member of a granted group, the helpdesk, the operator of the desktop's pool,
the operator of another pool, an administrator (by role, not superuser), an outsider, a
disabled account and an anonymous visitor. The other portal pages are in
test_permissions_pages.py, the admin in test_permissions_admin.py.

Each persona gets exactly what it should. A refused call reaches no hypervisor driver and
enqueues nothing; an allowed call takes effect (the desktop moves, a task is queued).
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync

from tests.console_helpers import communicator, session_cookie
from tests.roles import DENIED, EVERYONE, OK, PERSONAS, client_for, only, outcome, prepare
from tests.support import drain, purge
from vdi import actions
from vdi.console.codes import CloseCode
from vdi.models import Desktop
from vdi.services.console import issue_ticket

ACTORS = ("owner", "operator", "administrator")  # may act on the owner's desktop
MATRIX: dict[str, dict[str, str]] = {
    "GET /": EVERYONE,
    "GET /desktops/rows/": EVERYONE,
    "POST claim": only("owner", "member", "administrator"),
    **{f"POST {a.name}": only(*ACTORS) for a in actions.REQUESTABLE},
    "GET console": only("owner", "helpdesk", "operator", "administrator"),
    "POST ticket": only("owner", "helpdesk", "operator", "administrator"),
    "GET diagnose": only("owner", "helpdesk", "operator", "administrator"),
    # a native client's ticket: interactive consoles only (a VNC desktop then answers 409)
    "POST vv": only("owner", "operator", "administrator") | {"helpdesk": DENIED},
    "GET snapshots": only("owner", "operator", "administrator"),
    "GET backups": only("owner", "operator", "administrator"),
}


def send(client: Any, what: str, desktop: Desktop) -> Any:
    method, _, target = what.partition(" ")
    paths = {
        "claim": f"/pools/{desktop.pool_id}/claim/",
        **{a.name: f"/desktops/{desktop.pk}/{a.name}/" for a in actions.REQUESTABLE},
        "console": f"/desktops/{desktop.pk}/console/",
        "ticket": f"/desktops/{desktop.pk}/console/ticket/",
        "diagnose": f"/desktops/{desktop.pk}/console/diagnose/",
        "vv": f"/desktops/{desktop.pk}/console/remote-viewer.vv",
        "snapshots": f"/desktops/{desktop.pk}/snapshots/",
        "backups": f"/desktops/{desktop.pk}/backups/",
    }
    path = paths.get(target, target)
    return client.post(path) if method == "POST" else client.get(path)




@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("what", list(MATRIX))
def test_matrix(request, running_desktop, host, spy_driver, persona, what,
                django_capture_on_commit_callbacks):
    purge(host.queue)
    claims = prepare(what, running_desktop)
    with django_capture_on_commit_callbacks(execute=True):
        response = send(client_for(request, persona), what, running_desktop)
    expected = MATRIX[what][persona]
    assert outcome(response) == expected, f"{persona} {what}: {response.status_code}"
    assert spy_driver == [], "no web request reaches a hypervisor"
    queued = drain(host.queue)
    running_desktop.refresh_from_db()
    if expected != OK:
        assert queued == [], "a refused request enqueues nothing"
        assert running_desktop.owner.username == "owner"
        assert claims is None or running_desktop.status != claims
    elif claims is not None:
        assert running_desktop.status == claims, "the allowed action took effect"
        assert [m["args"][0] for m in queued] == [what.removeprefix("POST ")]


CONSOLE = {"owner": CloseCode.VNC_UNREACHABLE, "helpdesk": CloseCode.VNC_UNREACHABLE,
           "operator": CloseCode.VNC_UNREACHABLE, "administrator": CloseCode.VNC_UNREACHABLE}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("persona", PERSONAS)
def test_websocket_matrix(request, running_desktop, persona):
    """Those who may open (or watch) the console get in with a ticket of their own (port 1 has
    no VNC server, so they end at 'unreachable'); the others are refused."""
    owner = request.getfixturevalue("owner")
    owner_session = session_cookie(owner)
    if persona in CONSOLE:
        user = request.getfixturevalue(persona)
        session = owner_session if persona == "owner" else session_cookie(user)
        ticket = issue_ticket(user, session, running_desktop).ticket
        expected = CONSOLE[persona]
    elif persona == "anonymous":
        session, ticket = None, issue_ticket(owner, owner_session, running_desktop).ticket
        expected = CloseCode.NOT_SIGNED_IN
    else:
        user = request.getfixturevalue(persona)
        session = session_cookie(user) if user.is_active else "not-a-session"
        ticket = issue_ticket(owner, owner_session, running_desktop).ticket  # someone else's
        expected = CloseCode.TICKET_REFUSED if user.is_active else CloseCode.NOT_SIGNED_IN

    async def attempt() -> dict[str, Any]:
        ws = communicator(running_desktop.pk, session, ticket)
        await ws.connect()
        message = await ws.receive_output(timeout=5)
        await ws.wait()
        return dict(message)

    assert async_to_sync(attempt)() == {"type": "websocket.close", "code": expected}
