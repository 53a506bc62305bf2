"""Chromium signs in through the real OpenID Connect provider: the portal's button, the
provider's own sign-in page, back to the portal signed in, with the pool that the
directory group grants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from tests.oidc_fixtures import ADA, portal_client, portal_environment
from vdi.models import AuditEvent, Pool
from vdi.testing.oidc_provider import OidcProvider
from vdi.testing.processes import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def oidc_portal(transactional_db: None, tmp_path: Path,
                oidc_provider: OidcProvider) -> Iterator[ServerProcess]:
    """The portal under daphne, configured for the provider and registered there."""
    server = ServerProcess(tmp_path / "daphne.log", env=portal_environment(oidc_provider))
    oidc_provider.seed(clients=[portal_client(server.origin)])
    server.start()
    yield server
    server.stop()


def test_chromium_signs_in_through_the_provider_and_sees_the_group_s_pool(
        browser, oidc_portal, oidc_provider, image_version, artifacts):
    pool = Pool.objects.create(name="Engineering desktops", image=image_version.image,
                               vcpus=1, memory_mib=256)
    pool.groups.add(Group.objects.create(name="engineering"))
    oidc_provider.seed([ADA])
    page = browser.new_page()
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)

    page.goto(f"{oidc_portal.origin}/accounts/login/")
    assert page.locator("input[name=password]").is_visible()  # the password form stays
    page.click("text=Sign in with Corp ID")
    page.wait_for_url(f"{oidc_provider.origin}/login/**")
    page.fill("input[name=username]", ADA.username)
    page.fill("input[name=password]", ADA.password)
    page.click("#provider-sign-in")
    page.wait_for_url(f"{oidc_portal.origin}/")

    assert page.locator(".who").inner_text() == "ada"
    assert page.locator("article.pool h3").all_inner_texts() == ["Engineering desktops"]
    page.screenshot(path=str(artifacts / "oidc-signed-in.png"))
    assert blocked == []
    ada = get_user_model().objects.get(username="ada")
    assert set(ada.groups.values_list("name", flat=True)) == {"engineering"}
    login = AuditEvent.objects.get(action="auth.login", actor=ada)
    assert login.details == {"method": "socialaccount", "provider": "oidc"}
