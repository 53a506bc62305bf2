"""Directory sign-in through the real sign-in page against a real slapd (tests/ldap_fixtures):
accounts made from the directory, nested groups granting pools, roles through the role map,
memberships taken away at the next sign-in, Active Directory's sAMAccountName and memberOf,
and a directory that is down or does not answer."""

from __future__ import annotations

import socket
import time

import ldap
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.ldap_fixtures import corp_env, use_directory
from vdi.choices import DesktopStatus
from vdi.ldap_backend import UNREACHABLE_MESSAGE
from vdi.models import AuditEvent, Desktop, DirectoryMembership, Pool
from vdi.roles import ADMINISTRATORS
from vdi.services.access import can_use_pool
from vdi.testing.slapd import AD, CORP

LOGIN = "/accounts/login/"
WRONG = "The username and/or password you specified are not correct."
User = get_user_model()


def sign_in(username: str, password: str, address: str = "198.51.100.20"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN, {"login": username, "password": password})
    return client, response


def signed_in(response) -> bool:
    return bool(response.status_code == 302 and response["Location"] == reverse("desktop-list"))


def groups_of(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


@pytest.fixture
def staff_pool(image_version) -> Pool:
    """A pool granted to the directory group ``staff`` only (alice is in it through
    ``engineering``)."""
    pool = Pool.objects.create(name="Staff desktops", image=image_version.image, vcpus=1,
                               memory_mib=256, max_per_user=1)
    pool.groups.add(Group.objects.create(name="staff"))
    return pool


def test_a_directory_user_signs_in_and_gets_an_account_from_the_directory(corp_directory):
    client, response = sign_in("alice", "alice-directory-secret")
    assert signed_in(response)
    alice = User.objects.get(username="alice")
    assert (alice.first_name, alice.last_name, alice.email) == (
        "Alice", "Liddell", "alice@corp.example")
    assert not alice.has_usable_password()
    assert client.get(reverse("desktop-list")).status_code == 200
    event = AuditEvent.objects.get(action="auth.login")
    assert (event.actor, event.source_address) == (alice, "198.51.100.20")


def test_a_wrong_directory_password_is_refused_and_audited(corp_directory):
    _client, response = sign_in("alice", "not-her-password")
    assert response.status_code == 200 and WRONG in response.content.decode()
    assert not User.objects.filter(username="alice").exists()
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.details == {"username": "alice"}


def test_directory_accounts_are_throttled_like_local_ones(corp_directory):
    for _ in range(5):
        sign_in("alice", "wrong", address="192.0.2.1")
    _client, refused = sign_in("alice", "alice-directory-secret", address="192.0.2.1")
    assert not signed_in(refused)
    assert "Too many failed login attempts" in refused.content.decode()
    assert AuditEvent.objects.filter(action="auth.login_throttled").exists()


def test_nested_groups_grant_the_pool_of_the_outer_group(corp_directory, staff_pool, host):
    client, response = sign_in("alice", "alice-directory-secret")
    assert signed_in(response)
    assert groups_of("alice") == {"engineering", "staff", "vdi-users"}
    alice = User.objects.get(username="alice")
    assert can_use_pool(alice, staff_pool)
    assert "Staff desktops" in client.get(reverse("desktop-list")).content.decode()
    warm = Desktop.objects.create(  # a row only: claimed, never booted
        pool=staff_pool, host=host, image_version=staff_pool.image.versions.get(),
        status=DesktopStatus.RUNNING, pristine=True, vcpus=1, memory_mib=256,
        domain_name="vdildap-warm", disk_path="/nonexistent/warm.qcow2",
        serial_log_path="/nonexistent/warm.log", vnc_host="127.0.0.1", vnc_port=1)
    claimed = client.post(reverse("pool-claim", args=[staff_pool.pk]))
    assert claimed["Location"] == reverse("desktop-console", args=[warm.pk])
    assert Desktop.objects.get(pk=warm.pk).owner == alice


def test_the_outsider_of_the_directory_group_gets_no_pool(corp_directory, staff_pool):
    client, response = sign_in("mallory", "mallory-directory-secret")
    assert signed_in(response)
    assert groups_of("mallory") == set()
    assert "Staff desktops" not in client.get(reverse("desktop-list")).content.decode()
    assert client.post(reverse("pool-claim", args=[staff_pool.pk])).status_code == 404


def test_the_role_map_gives_administrators(corp_directory):
    _client, response = sign_in("carol", "carol-directory-secret")
    assert signed_in(response)
    assert groups_of("carol") == {"vdi-admins", "vdi-users", ADMINISTRATORS}
    carol = User.objects.get(username="carol")
    assert carol.has_perm("vdi.change_pool")
    assert DirectoryMembership.objects.filter(user=carol, group__name=ADMINISTRATORS,
                                              directory_group="vdi-admins").exists()


def test_leaving_a_directory_group_takes_it_away_at_the_next_sign_in(corp_directory, image_version):
    pool = Pool.objects.create(name="Contractor desktops", image=image_version.image)
    pool.groups.add(Group.objects.create(name="contractors"))
    _client, response = sign_in("erin", "erin-directory-secret")
    assert signed_in(response)
    erin = User.objects.get(username="erin")
    assert can_use_pool(erin, pool)
    corp_directory.modify(CORP, "cn=contractors,ou=groups,dc=corp,dc=example", ldap.MOD_DELETE,
                          "member", "uid=erin,ou=people,dc=corp,dc=example")
    _client, again = sign_in("erin", "erin-directory-secret")
    assert signed_in(again)
    assert groups_of("erin") == {"vdi-users"}
    assert not can_use_pool(erin, pool)
    assert AuditEvent.objects.filter(action="directory.group_removed", actor=erin,
                                     details__directory_group="contractors").exists()


def test_a_disabled_account_is_refused_and_keeps_its_groups(corp_directory):
    assert signed_in(sign_in("erin", "erin-directory-secret")[1])
    User.objects.filter(username="erin").update(is_active=False)
    _client, refused = sign_in("erin", "erin-directory-secret")
    assert WRONG in refused.content.decode()
    assert AuditEvent.objects.filter(action="auth.login").count() == 1


def test_require_group_refuses_the_others(slapd, settings, db):
    use_directory(settings, corp_env(
        slapd.uri, VDI_LDAP_REQUIRE_GROUP="cn=vdi-users,ou=groups,dc=corp,dc=example"))
    assert signed_in(sign_in("alice", "alice-directory-secret")[1])  # through staff, nested
    _client, refused = sign_in("mallory", "mallory-directory-secret")
    assert WRONG in refused.content.decode()
    assert not User.objects.filter(username="mallory").exists()


def test_a_local_account_is_never_signed_in_by_the_directory(corp_directory, owner):
    _client, refused = sign_in("owner", "owner-directory-secret")  # the directory's "owner"
    assert not signed_in(refused)
    assert groups_of("owner") == set()
    assert signed_in(sign_in("owner", "owner-password")[1])  # the local password still works


def test_a_directory_account_gets_no_local_password(corp_directory):
    client, _response = sign_in("alice", "alice-directory-secret")
    page = client.post("/accounts/password/set/", {"password1": "a-local-Passw0rd!",
                                                   "password2": "a-local-Passw0rd!"})
    assert "changed there, not here" in page.content.decode()
    assert not User.objects.get(username="alice").has_usable_password()


def test_a_directory_account_gets_no_password_reset_mail(corp_directory):
    assert signed_in(sign_in("alice", "alice-directory-secret")[1])
    response = Client().post("/accounts/password/reset/", {"email": "alice@corp.example"})
    assert response.status_code == 302
    assert mail.outbox == []


def test_active_directory_sign_in_by_account_name_with_nested_member_of(ad_directory):
    assert ad_directory.read(AD, "cn=Desk,ou=Groups,dc=ad,dc=example", "memberOf") == [
        "cn=All Staff,ou=Groups,dc=ad,dc=example"]  # memberOf on groups, as AD keeps it
    _client, response = sign_in("bbuilder", "bob-directory-secret")
    assert signed_in(response)
    bob = User.objects.get(username="bbuilder")
    assert (bob.first_name, bob.last_name, bob.email) == ("Bob", "Builder", "bob@ad.example")
    # Desk -> All Staff <-> VDI Admins (a circle); Elsewhere is outside the group base.
    assert groups_of("bbuilder") == {"Desk", "All Staff", "VDI Admins", ADMINISTRATORS}
    assert not signed_in(sign_in("bbuilder", "wrong")[1])


def test_local_accounts_sign_in_while_the_directory_is_down(slapd, settings, owner):
    use_directory(settings, corp_env(f"ldap://127.0.0.1:{closed_port()}"))
    _client, refused = sign_in("alice", "alice-directory-secret")
    assert not signed_in(refused)
    page = refused.content.decode()
    assert "the directory is not answering just now" in page and "Traceback" not in page
    assert UNREACHABLE_MESSAGE.split(".")[0] in page
    assert signed_in(sign_in("owner", "owner-password")[1])


def test_a_directory_that_does_not_answer_does_not_hang_the_sign_in(slapd, settings, owner):
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        use_directory(settings, corp_env(f"ldap://127.0.0.1:{silent.getsockname()[1]}",
                                         VDI_LDAP_TIMEOUT="1"))
        started = time.monotonic()
        _client, refused = sign_in("alice", "alice-directory-secret")
        waited = time.monotonic() - started
        assert "the directory is not answering just now" in refused.content.decode()
        assert signed_in(sign_in("owner", "owner-password")[1])
    assert waited < 20, f"the sign-in waited {waited:.0f} s on a silent directory"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the probe is
