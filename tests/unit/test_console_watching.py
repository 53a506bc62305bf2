"""Helpdesk watching as the user decides: on a pool that asks for consent a watcher gets no
byte of the screen until the user allows it on their open console; a refusal, silence or no
console to ask closes the watcher with its own code; the user ends the watching on any pool.
Only the desktop's user can answer or end it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.console_helpers import (
    GREETING,
    FakeVnc,
    communicator,
    expect_close,
    opened,
    run,
    session_cookie,
    ticket_for,
    with_vnc,
)
from vdi.console.codes import CloseCode
from vdi.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def consent_desktop(running_desktop):
    running_desktop.pool.watch_consent = True
    running_desktop.pool.save()
    return running_desktop


async def watcher_asks(helpdesk: Any, desktop: Any) -> Any:
    session = await asyncio.to_thread(session_cookie, helpdesk)
    ws = communicator(desktop.pk, session,
                      await asyncio.to_thread(ticket_for, helpdesk, session, desktop))
    assert (await ws.connect())[0]
    assert json.loads(await ws.receive_from(timeout=5)) == {"notice": "asking_consent"}
    return ws


async def request_on(users: Any) -> dict[str, Any]:
    request: dict[str, Any] = json.loads(await users.receive_from(timeout=5))
    assert request["notice"] == "consent_request" and request["by"] == "helper"
    return request


def test_the_watcher_sees_nothing_until_the_user_allows(owner, helpdesk, consent_desktop):
    owner_session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        users = await opened(owner, owner_session, consent_desktop)
        watcher = await watcher_asks(helpdesk, consent_desktop)
        request = await request_on(users)
        assert vnc.connections == 1, "no VNC connection for the watcher yet"
        await watcher.send_to(text_data=json.dumps({"consent": request["token"], "allow": True}))
        assert await watcher.receive_nothing(timeout=0.3), "a watcher cannot answer for the user"
        await users.send_to(text_data=json.dumps({"consent": request["token"], "allow": True}))
        assert json.loads(await watcher.receive_from(timeout=5)) == {
            "notice": "consent_given", "by": "owner"}
        frames = {await watcher.receive_from(timeout=5) for _ in range(2)}
        assert frames == {GREETING, json.dumps({"notice": "view_only"})}, "now the screen"
        assert json.loads(await users.receive_from(timeout=5)) == {
            "notice": "watched", "by": "helper"}
        await watcher.disconnect()
        await users.disconnect()

    run(with_vnc, consent_desktop, body)
    assert AuditEvent.objects.filter(action="console.watch_allowed", actor=owner).count() == 1


def test_a_refusal_closes_the_watcher(owner, helpdesk, consent_desktop):
    owner_session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        users = await opened(owner, owner_session, consent_desktop)
        watcher = await watcher_asks(helpdesk, consent_desktop)
        request = await request_on(users)
        await users.send_to(text_data=json.dumps({"consent": request["token"], "allow": False}))
        assert await watcher.receive_output(timeout=5) == {
            "type": "websocket.close", "code": CloseCode.WATCH_REFUSED}
        assert vnc.connections == 1
        await users.disconnect()

    run(with_vnc, consent_desktop, body)


def test_silence_is_a_no(owner, helpdesk, consent_desktop, settings):
    settings.CONSOLE_CONSENT_TIMEOUT = 0.5
    owner_session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        users = await opened(owner, owner_session, consent_desktop)
        watcher = await watcher_asks(helpdesk, consent_desktop)
        assert await watcher.receive_output(timeout=5) == {
            "type": "websocket.close", "code": CloseCode.WATCH_REFUSED}
        await users.disconnect()

    run(with_vnc, consent_desktop, body)
    assert AuditEvent.objects.get(action="console.watch_refused").details["reason"] == "no answer"


def test_no_console_open_means_no_one_to_ask(helpdesk, consent_desktop):
    session = session_cookie(helpdesk)

    async def body(vnc: FakeVnc) -> None:
        ws = communicator(consent_desktop.pk, session,
                          await asyncio.to_thread(ticket_for, helpdesk, session, consent_desktop))
        await expect_close(ws, CloseCode.WATCH_REFUSED)

    run(with_vnc, consent_desktop, body)


def test_the_user_ends_the_watching_and_only_the_user_can(owner, helpdesk, running_desktop):
    owner_session, helper_session = session_cookie(owner), session_cookie(helpdesk)

    async def body(vnc: FakeVnc) -> None:
        users = await opened(owner, owner_session, running_desktop)
        watcher = await opened(helpdesk, helper_session, running_desktop)
        assert json.loads(await users.receive_from(timeout=5))["notice"] == "watched"
        await watcher.send_to(text_data=json.dumps({"end_watching": True}))
        assert await watcher.receive_nothing(timeout=0.3), "a watcher cannot end it for others"
        await users.send_to(text_data=json.dumps({"end_watching": True}))
        assert await watcher.receive_output(timeout=5) == {
            "type": "websocket.close", "code": CloseCode.WATCH_ENDED}
        assert json.loads(await users.receive_from(timeout=5)) == {
            "notice": "unwatched", "by": "helper"}
        await users.disconnect()

    run(with_vnc, running_desktop, body)
    assert AuditEvent.objects.filter(action="console.watch_ended", actor=owner).exists()
