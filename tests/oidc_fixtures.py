"""A real OpenID Connect provider (django-oauth-toolkit, ``vdi.testing.oidc_provider``) for
the sign-in tests, and the portal configured to use it. Loaded by ``tests/conftest.py``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from django.test import Client as DjangoClient

from portal.oidc import OidcConfig, socialaccount_settings
from vdi.testing.oidc_provider import Client, DirectoryUser, OidcProvider

CLIENT_ID = "vdi-portal"
CLIENT_SECRET = "portal-client-secret-0123456789"
CALLBACK = "/accounts/oidc/oidc/login/callback/"
TEST_CLIENT_CALLBACK = f"http://testserver{CALLBACK}"
ROLE_MAP = {"Administrators": "vdi-admins"}
ADA = DirectoryUser("ada", "ada-at-the-provider", ["engineering"], email="ada@corp.example",
                    first_name="Ada", last_name="Lovelace")


def portal_client(*callback_origins: str) -> Client:
    """The portal, registered at the provider as a confidential client."""
    uris = [TEST_CLIENT_CALLBACK, *(f"{origin}{CALLBACK}" for origin in callback_origins)]
    return Client(CLIENT_ID, CLIENT_SECRET, uris)


def portal_config(provider: OidcProvider, **changes: Any) -> OidcConfig:
    values: dict[str, Any] = {"issuer": provider.issuer, "client_id": CLIENT_ID,
                              "client_secret": CLIENT_SECRET, "name": "Corp ID",
                              "role_map": ROLE_MAP, **changes}
    return OidcConfig(**values)


def portal_environment(provider: OidcProvider) -> dict[str, str]:
    """The same configuration, as the variables a portal process reads."""
    return {"VDI_OIDC_ISSUER": provider.issuer, "VDI_OIDC_CLIENT_ID": CLIENT_ID,
            "VDI_OIDC_CLIENT_SECRET": CLIENT_SECRET, "VDI_OIDC_NAME": "Corp ID",
            "VDI_OIDC_ROLE_GROUPS": "Administrators=vdi-admins"}


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    provider = OidcProvider(tmp_path_factory.mktemp("oidc-provider"))
    provider.start()
    provider.seed(clients=[portal_client()])
    yield provider
    provider.stop()


def use_oidc(settings: Any, config: OidcConfig) -> OidcConfig:
    """Configure this test process's portal (pytest-django's ``settings``) for ``config``."""
    settings.OIDC = config
    for name, value in socialaccount_settings(config).items():
        setattr(settings, name, value)
    return config


@pytest.fixture
def oidc(oidc_provider: OidcProvider, settings: Any) -> OidcConfig:
    return use_oidc(settings, portal_config(oidc_provider))


def sign_in_at_provider(authorize_url: str, username: str, password: str,
                        until: str = "http://testserver/") -> str:
    """What a browser does at the provider: its sign-in page, then the redirects, up to the
    URL that leaves for ``until`` (the portal's callback, with the code)."""
    browser = requests.Session()
    page = browser.get(authorize_url, timeout=10)
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, f"no sign-in form at {page.url}"
    answer = browser.post(page.url, data={"csrfmiddlewaretoken": match[1], "username": username,
                                          "password": password},
                          allow_redirects=False, timeout=10)
    for _ in range(5):
        assert answer.status_code == 302, f"the provider said {answer.status_code}: {answer.text}"
        location = urljoin(answer.url, answer.headers["Location"])
        if location.startswith(until):
            return location
        answer = browser.get(location, allow_redirects=False, timeout=10)
    raise AssertionError("the provider never sent the browser back")


def sign_in_with_oidc(client: DjangoClient, user: DirectoryUser = ADA,
                      **start: str) -> Any:
    """The whole flow, the portal's side through Django's test client: the button's POST,
    the provider's sign-in, then the callback; returns the callback's response."""
    started = client.post("/accounts/oidc/oidc/login/", start)
    assert started.status_code == 302, started.content.decode()[:500]
    back = urlsplit(sign_in_at_provider(started["Location"], user.username, user.password))
    return client.get(f"{back.path}?{back.query}")
