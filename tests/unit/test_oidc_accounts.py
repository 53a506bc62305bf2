"""From OpenID Connect claims to a portal account and its groups, and the sign-in page's
button (no provider needed here: tests/integration/test_oidc_sign_in.py has the real one)."""

from __future__ import annotations

import re

import pytest
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.models import SocialAccount, SocialLogin
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.test import Client, RequestFactory

from portal.oidc import OidcConfig
from tests.oidc_fixtures import use_oidc
from vdi.models import AuditEvent
from vdi.oidc import claims_of, directory_groups, sync_directory_groups
from vdi.roles import ADMINISTRATORS
from vdi.testing.processes import free_port

User = get_user_model()
CONFIG = OidcConfig(issuer="https://id.example.org", client_id="vdi-portal",
                    client_secret="s3cret", name="Corp ID",
                    role_map={ADMINISTRATORS: "vdi-admins"})


@pytest.fixture
def oidc_on(settings) -> OidcConfig:
    return use_oidc(settings, CONFIG)


def group_names(user) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def test_userinfo_overlays_the_id_token():
    claims = claims_of({"id_token": {"sub": "7", "groups": ["old"], "email": "a@x"},
                        "userinfo": {"sub": "7", "groups": ["new"]}})
    assert claims == {"sub": "7", "groups": ["new"], "email": "a@x"}


@pytest.mark.parametrize(
    ("value", "groups"),
    [(["a", "b"], ["a", "b"]), ("solo", ["solo"]), (["a", 3, None], ["a"]), ({"a": 1}, []),
     (None, [])],
)
def test_the_groups_claim_is_a_list_or_one_name(value, groups):
    assert directory_groups({"groups": value}, "groups") == groups


def signed_in(user, provider: str, **claims) -> SocialLogin:
    account = SocialAccount.objects.create(user=user, provider=provider, uid="sub-1",
                                           extra_data={"userinfo": claims})
    return SocialLogin(account=account, user=user)


def test_the_groups_claim_sets_groups_and_roles_through_the_role_map(oidc_on, owner):
    sync_directory_groups(owner, signed_in(owner, "oidc", groups=["engineering", "vdi-admins"]))
    assert group_names(owner) == {"engineering", "vdi-admins", ADMINISTRATORS}


def test_a_sign_in_without_the_claim_takes_the_directory_s_groups_away(oidc_on, owner):
    sync_directory_groups(owner, signed_in(owner, "oidc", groups=["engineering"]))
    SocialAccount.objects.all().delete()
    sync_directory_groups(owner, signed_in(owner, "oidc"))
    assert group_names(owner) == set()


def test_another_provider_s_claims_change_nothing(oidc_on, owner):
    sync_directory_groups(owner, signed_in(owner, "elsewhere", groups=["engineering"]))
    assert group_names(owner) == set()


def new_login(**claims) -> SocialLogin:
    """allauth's own path from a provider's answer to an (unsaved) account."""
    request = RequestFactory().get("/")
    provider = get_adapter().get_provider(request, "oidc")
    return provider.sociallogin_from_response(request, {"userinfo": {"sub": "42", **claims}})


def test_a_new_account_takes_its_names_from_the_claims(oidc_on, db):
    login = new_login(preferred_username="ada", email="ada@corp.example", given_name="Ada",
                      family_name="Lovelace")
    user = login.user
    assert (user.username, user.email, user.first_name, user.last_name) == (
        "ada", "ada@corp.example", "Ada", "Lovelace")


@pytest.mark.parametrize("claim", ["Zoë Ünïcode!", "ada@corp.example", "", None])
def test_the_username_is_made_valid(oidc_on, db, claim):
    username = new_login(preferred_username=claim).user.username
    UnicodeUsernameValidator()(username)
    assert re.fullmatch(r"[a-z0-9_.+-]+", username)


def test_the_username_is_made_unique_and_a_taken_email_is_not_shared(oidc_on, db):
    User.objects.create_user("ada", "ada@corp.example", "local-password")
    login = new_login(preferred_username="ada", email="ada@corp.example")
    assert login.user.username != "ada" and login.user.username.startswith("ada")
    assert login.user.email == "" and login.email_addresses == []


def test_the_username_claim_is_configurable(settings, db):
    use_oidc(settings, OidcConfig(**{**CONFIG.__dict__, "username_claim": "upn"}))
    assert new_login(preferred_username="x", upn="grace").user.username == "grace"


def test_without_a_provider_the_page_has_only_the_password_form(db):
    page = Client().get("/accounts/login/").content.decode()
    assert "single-sign-on" not in page and "/accounts/oidc/" not in page


def test_the_sign_in_page_has_the_provider_s_button_beside_the_password(oidc_on, owner):
    client = Client()
    page = client.get("/accounts/login/?next=/preferences/").content.decode()
    form = re.search(r'<form method="post" action="/accounts/oidc/oidc/login/'
                     r'\?next=%2Fpreferences%2F"[^>]*>(.*?)</form>', page, re.S)
    assert form, page
    assert 'name="csrfmiddlewaretoken"' in form[1]
    assert "Sign in with Corp ID</button>" in form[1]
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "no inline script (CSP)"
    response = client.post("/accounts/login/", {"login": "owner", "password": "owner-password"})
    assert response.status_code == 302  # the password still signs in


def test_local_sign_up_stays_closed_with_a_provider(oidc_on, db):
    assert "Sign Up Closed" in Client().get("/accounts/signup/").content.decode()


def test_a_provider_that_does_not_answer_is_an_error_page_and_audited(settings, db):
    use_oidc(settings, OidcConfig(**{**CONFIG.__dict__,
                                     "issuer": f"http://127.0.0.1:{free_port()}/o"}))
    response = Client().post("/accounts/oidc/oidc/login/")
    assert response.status_code == 401
    assert "Third-Party Login Failure" in response.content.decode()
    failure = AuditEvent.objects.get(action="auth.login_failed")
    assert failure.details["provider"] == "oidc" and "Connection" in failure.details["reason"]


def test_an_unknown_provider_is_not_found(oidc_on, db):
    assert Client().post("/accounts/oidc/nobody/login/").status_code == 404


def test_a_directory_account_signs_in_through_its_provider_only(oidc_on, owner, settings):
    SocialAccount.objects.create(user=owner, provider="oidc", uid="sub-1")
    client = Client()
    response = client.post("/accounts/login/", {"login": "owner", "password": "owner-password"})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302  # not signed in
    assert "owner signs in with Corp ID" in client.get("/accounts/login/").content.decode()
    assert AuditEvent.objects.filter(action="auth.login_refused", actor=owner).exists()
    settings.OIDC = None  # the provider is no longer configured: the password is back
    assert Client().post("/accounts/login/", {"login": "owner",
                                              "password": "owner-password"})["Location"] == "/"
