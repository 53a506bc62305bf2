"""The permission matrix: every page, action and the console websocket, for six personas.

Each persona gets exactly what it should; a refused request reaches no hypervisor driver and
enqueues no task.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from tests.console_helpers import communicator, session_cookie
from tests.support import drain, purge
from vdi.choices import DesktopStatus
from vdi.console.codes import CloseCode
from vdi.models import Desktop
from vdi.services.console import issue_ticket

PERSONAS = ("owner", "member", "outsider", "disabled_user", "anonymous", "admin_user")
OK, LOGIN, GONE, DENIED = "ok", "login", "404", "403"


@pytest.fixture
def spy_driver(monkeypatch) -> list[str]:
    """Records every attempt to reach a hypervisor (behaviour unchanged)."""
    import vdi.hypervisor.driver as driver_module

    calls: list[str] = []
    original = driver_module.get_driver

    def recording(uri: str) -> Any:
        calls.append(uri)
        return original(uri)

    monkeypatch.setattr(driver_module, "get_driver", recording)
    monkeypatch.setattr("vdi.worker.hosts.get_driver", recording)
    return calls


def client_for(request, persona: str) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    return client


def outcome(response) -> str:
    if response.status_code == 302 and "/accounts/login/" in response["Location"]:
        return LOGIN
    if response.status_code == 302 and "/admin/login/" in response["Location"]:
        return LOGIN
    if response.status_code in (200, 302):
        return OK
    return {404: GONE, 403: DENIED, 409: OK}.get(response.status_code,
                                                  str(response.status_code))


ANON = {"anonymous": LOGIN, "disabled_user": LOGIN}
# what each persona gets, per request; the owner's desktop, a pool granted to owner and group
MATRIX: dict[str, dict[str, str]] = {
    "GET /": {**ANON, "owner": OK, "member": OK, "outsider": OK, "admin_user": OK},
    "GET /desktops/rows/": {**ANON, "owner": OK, "member": OK, "outsider": OK,
                            "admin_user": OK},
    "POST claim": {**ANON, "owner": OK, "member": OK, "outsider": GONE, "admin_user": OK},
    "POST stop": {**ANON, "owner": OK, "member": GONE, "outsider": GONE, "admin_user": OK},
    "POST release": {**ANON, "owner": OK, "member": GONE, "outsider": GONE, "admin_user": OK},
    "POST delete": {**ANON, "owner": OK, "member": GONE, "outsider": GONE, "admin_user": OK},
    "GET console": {**ANON, "owner": OK, "member": GONE, "outsider": GONE, "admin_user": OK},
    "POST ticket": {**ANON, "owner": OK, "member": GONE, "outsider": GONE, "admin_user": OK},
    "GET diagnose": {**ANON, "owner": OK, "member": GONE, "outsider": GONE, "admin_user": OK},
    "GET /admin/": {**ANON, "owner": LOGIN, "member": LOGIN, "outsider": LOGIN,
                    "admin_user": OK},
    "GET /admin/vdi/desktop/": {**ANON, "owner": LOGIN, "member": LOGIN, "outsider": LOGIN,
                                "admin_user": OK},
}


def send(client: Client, what: str, desktop: Desktop):
    method, _, target = what.partition(" ")
    paths = {
        "claim": f"/pools/{desktop.pool_id}/claim/",
        "stop": f"/desktops/{desktop.pk}/stop/",
        "release": f"/desktops/{desktop.pk}/release/",
        "delete": f"/desktops/{desktop.pk}/delete/",
        "console": f"/desktops/{desktop.pk}/console/",
        "ticket": f"/desktops/{desktop.pk}/console/ticket/",
        "diagnose": f"/desktops/{desktop.pk}/console/diagnose/",
    }
    path = paths.get(target, target)
    return client.post(path) if method == "POST" else client.get(path)


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("what", list(MATRIX))
def test_matrix(request, running_desktop, host, spy_driver, persona, what):
    purge(host.queue)
    response = send(client_for(request, persona), what, running_desktop)
    expected = MATRIX[what][persona]
    assert outcome(response) == expected, f"{persona} {what}: {response.status_code}"
    assert spy_driver == [], "no web request reaches a hypervisor"
    if expected != OK:
        assert drain(host.queue) == [], "a refused request enqueues nothing"
        running_desktop.refresh_from_db()
        assert running_desktop.status == DesktopStatus.RUNNING
        assert running_desktop.owner.username == "owner"
    purge(host.queue)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("persona", PERSONAS)
def test_websocket_matrix(request, running_desktop, persona):
    """Only the owner (and an admin) can open the console, with a ticket of their own."""
    owner = request.getfixturevalue("owner")
    owner_session = session_cookie(owner)
    if persona in ("owner", "admin_user"):
        user = request.getfixturevalue(persona)
        session = owner_session if persona == "owner" else session_cookie(user)
        ticket = issue_ticket(user, session, running_desktop).ticket
        expected = CloseCode.VNC_UNREACHABLE  # allowed in: port 1 has no VNC server
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
