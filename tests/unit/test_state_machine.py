"""Each user action is allowed from exactly its states; a refused claim changes nothing."""

from __future__ import annotations

import pytest

from vdi import actions, state
from vdi.choices import DesktopStatus as S
from vdi.models import DeletedDesktop, Desktop

ALLOWED = {
    "start": {S.STOPPED, S.ERROR},
    "stop": {S.RUNNING},
    "restart": {S.RUNNING},
    "delete": {S.RUNNING, S.STOPPED, S.ERROR},
    "reset": {S.RUNNING, S.STOPPED, S.ERROR},
    "release": {S.RUNNING, S.STOPPED, S.ERROR},
}
CASES = [(action, status) for action in ALLOWED for status in S]


@pytest.fixture
def desktop(owner, pool, host, image_version) -> Desktop:
    return Desktop.objects.create(
        owner=owner, pool=pool, host=host, image_version=image_version, domain_name="vditest-sm",
        disk_path="/nonexistent/sm.qcow2", serial_log_path="/nonexistent/sm.log", vcpus=1,
        memory_mib=256,
    )


@pytest.mark.parametrize(("action", "status"), CASES)
def test_claim_is_allowed_only_from_the_actions_states(desktop, action, status):
    Desktop.objects.filter(pk=desktop.pk).update(status=status)
    desktop.refresh_from_db()
    if status in ALLOWED[action]:
        state.claim(desktop, action)
        assert desktop.status == actions.get(action).claims
    else:
        with pytest.raises(state.TransitionRefused):
            state.claim(desktop, action)
        desktop.refresh_from_db()
        assert desktop.status == status


def test_a_second_claim_of_the_same_action_is_refused(desktop):
    Desktop.objects.filter(pk=desktop.pk).update(status=S.RUNNING)
    desktop.refresh_from_db()
    state.claim(desktop, "stop")
    with pytest.raises(state.TransitionRefused, match="it is stopping"):
        state.claim(desktop, "stop")


def test_success_moves_from_the_transitional_state_only(desktop):
    assert desktop.status == S.PROVISIONING
    assert state.succeed(desktop.pk, "provision")
    assert not state.succeed(desktop.pk, "provision"), "a duplicate completion changes nothing"
    desktop.refresh_from_db()
    assert desktop.status == S.RUNNING


def test_failure_records_the_error(desktop):
    assert state.fail(desktop.pk, "provision", "disk full")
    desktop.refresh_from_db()
    assert (desktop.status, desktop.last_error) == (S.ERROR, "disk full")
    assert not state.fail(desktop.pk, "provision", "again")


def test_allowed_actions_for_the_ui():
    assert state.allowed_actions(S.RUNNING) == ["stop", "restart", "delete", "reset", "release"]
    assert state.allowed_actions(S.STOPPED) == ["start", "delete", "reset", "release"]
    assert state.allowed_actions(S.PROVISIONING) == []


def test_a_deleted_desktop_leaves_the_table_and_is_kept_in_words(desktop, pool, image_version):
    Desktop.objects.filter(pk=desktop.pk).update(status=S.RUNNING)
    desktop.refresh_from_db()
    state.claim(desktop, "delete")
    assert state.succeed(desktop.pk, "delete")
    assert not Desktop.objects.filter(pk=desktop.pk).exists()
    record = DeletedDesktop.objects.get(desktop_id=desktop.pk)
    assert (record.name, record.pool_name, record.owner_name, record.image_version) == (
        f"Unit pool #{desktop.pk}", "Unit pool", "owner", "unit v1")
    assert not state.succeed(desktop.pk, "delete"), "a duplicate completion changes nothing"
    assert DeletedDesktop.objects.count() == 1
    assert not image_version.in_use(), "nothing pins the version any more"
    image_version.delete()
    pool.delete()


@pytest.mark.parametrize(("move", "kept"), [
    ((S.RUNNING, S.STOPPED), False),  # the reconciler: powered off outside the portal
    ((S.STOPPING, S.ERROR), False),  # a failed stop
    ((S.RUNNING, S.SNAPSHOTTING), True),  # a live snapshot: the guest goes on running
])
def test_a_guest_that_stops_leaves_no_facts_behind(desktop, move, kept):
    facts = {"hostname": "sm-1", "users": ["user"]}
    Desktop.objects.filter(pk=desktop.pk).update(status=move[0], guest_facts=facts)
    assert state.compare_and_set(desktop.pk, {move[0]}, move[1])
    desktop.refresh_from_db()
    assert desktop.guest_facts == (facts if kept else {})
