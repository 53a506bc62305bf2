"""Chromium signs in with directory credentials (a real slapd, tests/ldap_fixtures) to the
portal under daphne, and sees the pool a directory group grants, through a nested group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from tests.browser_fixtures import sign_in
from tests.ldap_fixtures import corp_env
from vdi.models import Pool
from vdi.testing.processes import ServerProcess
from vdi.testing.slapd import Slapd

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def directory_portal(transactional_db: None, tmp_path: Path,
                     slapd: Slapd) -> Iterator[ServerProcess]:
    """The portal under daphne, told by its environment to ask the test directory."""
    server = ServerProcess(tmp_path / "daphne.log", env=corp_env(slapd.uri))
    server.start()
    yield server
    server.stop()


def test_directory_user_sees_the_pool_of_their_directory_group(browser, directory_portal,
                                                                image_version, artifacts):
    granted = Pool.objects.create(name="Staff desktops", image=image_version.image,
                                  description="Granted to the directory group staff")
    granted.groups.add(Group.objects.create(name="staff"))
    Pool.objects.create(name="Finance only", image=image_version.image)

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, directory_portal, "alice", "alice-directory-secret")
    assert page.is_visible("text=Staff desktops")
    assert not page.is_visible("text=Finance only"), "only entitled pools are shown"
    assert page.inner_text("header .who") == "alice"
    page.screenshot(path=str(artifacts / "directory-sign-in.png"))
    page.close()

    alice = get_user_model().objects.get(username="alice")
    assert alice.email == "alice@corp.example" and not alice.has_usable_password()
    assert set(alice.groups.values_list("name", flat=True)) == {"engineering", "staff",
                                                                "vdi-users"}
