"""The audit log has no gaps: users, groups and permissions (however they change), bulk
deletes in the admin, sign-ins refused by the rate limit, two-factor devices, password
changes and resets; the CSV export quotes every cell a spreadsheet would evaluate."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.support import signed_in
from vdi.admin.audit import csv_safe
from vdi.models import AuditEvent

User = get_user_model()


def actions_of(**filters) -> list[str]:
    return list(AuditEvent.objects.filter(**filters).order_by("id").values_list("action",
                                                                               flat=True))


def test_user_changes_in_the_admin_are_audited_with_who_did_them(admin_user, owner):
    client = signed_in(admin_user)
    change = reverse("admin:auth_user_change", args=[owner.pk])
    form = client.get(change).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "password"}
    data.update({"username": "owner", "is_staff": "on", "is_active": "on",
                 "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
                 "groups": [Group.objects.get(name="Helpdesk").pk]})
    data.pop("user_permissions", None)
    data.pop("last_login", None)
    response = client.post(change, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    event = AuditEvent.objects.get(action="user.change")
    assert (event.actor, event.target_id, event.details["fields"], event.details["is_staff"]) \
        == (admin_user, str(owner.pk), ["is_staff"], True)
    joined = AuditEvent.objects.get(action="user.groups_added")
    assert joined.actor == admin_user and joined.details["names"] == ["Helpdesk"]


def test_group_and_permission_changes_are_audited(db):
    group = Group.objects.create(name="night-shift")
    group.permissions.add(Permission.objects.get(codename="stop_desktop"))
    person = User.objects.create_user("ann", password="x")
    group.user_set.add(person)
    person.user_permissions.add(Permission.objects.get(codename="view_desktop"))
    group.permissions.remove(Permission.objects.get(codename="stop_desktop"))
    group.delete()
    assert actions_of(target_type="auth.group", target_repr="night-shift") == [
        "group.add", "group.permissions_added", "group.members_added",
        "group.permissions_removed", "group.delete"]
    members = AuditEvent.objects.get(action="group.members_added")
    assert members.details["names"] == ["ann"]
    assert AuditEvent.objects.get(action="user.permissions_added").details["names"] == [
        "view_desktop"]


def test_bulk_deletes_of_users_are_audited_one_row_each(admin_user):
    people = [User.objects.create_user(f"temp{i}", password="x") for i in range(3)]
    signed_in(admin_user).post(reverse("admin:auth_user_changelist"), {
        "action": "delete_selected", "_selected_action": [p.pk for p in people],
        "post": "yes"})
    assert not User.objects.filter(username__startswith="temp").exists()
    deleted = AuditEvent.objects.filter(action="user.delete", actor=admin_user)
    assert sorted(e.target_repr for e in deleted) == ["temp0", "temp1", "temp2"]


def test_a_sign_in_refused_by_the_rate_limit_is_audited(owner, settings):
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "2/m/key"}
    client = Client()
    for _ in range(3):
        client.post("/accounts/login/", {"login": "owner", "password": "wrong"})
    throttled = AuditEvent.objects.get(action="auth.login_throttled")
    assert throttled.details == {"username": "owner"}
    assert throttled.source_address == "127.0.0.1"


def test_password_changes_and_resets_are_audited(owner):
    client = Client()
    client.force_login(owner)
    client.post("/accounts/password/change/", {
        "oldpassword": "owner-password", "password1": "Changed-pass-42",
        "password2": "Changed-pass-42"})
    changed = AuditEvent.objects.get(action="user.password_changed")
    assert changed.actor == owner and changed.target_id == str(owner.pk)

    owner.refresh_from_db()
    owner.email = "owner@example.org"
    owner.save()
    Client().post("/accounts/password/reset/", {"email": "owner@example.org"})
    link = next(line for line in mail.outbox[-1].body.splitlines() if "/reset/key/" in line)
    reset = Client()
    form_page = reset.get(link.strip(), follow=True)
    reset.post(form_page.redirect_chain[-1][0] if form_page.redirect_chain else link.strip(), {
        "password1": "Reset-pass-4242", "password2": "Reset-pass-4242"})
    assert actions_of(action="auth.password_reset") == ["auth.password_reset"]
    assert AuditEvent.objects.filter(action="user.password_changed").count() == 2


def test_two_factor_devices_are_audited(owner):
    from allauth.mfa.signals import authenticator_added, authenticator_removed
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    totp = TOTP.activate(owner, generate_totp_secret())
    authenticator_added.send(sender=type(totp.instance), request=None, user=owner,
                             authenticator=totp.instance)
    authenticator_removed.send(sender=type(totp.instance), request=None, user=owner,
                               authenticator=totp.instance)
    assert actions_of(target_id=str(owner.pk), action__startswith="mfa.") == [
        "mfa.added", "mfa.removed"]


def test_two_factor_set_up_through_the_pages_is_audited(owner,
                                                        django_capture_on_commit_callbacks):
    from allauth.mfa.totp.internal.auth import (
        SECRET_SESSION_KEY,
        hotp_value,
        yield_hotp_counters_from_time,
    )

    client = Client()
    client.force_login(owner)
    client.post("/accounts/reauthenticate/", {"password": "owner-password"})  # allauth asks
    client.get("/accounts/2fa/totp/activate/")
    secret = client.session[SECRET_SESSION_KEY]
    counter = next(iter(yield_hotp_counters_from_time()))
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/2fa/totp/activate/",
                    {"code": f"{hotp_value(secret, counter):06d}"})
    kinds = AuditEvent.objects.filter(action="mfa.added", actor=owner).values_list(
        "details__kind", flat=True)
    assert sorted(kinds) == ["recovery_codes", "totp"]


@pytest.mark.parametrize("dangerous", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_the_csv_export_quotes_every_cell_a_spreadsheet_would_evaluate(dangerous, admin_user):
    AuditEvent.objects.create(actor_name=dangerous, action=dangerous, target_type=dangerous,
                              target_id=dangerous, target_repr=dangerous, details={})
    response = signed_in(admin_user).post(reverse("admin:vdi_auditevent_changelist"), {
        "action": "export_audit_csv",
        "_selected_action": list(AuditEvent.objects.values_list("pk", flat=True))})
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    row = next(r for r in rows[1:] if r[2] == csv_safe(dangerous))
    assert all(cell == "" or not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
               for cell in row), row
    assert row[1] == "'" + dangerous
