"""A user sees only the pools granted to them, claims a desktop, connects, and gives it back."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.browser_fixtures import sign_in
from vdi.choices import DesktopStatus
from vdi.models import Desktop, Pool
from vdi.testing.processes import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.vm, pytest.mark.django_db(transaction=True)]


def test_claim_connect_release(browser, portal, worker, tiny_pool, tiny_version, artifacts):
    user = User.objects.create_user("demo", password="demo-password-123")
    tiny_pool.assignment = "automatic"
    tiny_pool.description = "Busybox in seconds"
    tiny_pool.save()
    tiny_pool.users.add(user)
    Pool.objects.create(name="Finance only", image=tiny_version.image)

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, portal, "demo", "demo-password-123")
    assert page.is_visible("text=Tiny") and page.is_visible("text=Busybox in seconds")
    assert not page.is_visible("text=Finance only"), "only entitled pools are shown"

    page.click("text=Get a desktop")
    desktop = wait_for(lambda: Desktop.objects.filter(owner=user).first(), 10, "the claim")
    # The list refreshes by itself (htmx): no reload until Connect shows up.
    page.wait_for_selector(f"#desktop-{desktop.pk} a:has-text('Connect')", timeout=120_000)
    page.click(f"#desktop-{desktop.pk} a:has-text('Connect')")
    page.wait_for_selector("#console-state:text-is('Connected')", timeout=60_000)
    page.screenshot(path=str(artifacts / "portal-console.png"))

    page.click("#btn-menu")  # the toolbar, folded away over the screen
    page.click("text=Back to my desktops")
    page.click(f"#desktop-{desktop.pk} button.release")  # confirm() is accepted
    page.wait_for_selector("text=Release of", timeout=10_000)
    desktop.refresh_from_db()
    assert desktop.owner is None
    wait_for(lambda: Desktop.objects.get(pk=desktop.pk).status == DesktopStatus.RUNNING, 120,
             "the released desktop to be ready for the next user")
    page.wait_for_selector("text=You have no desktops yet", timeout=10_000)
    page.screenshot(path=str(artifacts / "portal-released.png"))
    page.close()
