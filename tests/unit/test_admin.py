"""The admin: every page shows what exists, and every change (edits, drain, the desktop
actions, bulk deletes) goes through a service, with its rules and its audit row."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from tests.support import drain, make_version, signed_in
from vdi.choices import DesktopStatus
from vdi.models import AuditEvent, Desktop, GoldenImage, ImageVersion, Pool
from vdi.services.desktops import create_desktop, request_action

pytestmark = pytest.mark.usefixtures("empty_queue")


def running(owner, pool) -> Desktop:
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    desktop.refresh_from_db()
    return desktop


def admin_action(client, model: str, action: str, pks: list[int]):
    return client.post(reverse(f"admin:vdi_{model}_changelist"),
                       {"action": action, "_selected_action": pks}, follow=True)


def test_admin_pages_list_what_exists(admin_user, owner, pool, host):
    desktop = create_desktop(owner, pool)
    client = signed_in(admin_user)
    expected = {"host": host.name, "goldenimage": pool.image.name,
                "imageversion": str(desktop.image_version), "pool": pool.name,
                "desktop": desktop.domain_name, "operation": str(desktop),
                "auditevent": "desktop.create"}
    for name, shown in expected.items():
        page = client.get(reverse(f"admin:vdi_{name}_changelist"))
        assert page.status_code == 200 and shown in page.content.decode(), name
    body = client.get(reverse("admin:vdi_desktop_change", args=[desktop.pk])).content.decode()
    assert desktop.domain_name in body and desktop.disk_path in body
    assert desktop.vnc_password not in body, "the VNC password is not shown"
    actions = client.get(reverse("admin:vdi_desktop_changelist")).context["action_form"]
    offered = {value for value, _label in actions.fields["action"].choices}
    assert {"start_desktops", "stop_desktops", "release_desktops", "delete_desktops"} <= offered


def test_the_admin_desktop_page_shows_the_guests_facts_in_words(admin_user, owner, pool,
                                                                host):
    desktop = create_desktop(owner, pool)
    client = signed_in(admin_user)
    change = reverse("admin:vdi_desktop_change", args=[desktop.pk])
    assert 'class="guest-facts"' not in client.get(change).content.decode(), "nothing yet"
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING, guest_facts={
        "os": "Debian GNU/Linux 12 <bookworm>", "hostname": "unit-pool-7",
        "addresses": ["10.100.7.129", "fe80::1"], "users": ["user", "<b>eve</b>"],
        "shared": [{"name": "notes.txt", "size": 5}]})
    body = client.get(change).content.decode()
    assert ('<dl class="guest-facts"><dt>Operating system</dt><dd>Debian GNU/Linux 12 '
            "&lt;bookworm&gt;</dd><dt>Host name</dt><dd>unit-pool-7</dd><dt>Addresses</dt>"
            "<dd>10.100.7.129, fe80::1</dd><dt>Signed in</dt><dd>user, &lt;b&gt;eve&lt;/b&gt;"
            "</dd></dl>") in body
    assert "<b>eve</b>" not in body and "&quot;addresses&quot;" not in body, "not raw JSON"


def test_admin_changes_and_actions_are_audited(owner, admin_user, pool, host):
    from vdi.models import AuditEvent

    client = signed_in(admin_user)
    change = reverse("admin:vdi_pool_change", args=[pool.pk])
    form = {"name": "Renamed", "image": pool.image_id, "vcpus": 2, "memory_mib": 512,
            "description": "", "enabled": "on", "assignment": "dedicated",
            "persistence": "non_persistent", "data_disk_gib": 1, "min_ready": 0, "max_size": 5,
            "max_per_user": 3, "idle_minutes": 0, "max_session_minutes": 0,
            "network_mode": "none", "clipboard": "to_guest", "display_protocol": "vnc",
            "max_snapshots": 100, "max_snapshot_gib": 200, "backup_every_hours": 0,
            "backup_keep_last": 3, "backup_keep_daily": 7, "backup_keep_weekly": 4,
            "version_policy": "latest", "rollout_canary_percent": 20,
            "rollout_max_failed_percent": 0, "rollout_health_seconds": 300,
            "users": [owner.pk], "desktops-TOTAL_FORMS": 0, "desktops-INITIAL_FORMS": 0}
    assert client.post(change, form).status_code == 302
    event = AuditEvent.objects.get(action="pool.change")
    assert event.actor == admin_user and set(event.details["fields"]) >= {"name", "vcpus",
                                                                           "clipboard"}

    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    client.post(reverse("admin:vdi_desktop_changelist"),
                {"action": "stop_desktops", "_selected_action": [desktop.pk]})
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.STOPPING
    assert AuditEvent.objects.filter(action="desktop.stop", actor=admin_user).exists()


def test_admin_exports_the_audit_log_as_csv(admin_user, owner, pool, host):
    from vdi.models import AuditEvent

    pool.name = "=HYPERLINK(evil)"
    pool.save()
    create_desktop(owner, pool, "192.0.2.4")
    events = list(AuditEvent.objects.values_list("pk", flat=True))
    response = signed_in(admin_user).post(
        reverse("admin:vdi_auditevent_changelist"),
        {"action": "export_audit_csv", "_selected_action": events},
    )
    assert response["Content-Type"].startswith("text/csv")
    body = response.content.decode()
    assert body.splitlines()[0].startswith("time,actor,action,target_type")
    assert "desktop.create" in body and "192.0.2.4" in body
    assert "'=HYPERLINK" in body, "a name can't become a spreadsheet formula"
    assert AuditEvent.objects.filter(action="audit.export", actor=admin_user).exists()


def test_admin_filters_the_audit_log(admin_user, owner, pool, host):
    desktop = create_desktop(owner, pool)
    signed_in(owner).post(reverse("desktop-action", args=[desktop.pk, "delete"]))  # refused
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    request_action(owner, desktop, "stop")
    client = signed_in(admin_user)
    page = client.get(reverse("admin:vdi_auditevent_changelist"), {"action": "desktop.create"})
    shown = [event.action for event in page.context["cl"].result_list]
    assert shown == ["desktop.create"], "only the chosen action is listed"
    page = client.get(reverse("admin:vdi_auditevent_changelist"), {"action": "desktop.stop"})
    shown = [(event.action, event.actor) for event in page.context["cl"].result_list]
    assert shown == [("desktop.stop", owner)]


def test_drain_and_undrain_go_through_the_service(admin_user, pool):
    client = signed_in(admin_user)
    admin_action(client, "pool", "drain_pools", [pool.pk])
    pool.refresh_from_db()
    assert pool.draining
    admin_action(client, "pool", "drain_pools", [pool.pk])  # already draining: no new row
    assert AuditEvent.objects.filter(action="pool.drain", actor=admin_user).count() == 1
    admin_action(client, "pool", "undrain_pools", [pool.pk])
    pool.refresh_from_db()
    assert not pool.draining
    assert AuditEvent.objects.filter(action="pool.undrain", target_id=str(pool.pk)).exists()


def test_force_release_and_reset_from_the_admin(admin_user, owner, pool, host,
                                                django_capture_on_commit_callbacks):
    desktop = running(owner, pool)
    client = signed_in(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        page = admin_action(client, "desktop", "release_desktops", [desktop.pk])
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.RESETTING and desktop.owner is None
    event = AuditEvent.objects.get(action="desktop.release")
    assert event.actor == admin_user and event.details == {"via": "admin"}
    assert "Release: requested for 1 desktop(s)." in page.content.decode()
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.STOPPED)
    with django_capture_on_commit_callbacks(execute=True):
        admin_action(client, "desktop", "reset_desktops", [desktop.pk])
    assert [m["args"][0] for m in drain(host.queue)] == ["release", "reset"]


def test_admin_rules_hold_a_persistent_desktop_is_not_force_released(
        admin_user, owner, pool, host):
    pool.persistence = "persistent"
    pool.save()
    desktop = running(owner, pool)
    page = admin_action(signed_in(admin_user), "desktop", "release_desktops", [desktop.pk])
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.RUNNING and desktop.owner == owner
    assert "keeps its user&#x27;s data" in page.content.decode()
    assert not AuditEvent.objects.filter(action="desktop.release").exists()


def test_staff_sees_only_the_desktop_actions_it_holds(owner, pool, host):
    clerk = get_user_model().objects.create_user("clerk", password="x", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(
        codename__in=["view_desktop", "stop_desktop"]))
    desktop = running(owner, pool)
    client = signed_in(clerk)
    form = client.get(reverse("admin:vdi_desktop_changelist")).context["action_form"]
    offered = {value for value, _label in form.fields["action"].choices if value}
    assert offered == {"stop_desktops"}
    admin_action(client, "desktop", "delete_desktops", [desktop.pk])
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.RUNNING, "an action it does not hold does nothing"


def test_bulk_deletes_are_audited_one_row_each(admin_user, image_version):
    pools = [Pool.objects.create(name=f"Spare {i}", image=image_version.image) for i in (1, 2)]
    page = admin_action(signed_in(admin_user), "pool", "delete_selected",
                        [p.pk for p in pools])
    assert page.status_code == 200  # the confirmation page
    signed_in(admin_user).post(reverse("admin:vdi_pool_changelist"), {
        "action": "delete_selected", "_selected_action": [p.pk for p in pools],
        "post": "yes"})
    assert not Pool.objects.filter(pk__in=[p.pk for p in pools]).exists()
    deleted = AuditEvent.objects.filter(action="pool.delete", actor=admin_user)
    assert sorted(e.target_repr for e in deleted) == ["Spare 1", "Spare 2"]


def test_a_pool_with_desktops_can_not_be_deleted(admin_user, owner, pool, host):
    running(owner, pool)
    signed_in(admin_user).post(reverse("admin:vdi_pool_delete", args=[pool.pk]), {"post": "yes"})
    assert Pool.objects.filter(pk=pool.pk).exists()
    assert not AuditEvent.objects.filter(action="pool.delete").exists()


def test_deleting_an_unused_version_removes_its_files_through_a_worker(
        admin_user, tmp_path, settings, django_capture_on_commit_callbacks):
    from tests.support import purge
    from vdi.services.records import FILES_QUEUE

    purge(FILES_QUEUE)
    version = make_version("spare", str(tmp_path / "spare" / "v1" / "disk.qcow2"))
    with django_capture_on_commit_callbacks(execute=True):
        signed_in(admin_user).post(reverse("admin:vdi_imageversion_delete", args=[version.pk]),
                                   {"post": "yes"})
    assert not ImageVersion.objects.filter(pk=version.pk).exists()
    assert drain(FILES_QUEUE) == [{"task": "vdi.remove_version_files",
                                   "args": [[version.disk_path]]}]
    assert AuditEvent.objects.filter(action="imageversion.delete").exists()
    assert GoldenImage.objects.filter(name="spare").exists()
    assert Path(version.disk_path).name == "disk.qcow2"
