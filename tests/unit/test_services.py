"""Services check access, claim the state, audit, record an Operation, enqueue on commit."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.support import drain, purge
from vdi.choices import DesktopStatus, OperationStatus
from vdi.models import AuditEvent, Desktop, Operation
from vdi.services.desktops import available_actions, create_desktop, request_action
from vdi.services.errors import AccessDenied, NoCapacity, NotReady, ServiceError
from vdi.state import TransitionRefused

pytestmark = pytest.mark.usefixtures("empty_queue")


def test_create_records_audit_operation_and_enqueues_after_commit(
    owner, pool, host, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        desktop = create_desktop(owner, pool, "192.0.2.7")
    assert drain(host.queue) == [], "nothing is sent before the transaction commits"
    assert desktop.status == DesktopStatus.PROVISIONING
    assert desktop.host == host and desktop.domain_name.startswith(f"{settings.DOMAIN_PREFIX}-")
    assert desktop.disk_path.endswith(f"{desktop.domain_name}.qcow2")
    operation = Operation.objects.get(desktop=desktop)
    assert (operation.kind, operation.status) == ("provision", OperationStatus.QUEUED)
    event = AuditEvent.objects.get(action="desktop.create")
    assert (event.actor, event.target_id, event.source_address) == (
        owner, str(desktop.pk), "192.0.2.7")
    assert event.details["pool"] == pool.name

    for callback in callbacks:
        callback()
    assert drain(host.queue) == [
        {"task": "vdi.desktop_action", "args": ["provision", desktop.pk, operation.pk]}
    ]


@pytest.mark.parametrize("action", ["stop", "restart", "delete"])
def test_action_on_running_desktop_enqueues_its_task(
    action, owner, pool, host, django_capture_on_commit_callbacks
):
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    purge(host.queue)
    with django_capture_on_commit_callbacks(execute=True):
        operation = request_action(owner, desktop, action, "198.51.100.1")
    assert drain(host.queue) == [
        {"task": "vdi.desktop_action", "args": [action, desktop.pk, operation.pk]}
    ]
    assert AuditEvent.objects.filter(action=f"desktop.{action}", actor=owner).count() == 1


def test_refused_action_changes_nothing_and_enqueues_nothing(
    owner, pool, host, django_capture_on_commit_callbacks
):
    desktop = create_desktop(owner, pool)
    purge(host.queue)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(TransitionRefused):
        request_action(owner, desktop, "stop")
    assert drain(host.queue) == []
    assert not AuditEvent.objects.filter(action="desktop.stop").exists()
    assert Operation.objects.filter(desktop=desktop).count() == 1


def test_outsider_may_not_act_on_someone_elses_desktop(
    owner, outsider, pool, host, django_capture_on_commit_callbacks
):
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    purge(host.queue)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(AccessDenied):
        request_action(outsider, desktop, "delete")
    assert drain(host.queue) == []
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.RUNNING


def test_admin_may_act_on_any_desktop(owner, admin_user, pool, host):
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.STOPPED)
    request_action(admin_user, desktop, "start")
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.STARTING


def test_a_staff_account_without_the_permission_may_not_act(owner, pool, host):
    """Being staff is not a permission: actions need the action's own permission."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    clerk = get_user_model().objects.create_user("clerk", password="x", is_staff=True)
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    with pytest.raises(AccessDenied):
        request_action(clerk, desktop, "stop")
    clerk.user_permissions.add(Permission.objects.get(codename="stop_desktop"))
    clerk = get_user_model().objects.get(pk=clerk.pk)  # a fresh permission cache
    request_action(clerk, desktop, "stop")
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.STOPPING


def test_available_actions_follow_state_role_and_pool_rules(owner, admin_user, pool, host):
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    desktop.refresh_from_db()
    names = [o.name for o in available_actions(owner, desktop)]
    assert names == ["stop", "restart", "delete", "reset", "release"]
    pool.assignment = "automatic"
    pool.save()
    desktop.refresh_from_db()
    assert "delete" not in [o.name for o in available_actions(owner, desktop)]
    assert "delete" in [o.name for o in available_actions(admin_user, desktop)], \
        "the owner rule does not bind someone who holds the permission"
    pool.assignment, pool.persistence = "dedicated", "persistent"
    pool.save()
    desktop.refresh_from_db()
    offers = {o.name: o for o in available_actions(owner, desktop)}
    assert "release" not in offers, "a persistent desktop is never released to someone else"
    assert "data disk" in offers["delete"].confirm and "kept" in offers["reset"].confirm
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.PROVISIONING)
    desktop.refresh_from_db()
    assert available_actions(owner, desktop) == []


def test_rules_hold_whoever_asks(owner, admin_user, pool, host):
    pool.persistence = "persistent"
    pool.save()
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    with pytest.raises(ServiceError, match="keeps its user's data"):
        request_action(admin_user, desktop, "release")
    with pytest.raises(KeyError):
        request_action(owner, desktop, "provision")


def test_disabled_user_and_disabled_pool_are_refused(disabled_user, owner, pool, host):
    with pytest.raises(AccessDenied):
        create_desktop(disabled_user, pool)
    pool.enabled = False
    pool.save()
    with pytest.raises(AccessDenied):
        create_desktop(owner, pool)
    assert not Desktop.objects.exists()


def test_no_ready_image_version_is_a_clear_error(owner, pool, image_version):
    image_version.status = "retired"
    image_version.save()
    with pytest.raises(NotReady, match="no ready version"):
        create_desktop(owner, pool)


def test_no_host_capacity_is_a_clear_error(owner, pool, host):
    host.memory_capacity_mib = 128
    host.save()
    with pytest.raises(NoCapacity, match="No host has room"):
        create_desktop(owner, pool)
    assert not Desktop.objects.exists()


def test_an_unreachable_task_queue_is_recorded_at_once(owner, pool, host, monkeypatch,
                                                       django_capture_on_commit_callbacks):
    """Redis down (simulated at the publish call): the desktop says why instead of waiting."""
    from kombu.exceptions import OperationalError

    from vdi.services import dispatch

    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(dispatch, "send", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        desktop = create_desktop(owner, pool)
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.ERROR
    assert "task queue is unreachable" in desktop.last_error
    assert "Connection refused" in desktop.error_detail, "the raw cause is for operators"
    operation = Operation.objects.get(desktop=desktop)
    assert operation.status == OperationStatus.FAILED and "Connection refused" in operation.detail
