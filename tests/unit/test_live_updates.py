"""Pushed, not polled: a signed-in page's websocket (/ws/live/) hears of each change to the
desktops it shows (owner, operators, the pool's operators), and nobody else's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group

from tests.console_helpers import session_cookie
from vdi import state
from vdi.choices import DesktopStatus
from vdi.console.codes import CloseCode
from vdi.models import Desktop
from vdi.roles import POOL_OPERATORS
from vdi.services.desktops import perform

pytestmark = pytest.mark.django_db(transaction=True)


def live_socket(session: str | None) -> WebsocketCommunicator:
    from portal.asgi import websocket_app

    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost")]
    if session is not None:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    return WebsocketCommunicator(websocket_app, "/ws/live/", headers=headers)


def heard(people: dict[str, Any], change: Any) -> dict[str, list[dict[str, Any]]]:
    """Connect each person's page, make the change, and collect what each page heard."""

    sessions = {name: session_cookie(user) for name, user in people.items()}

    async def scenario() -> dict[str, list[dict[str, Any]]]:
        sockets = {name: live_socket(session) for name, session in sessions.items()}
        for socket in sockets.values():
            connected, _ = await socket.connect()
            assert connected
        from channels.db import database_sync_to_async

        await database_sync_to_async(change)()
        messages: dict[str, list[dict[str, Any]]] = {}
        for name, socket in sockets.items():
            got: list[dict[str, Any]] = []
            while not await socket.receive_nothing(timeout=0.5 if not got else 0.1):
                got.append(json.loads(await socket.receive_from()))
            messages[name] = got
            await socket.disconnect()
        return messages

    return async_to_sync(scenario)()


@pytest.fixture
def pool_operator(db, pool, django_user_model):
    person = django_user_model.objects.create_user("pool-op", password="x")
    person.groups.add(Group.objects.get(name=POOL_OPERATORS))
    pool.operators.add(person)
    return person


def test_a_state_change_reaches_its_owner_and_operators_only(
        running_desktop, owner, outsider, helpdesk, pool_operator):
    people = {"owner": owner, "outsider": outsider, "helpdesk": helpdesk,
              "pool operator": pool_operator}
    got = heard(people, lambda: state.compare_and_set(
        running_desktop.pk, {DesktopStatus.RUNNING}, DesktopStatus.STOPPING))
    change = {"kind": "desktop", "id": running_desktop.pk}
    assert got == {"owner": [change], "outsider": [], "helpdesk": [change],
                   "pool operator": [change]}


def test_a_desktop_given_back_tells_the_user_who_had_it(running_desktop, owner, empty_queue):
    got = heard({"owner": owner}, lambda: perform(running_desktop, "release", None))
    assert {"kind": "desktop", "id": running_desktop.pk} in got["owner"]
    assert Desktop.objects.get(pk=running_desktop.pk).owner is None


def test_a_change_is_sent_only_once_the_transaction_commits(running_desktop, owner):
    from django.db import transaction

    def rolled_back() -> None:
        with transaction.atomic():
            state.compare_and_set(running_desktop.pk, {DesktopStatus.RUNNING},
                                  DesktopStatus.STOPPING)
            transaction.set_rollback(True)

    assert heard({"owner": owner}, rolled_back) == {"owner": []}


def test_anonymous_pages_are_refused():
    async def attempt() -> Any:
        socket = live_socket(None)
        connected, code = await socket.connect()
        return connected, code

    assert async_to_sync(attempt)() == (False, int(CloseCode.NOT_SIGNED_IN))


def test_an_operation_that_ends_tells_the_pages_of_its_desktop(running_desktop, owner,
                                                              outsider):
    """A desktop's snapshots and backups pages show the last failure of their work: the end
    of an operation (after its desktop's state moved on) reaches the pages that show it."""
    from vdi.models import Operation
    from vdi.worker import operations

    operation = Operation.objects.create(kind="backup", desktop=running_desktop, target="x")
    got = heard({"owner": owner, "outsider": outsider}, lambda: operations.finish(
        operation.pk, error="The backup could not be made."))
    assert got == {"owner": [{"kind": "desktop", "id": running_desktop.pk}], "outsider": []}


def test_a_rollout_that_moves_tells_the_dashboards_of_its_pool(
        pool, image_version, owner, outsider, helpdesk, pool_operator, admin_user):
    """The dashboard's rollouts part is fetched again when a rollout is paused (or moves on):
    the operators and the pool's operators hear of it, its users do not."""
    from vdi.models import Rollout
    from vdi.services import rollouts

    rollout = Rollout.objects.create(pool=pool, from_version=image_version,
                                     to_version=image_version)
    people = {"owner": owner, "outsider": outsider, "helpdesk": helpdesk,
              "pool operator": pool_operator}
    got = heard(people, lambda: rollouts.pause(admin_user, rollout))
    change = {"kind": "rollout", "id": rollout.pk}
    assert got == {"owner": [], "outsider": [], "helpdesk": [change],
                   "pool operator": [change]}
