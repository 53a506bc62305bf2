"""Changing one's password from the settings page (allauth's own view, in the portal's
pages): a local account changes it and stays signed in, its API tokens are revoked (its
consoles close: tests/unit/test_console_access.py); a directory account (LDAP, or the OpenID
Connect provider's) is not offered it and is told its password is changed in the directory."""

from __future__ import annotations

import pytest
from allauth.socialaccount.models import SocialAccount
from django.test import Client
from django.urls import reverse

from portal.oidc import OidcConfig
from tests.oidc_fixtures import use_oidc
from vdi.accounts import DIRECTORY_ACCOUNT
from vdi.models import ApiToken, AuditEvent
from vdi.services import tokens

pytestmark = pytest.mark.django_db

CHANGE = reverse("account_change_password")
NEW = "A-new-pass-4-owner"


def signed_in_by_password(username: str, password: str) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"login": username, "password": password})
    assert response.status_code == 302, response.content[:300]
    return client


def change(client: Client, old: str, new: str = NEW):
    return client.post(CHANGE, {"oldpassword": old, "password1": new, "password2": new},
                       follow=True)


@pytest.fixture
def directory_account(owner):
    """An account as the LDAP backend makes it: no local password."""
    owner.set_unusable_password()
    owner.save()
    return owner


@pytest.fixture
def provider_account(owner, settings):
    """An account of the configured OpenID Connect provider that an administrator once gave
    a local password."""
    use_oidc(settings, OidcConfig(issuer="https://id.example.org", client_id="vdi-portal",
                                  client_secret="s3cret", name="Corp ID"))
    SocialAccount.objects.create(user=owner, provider="oidc", uid="sub-1")
    return owner


def test_settings_link_a_local_account_to_its_password_change(owner):
    client = signed_in_by_password("owner", "owner-password")
    settings_page = client.get(reverse("preferences")).content.decode()
    assert f'<a href="{CHANGE}">Change your password</a>' in settings_page
    page = client.get(CHANGE).content.decode()
    assert "<h1>Change your password</h1>" in page
    assert 'name="oldpassword"' in page and 'name="password1"' in page
    assert '<header class="topbar">' in page and '/static/vdi/portal.' in page, "a portal page"


def test_a_changed_password_keeps_its_owner_signed_in_and_revokes_their_tokens(owner):
    made = tokens.make(owner, "ci", ["read"], 30)
    client = signed_in_by_password("owner", "owner-password")
    response = change(client, "owner-password")
    assert response.redirect_chain == [(reverse("preferences"), 302)]
    assert "Password successfully changed." in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password(NEW) and not owner.check_password("owner-password")
    assert client.get(reverse("desktop-list")).status_code == 200, "still signed in"
    assert ApiToken.objects.get(pk=made.token.pk).revoked_at is not None
    assert tokens.authenticate(made.key) is None
    assert AuditEvent.objects.filter(action="user.password_changed",
                                     target_id=str(owner.pk)).exists()
    assert Client().post("/accounts/login/", {"login": "owner", "password": NEW}
                         ).status_code == 302, "the new password signs in"


def test_a_wrong_current_password_changes_nothing(owner):
    made = tokens.make(owner, "ci", ["read"], 30)
    client = signed_in_by_password("owner", "owner-password")
    response = change(client, "not-my-password")
    assert response.redirect_chain == []
    assert "Please type your current password." in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password("owner-password")
    assert ApiToken.objects.get(pk=made.token.pk).revoked_at is None


def test_a_directory_account_is_told_its_password_is_changed_in_the_directory(
        directory_account):
    client = Client()
    client.force_login(directory_account)
    settings_page = client.get(reverse("preferences")).content.decode()
    assert CHANGE not in settings_page
    assert DIRECTORY_ACCOUNT in settings_page.replace("&#x27;", "'")
    page = client.get(CHANGE, follow=True)
    text = page.content.decode().replace("&#x27;", "'")
    assert DIRECTORY_ACCOUNT in text and 'name="password1"' not in text, "no form"
    change(client, "")
    directory_account.refresh_from_db()
    assert not directory_account.has_usable_password()


def test_an_account_of_the_provider_is_not_offered_the_password_it_was_given(
        provider_account):
    made = tokens.make(provider_account, "ci", ["read"], 30)
    client = Client()
    client.force_login(provider_account)
    settings_page = client.get(reverse("preferences")).content.decode()
    assert CHANGE not in settings_page
    assert DIRECTORY_ACCOUNT in settings_page.replace("&#x27;", "'")
    page = client.get(CHANGE).content.decode().replace("&#x27;", "'")
    assert DIRECTORY_ACCOUNT in page and 'name="oldpassword"' not in page
    response = change(client, "owner-password")
    assert DIRECTORY_ACCOUNT in response.content.decode().replace("&#x27;", "'")
    provider_account.refresh_from_db()
    assert provider_account.check_password("owner-password"), "unchanged"
    assert ApiToken.objects.get(pk=made.token.pk).revoked_at is None
