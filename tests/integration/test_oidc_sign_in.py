"""Sign-in through a real OpenID Connect provider (django-oauth-toolkit in its own process on
127.0.0.1): the portal's side through Django's test client, the provider's through HTTP.

The account comes from the claims, its groups follow the directory at every sign-in, an
existing local account is never taken over, and a token or provider that can't be trusted is
refused."""

from __future__ import annotations

import base64
import json

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client

from tests.oidc_fixtures import ADA, portal_config, sign_in_with_oidc, use_oidc
from vdi.models import AuditEvent, DirectoryMembership, Pool
from vdi.oidc import SocialAccountAdapter
from vdi.testing.oidc_provider import DirectoryUser

pytestmark = pytest.mark.django_db
User = get_user_model()


def group_names(user) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def refused(response) -> bool:
    """allauth's error page for a sign-in through the provider that failed."""
    return (response.status_code == 401
            and "Third-Party Login Failure" in response.content.decode())


@pytest.fixture
def engineering_pool(image_version) -> Pool:
    pool = Pool.objects.create(name="Engineering desktops", image=image_version.image,
                               vcpus=1, memory_mib=256)
    pool.groups.add(Group.objects.create(name="engineering"))
    return pool


def test_first_sign_in_makes_the_account_from_the_claims(oidc, oidc_provider,
                                                         engineering_pool):
    oidc_provider.seed([ADA])
    client = Client(REMOTE_ADDR="198.51.100.20")
    response = sign_in_with_oidc(client)
    assert response.status_code == 302 and response["Location"] == "/"
    ada = User.objects.get(username="ada")
    assert (ada.email, ada.first_name, ada.last_name) == ("ada@corp.example", "Ada", "Lovelace")
    assert not ada.has_usable_password()
    assert group_names(ada) == {"engineering"}
    account = SocialAccount.objects.get(user=ada)
    assert account.provider == "oidc" and account.uid  # the provider's subject
    event = AuditEvent.objects.get(action="auth.login", actor=ada)
    assert event.details == {"method": "socialaccount", "provider": "oidc"}
    assert event.source_address == "198.51.100.20"
    assert mail.outbox == []  # no verification mail
    assert "Engineering desktops" in client.get("/").content.decode()


def test_groups_follow_the_directory_at_every_sign_in(oidc, oidc_provider):
    oidc_provider.seed([DirectoryUser("ada", ADA.password, ["engineering", "vdi-admins"])])
    sign_in_with_oidc(Client())
    ada = User.objects.get(username="ada")
    assert group_names(ada) == {"engineering", "vdi-admins", "Administrators"}

    oidc_provider.seed([DirectoryUser("ada", ADA.password, ["finance"])])
    response = sign_in_with_oidc(Client())
    assert response.status_code == 302
    assert User.objects.filter(username__startswith="ada").count() == 1  # the same account
    assert group_names(ada) == {"finance"}
    assert set(DirectoryMembership.objects.filter(user=ada).values_list(
        "source", "group__name")) == {("oidc:oidc", "finance")}


def test_an_existing_local_account_is_never_taken_over(oidc, oidc_provider):
    local = User.objects.create_user("ada", "ada@corp.example", "local-password")
    oidc_provider.seed([ADA])
    response = sign_in_with_oidc(Client())
    assert response.status_code == 302
    newcomer = SocialAccount.objects.get(provider="oidc").user
    assert newcomer != local and newcomer.username.startswith("ada")
    assert newcomer.email == ""  # the address is the local account's
    local.refresh_from_db()
    assert group_names(local) == set() and not SocialAccount.objects.filter(user=local).exists()
    assert Client().login(username="ada", password="local-password")


def test_a_signed_in_person_cannot_join_an_identity_to_their_account(oidc, oidc_provider,
                                                                     owner):
    oidc_provider.seed([ADA])
    client = Client()
    client.force_login(owner)
    response = sign_in_with_oidc(client, process="connect")
    assert response.status_code == 403
    assert not SocialAccount.objects.exists()
    assert AuditEvent.objects.filter(action="auth.oidc_connect_refused", actor=owner).exists()


def tamper(response, *args, **kwargs):
    """A man in the middle of the token endpoint: Ada's ID token says she is an admin."""
    if not response.url.endswith("/o/token/"):
        return response
    body = response.json()
    header, payload, signature = body["id_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = [*claims["groups"], "vdi-admins"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    body["id_token"] = f"{header}.{forged}.{signature}"
    response._content = json.dumps(body).encode()
    return response


@pytest.mark.parametrize("tampered", [False, True], ids=["as-signed", "changed-after-signing"])
def test_an_id_token_changed_after_signing_is_refused(oidc, oidc_provider, monkeypatch,
                                                      tampered):
    oidc_provider.seed([ADA])
    sessions = SocialAccountAdapter.get_requests_session

    def session_through_the_middle(self):
        session = sessions(self)
        session.hooks["response"].append(tamper if tampered else lambda r, *a, **k: r)
        return session

    monkeypatch.setattr(SocialAccountAdapter, "get_requests_session", session_through_the_middle)
    response = sign_in_with_oidc(Client())
    if not tampered:
        assert response.status_code == 302
        assert group_names(User.objects.get(username="ada")) == {"engineering"}
        return
    assert refused(response)
    assert not User.objects.filter(username="ada").exists()
    failure = AuditEvent.objects.get(action="auth.login_failed")
    assert failure.details["provider"] == "oidc"
    assert "Signature verification failed" in failure.details["reason"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"client_secret": "not-the-secret"}, "invalid_client"),
        ({"issuer": "localhost"}, "the provider names issuer"),
    ],
    ids=["wrong-client-secret", "another-issuer"],
)
def test_a_provider_that_is_not_the_configured_one_is_refused(oidc_provider, settings,
                                                              changes, reason):
    if changes.get("issuer") == "localhost":  # the same provider, found under another name
        changes["issuer"] = oidc_provider.issuer.replace("127.0.0.1", "localhost")
    use_oidc(settings, portal_config(oidc_provider, **changes))
    oidc_provider.seed([ADA])
    response = sign_in_with_oidc(Client())
    assert refused(response)
    assert not User.objects.filter(username="ada").exists()
    assert reason in AuditEvent.objects.get(action="auth.login_failed").details["reason"]
