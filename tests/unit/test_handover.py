"""Handing a persistent desktop, with its data, to another person: an explicit administrator
action (``services.desktops.hand_over`` and the admin action ``hand_over_desktops``). The
desktop must be stopped and of a persistent pool, the new owner entitled and within quota; it
gets a new console password, is not pristine, and is audited; open consoles close with
HANDED_OVER. Every refusal says why and changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.console_helpers import FakeVnc, opened, run, session_cookie, with_vnc
from tests.support import drain, signed_in
from vdi.choices import DesktopStatus
from vdi.console.codes import CloseCode
from vdi.models import AuditEvent, ConsoleTicket, Desktop, UserQuota
from vdi.services.console import issue_ticket
from vdi.services.desktops import hand_over
from vdi.services.errors import AccessDenied, ServiceError
from vdi.services.quotas import QuotaExceeded

ACTION = "hand_over_desktops"


@pytest.fixture
def stopped(persistent_desktop: Desktop) -> Desktop:
    """The owner's persistent desktop, stopped, with a console password."""
    Desktop.objects.filter(pk=persistent_desktop.pk).update(
        status=DesktopStatus.STOPPED, vnc_password="old-pass")
    persistent_desktop.refresh_from_db()
    return persistent_desktop


def unchanged(desktop: Desktop, owner: Any) -> None:
    before = (desktop.status, desktop.vnc_password)
    desktop.refresh_from_db()
    assert desktop.owner == owner, "still the previous owner's"
    assert (desktop.status, desktop.vnc_password) == before
    assert not AuditEvent.objects.filter(action="desktop.handover").exists()


@pytest.mark.django_db
def test_an_administrator_hands_a_stopped_persistent_desktop_over_with_its_data(
        administrator, owner, member, stopped, empty_queue, spy_driver,
        django_capture_on_commit_callbacks):
    running(stopped, member)
    issue_ticket(owner, "owner-session", stopped)  # a console ticket not used yet
    # whatever it said before (it can't be pristine with a data disk), it is not after
    Desktop.objects.filter(pk=stopped.pk).update(status=DesktopStatus.STOPPED, pristine=True)
    data_disk = stopped.data_disk_path
    with django_capture_on_commit_callbacks(execute=True):
        hand_over(administrator, stopped, member, "192.0.2.7")
    stopped.refresh_from_db()
    assert stopped.owner == member and stopped.assigned_at is not None
    assert stopped.status == DesktopStatus.STOPPED, "it starts when its new owner starts it"
    assert stopped.data_disk_path == data_disk, "the data goes with it"
    assert stopped.pristine is False, "someone's data is on it: never handed on by a claim"
    assert stopped.vnc_password and stopped.vnc_password != "old-pass", "a new console password"
    assert not ConsoleTicket.objects.filter(desktop=stopped, used_at__isnull=True).exists()
    event = AuditEvent.objects.get(action="desktop.handover")
    assert (event.actor, event.target_id, event.source_address) == (
        administrator, str(stopped.pk), "192.0.2.7")
    assert event.details == {"previous_owner": "owner", "new_owner": "member",
                             "with_data": True}
    assert drain(stopped.host.queue) == [] and spy_driver == [], "no worker, no hypervisor"


@pytest.mark.django_db
def test_the_pools_operator_may_hand_over_too(operator, member, stopped, empty_queue):
    hand_over(operator, stopped, member)
    stopped.refresh_from_db()
    assert stopped.owner == member


def non_persistent(desktop: Desktop, member: Any) -> None:
    assert desktop.pool is not None
    desktop.pool.persistence = "non_persistent"
    desktop.pool.save()


def running(desktop: Desktop, member: Any) -> None:
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    desktop.refresh_from_db()


def not_entitled(desktop: Desktop, member: Any) -> None:
    member.groups.clear()


def over_quota(desktop: Desktop, member: Any) -> None:
    UserQuota.objects.create(user=member, max_desktops=0, max_vcpus=8, max_memory_mib=8192)


def to_the_owner(desktop: Desktop, member: Any) -> None:
    Desktop.objects.filter(pk=desktop.pk).update(owner=member)
    desktop.refresh_from_db()


REFUSALS: dict[str, tuple[Callable[[Desktop, Any], None], type[Exception], str]] = {
    "not persistent": (non_persistent, ServiceError,
                       "Only a persistent desktop is handed over with its data"),
    "not stopped": (running, ServiceError, "before handing it over (it is running)"),
    "new owner not entitled": (not_entitled, ServiceError, "member may not use the pool Unit"),
    "new owner over quota": (over_quota, QuotaExceeded, "your limit is 0"),
    "already theirs": (to_the_owner, ServiceError, "already belongs to member"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_says_why_and_changes_nothing(case, administrator, owner, member, stopped,
                                                  empty_queue):
    arrange, error, words = REFUSALS[case]
    arrange(stopped, member)
    previous_owner = stopped.owner
    with pytest.raises(error) as refused:
        hand_over(administrator, stopped, member)
    assert words in str(refused.value)
    unchanged(stopped, previous_owner)


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["owner", "member", "helpdesk", "other_operator",
                                     "outsider", "disabled_user"])
def test_without_the_permission_nobody_hands_over(request, persona, owner, member, stopped):
    """Not even the owner: giving away one's data is an administrator's decision."""
    actor = request.getfixturevalue(persona)
    with pytest.raises(AccessDenied, match="You may not hand this desktop over"):
        hand_over(actor, stopped, member)
    unchanged(stopped, owner)


# --- the admin action -------------------------------------------------------------------------

def post_action(client: Any, desktop: Desktop, **form: Any) -> Any:
    return client.post("/admin/vdi/desktop/", {"action": ACTION,
                                               "_selected_action": [desktop.pk], **form})


@pytest.mark.django_db
def test_the_admin_action_asks_for_the_new_owner_and_a_confirmation_first(
        administrator, owner, member, stopped):
    client = signed_in(administrator)
    page = post_action(client, stopped)
    assert page.status_code == 200
    text = page.content.decode()
    assert "with all their data" in text and 'name="new_owner"' in text
    assert f'value="{stopped.pk}"' in text, "the selection is carried to the confirmation"
    unconfirmed = post_action(client, stopped, apply="Hand over", new_owner=member.pk)
    assert unconfirmed.status_code == 200 and "This field is required" in (
        unconfirmed.content.decode())
    unchanged(stopped, owner)


@pytest.mark.django_db
def test_the_admin_action_hands_over_once_confirmed(administrator, member, stopped,
                                                    django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(signed_in(administrator), stopped, apply="Hand over",
                               new_owner=member.pk, confirm="on")
    assert response.status_code == 302
    stopped.refresh_from_db()
    assert stopped.owner == member
    event = AuditEvent.objects.get(action="desktop.handover")
    assert event.actor == administrator and event.details["previous_owner"] == "owner"


@pytest.mark.django_db
def test_the_admin_action_reports_a_refusal(administrator, owner, member, stopped):
    running(stopped, member)
    response = post_action(signed_in(administrator), stopped, apply="Hand over",
                           new_owner=member.pk, confirm="on")
    assert response.status_code == 302
    shown = [str(m) for m in response.wsgi_request._messages]
    assert any("Stop" in m and "before handing it over" in m for m in shown), shown
    unchanged(stopped, owner)


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["helpdesk", "other_operator"])
def test_staff_without_the_permission_do_not_get_the_admin_action(request, persona, owner,
                                                                  member, stopped):
    client = signed_in(request.getfixturevalue(persona))
    listing = client.get("/admin/vdi/desktop/").content.decode()
    assert ACTION not in listing
    post_action(client, stopped, apply="Hand over", new_owner=member.pk, confirm="on")
    unchanged(stopped, owner)


# --- open consoles ----------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_hand_over_closes_the_open_consoles(administrator, owner, member, persistent_desktop,
                                             settings):
    """A console still open on the desktop (it was stopped behind its back) is closed with
    HANDED_OVER by the hand-over itself, not by the periodic check."""
    settings.CONSOLE_RECHECK = 120
    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        ws = await opened(owner, session, persistent_desktop)
        await asyncio.to_thread(Desktop.objects.filter(pk=persistent_desktop.pk).update,
                                status=DesktopStatus.STOPPED)
        await asyncio.to_thread(lambda: hand_over(
            administrator, Desktop.objects.get(pk=persistent_desktop.pk), member))
        assert await ws.receive_output(timeout=10) == {"type": "websocket.close",
                                                       "code": CloseCode.HANDED_OVER}
        await asyncio.wait_for(vnc.closed_by_peer.wait(), 5)

    run(with_vnc, persistent_desktop, body)
    revoked = AuditEvent.objects.get(action="console.revoked")
    assert revoked.actor == owner and revoked.details["code"] == CloseCode.HANDED_OVER
