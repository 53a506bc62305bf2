"""Sign-in through django-allauth: audit, throttling, no sign-up, password reset, the admin
behind the same sign-in, and two-factor for administrators."""

from __future__ import annotations

import pytest
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    yield_hotp_counters_from_time,
)
from django.core import mail
from django.test import Client
from django.urls import reverse

from vdi.models import AuditEvent

LOGIN = "/accounts/login/"


def sign_in(client: Client, username: str, password: str):
    return client.post(LOGIN, {"login": username, "password": password})


def test_sign_in_and_out_are_audited(owner):
    client = Client(REMOTE_ADDR="198.51.100.7")
    response = sign_in(client, "owner", "owner-password")
    assert response.status_code == 302
    assert client.get(reverse("desktop-list")).status_code == 200
    event = AuditEvent.objects.get(action="auth.login")
    assert (event.actor, event.source_address) == (owner, "198.51.100.7")
    client.post("/accounts/logout/")
    assert AuditEvent.objects.filter(action="auth.logout", actor=owner).exists()


def test_failed_sign_in_is_audited_with_the_name_tried(owner):
    response = sign_in(Client(REMOTE_ADDR="203.0.113.9"), "owner", "wrong")
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.details == {"username": "owner"} and event.source_address == "203.0.113.9"


def test_an_account_is_throttled_after_repeated_failures_from_one_address(owner):
    for _ in range(5):
        sign_in(Client(REMOTE_ADDR="192.0.2.1"), "owner", "wrong")
    refused = sign_in(Client(REMOTE_ADDR="192.0.2.1"), "owner", "owner-password")
    assert refused.status_code != 302, "even the right password waits after 5 failures"
    assert "Too many failed login attempts" in refused.content.decode()


def test_nobody_elsewhere_can_lock_an_account_out(owner):
    """Wrong passwords for someone else's account (the administrator's) from one address
    throttle that address, not the account's owner signing in from their own."""
    attacker = Client(REMOTE_ADDR="203.0.113.66")
    for _ in range(10):
        sign_in(attacker, "owner", "wrong")
    assert "Too many failed login attempts" in \
        sign_in(attacker, "owner", "owner-password").content.decode()
    assert sign_in(Client(REMOTE_ADDR="198.51.100.20"), "owner", "owner-password"
                   ).status_code == 302, "the owner, from their own address, signs in"


def test_an_address_is_throttled_across_accounts(owner, outsider):
    client = Client(REMOTE_ADDR="192.0.2.200")
    for attempt in range(10):
        sign_in(client, f"nobody{attempt}", "wrong")
    refused = sign_in(client, "outsider", "outsider-password")
    assert refused.status_code != 302
    assert "Too many failed login attempts" in refused.content.decode()


def test_there_is_no_self_sign_up(db):
    page = Client().get("/accounts/signup/").content.decode()
    assert "Sign Up Closed" in page


def test_password_reset_sends_a_link(owner):
    owner.email = "owner@example.org"
    owner.save()
    response = Client().post("/accounts/password/reset/", {"email": "owner@example.org"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and "/accounts/password/reset/key/" in mail.outbox[0].body


def test_the_admin_signs_in_through_the_same_page(db):
    response = Client().get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


def totp_code(secret: str) -> str:
    counter = next(iter(yield_hotp_counters_from_time()))
    return str(format_hotp_value(hotp_value(secret, counter)))


def test_admins_must_set_up_two_factor_when_configured(admin_user, settings):
    settings.ADMIN_REQUIRE_2FA = True
    client = Client()
    assert sign_in(client, "boss", "boss-password").status_code == 302
    for path in ("/", "/admin/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == "/accounts/2fa/totp/activate/"
    setup = client.get("/accounts/2fa/totp/activate/")
    assert setup.status_code == 302 and "/accounts/reauthenticate/" in setup["Location"]
    client.post("/accounts/reauthenticate/", {"password": "boss-password"})
    page = client.get("/accounts/2fa/totp/activate/").content.decode()
    assert "Activate Authenticator App" in page

    TOTP.activate(admin_user, generate_totp_secret())
    assert client.get("/admin/").status_code == 200


def test_users_are_not_forced_into_two_factor(owner, settings):
    settings.ADMIN_REQUIRE_2FA = True
    client = Client()
    client.force_login(owner)
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("good_code", [True, False])
def test_sign_in_asks_for_the_code_once_two_factor_is_on(admin_user, good_code):
    secret = generate_totp_secret()
    TOTP.activate(admin_user, secret)
    client = Client()
    response = sign_in(client, "boss", "boss-password")
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/authenticate/"
    assert client.get("/admin/").status_code == 302, "not signed in before the code"
    code = totp_code(secret) if good_code else "000000"
    client.post("/accounts/2fa/authenticate/", {"code": code})
    assert (client.get("/admin/").status_code == 200) is good_code


def test_signing_out_ends_the_session_in_every_browser(owner):
    laptop, phone = Client(REMOTE_ADDR="192.0.2.10"), Client(REMOTE_ADDR="192.0.2.11")
    for client in (laptop, phone):
        assert sign_in(client, "owner", "owner-password").status_code == 302
        assert client.get(reverse("desktop-list")).status_code == 200
    laptop.post("/accounts/logout/")
    response = phone.get(reverse("desktop-list"))
    assert response.status_code == 302 and LOGIN in response["Location"]


def test_the_sign_in_page_does_not_offer_a_sign_up(db):
    page = Client().get(LOGIN).content.decode()
    assert "sign up" not in page.lower() and "your administrator" in page
