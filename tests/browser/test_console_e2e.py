"""A user signs in, creates a desktop, opens its console in Chromium and types into the guest."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from tests.browser_fixtures import canvas_shows_something, echo_to_serial, sign_in
from vdi.images.tiny import READY_MARKER
from vdi.models import Desktop
from vdi.roles import HELPDESK
from vdi.services.desktops import request_action
from vdi.testing.processes import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.vm, pytest.mark.django_db(transaction=True)]


def serial_log(desktop: Desktop) -> str:
    path = Path(desktop.serial_log_path)
    return path.read_text(errors="replace") if path.exists() else ""


def test_user_types_into_the_desktop_from_the_browser(
    browser, portal, worker, tiny_pool, artifacts
):
    tiny_pool.users.add(User.objects.create_user("demo", password="demo-password-123"))
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, portal, "demo", "demo-password-123")
    page.click("text=Get a desktop")
    desktop = wait_for(lambda: Desktop.objects.filter(owner__username="demo").first(), 10,
                       "the desktop row")
    wait_for(lambda: READY_MARKER in serial_log(desktop), 120, "the guest to boot")
    page.goto(f"{portal.origin}/")
    page.click("text=Connect")
    page.wait_for_selector("#console-state:text-is('Connected')", timeout=30_000)
    wait_for(lambda: canvas_shows_something(page), 30, "the guest's screen in the canvas")

    marker = f"typed{secrets.token_hex(4)}"
    page.click("#screen canvas")
    page.keyboard.type(f"echo {marker} ")
    page.keyboard.press("Shift+Period")  # '>' : QEMU takes scancodes, so Shift must be explicit
    page.keyboard.type(" /dev/tty")
    page.keyboard.press("Shift+KeyS")  # a capital needs its Shift too
    page.keyboard.type("0")
    page.keyboard.press("Enter")
    wait_for(lambda: marker in serial_log(desktop), 30, "the typed command's output")

    # Text typed as keysyms (the clipboard panel's "Type it"): layout-independent, shift included.
    second = f"Keysym{secrets.token_hex(3)}"
    page.click("#btn-menu")  # the toolbar, folded away over the screen
    page.click("#btn-clipboard")
    page.fill("#clipboard-text", f"echo {second} > /dev/ttyS0\n")
    page.click("#btn-clip-type")
    wait_for(lambda: second in serial_log(desktop), 30, "the keysym-typed command's output")

    page.screenshot(path=str(artifacts / "console.png"))
    helpdesk_watches_with_consent(browser, portal, page, desktop)

    request_action(desktop.owner, desktop, "stop")  # closes the console, and the page says so
    problem = page.wait_for_selector("#console-problem:not([hidden])", timeout=60_000)
    assert "stopped or deleted" in problem.inner_text()
    assert page.is_visible("#btn-reconnect")
    page.close()


def helpdesk_watches_with_consent(browser, portal, users_page, desktop: Desktop) -> None:
    """The pool asks for consent: the user allows the helpdesk on their page and sees the
    notice; the watcher's keys reach nothing; the user ends the watching."""
    desktop.pool.watch_consent = True
    desktop.pool.save()
    helper = User.objects.create_user("helper", password="helper-password-123", is_staff=True)
    helper.groups.add(Group.objects.get(name=HELPDESK))
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, portal, "helper", "helper-password-123")
    page.goto(f"{portal.origin}/dashboard/")  # watching starts from the user's live session
    watch = page.locator(f"#live-{desktop.pk} a.watch")
    assert "its user is asked first" in page.inner_text(f"#live-{desktop.pk} .watch")
    watch.click()
    page.wait_for_url(f"{portal.origin}/desktops/{desktop.pk}/console/")
    page.wait_for_selector("#console-state:has-text('Waiting for the user')", timeout=30_000)
    users_page.wait_for_selector("#consent-text:has-text('helper (helpdesk) asks to watch')")
    users_page.click("#btn-consent-allow")
    page.wait_for_selector("#console-state:text-is('Connected')", timeout=30_000)
    users_page.wait_for_selector("#watchers-text:has-text('helper (helpdesk) is watching')")

    marker = f"watcher{secrets.token_hex(4)}"
    page.evaluate("window.vdiConsole.rfb.viewOnly = false")  # a page that ignores view-only
    page.click("#screen canvas")
    echo_to_serial(page, marker)
    users_page.click("#screen canvas")
    echo_to_serial(users_page, "fence")  # the user's own line comes out: the watcher's did not
    wait_for(lambda: "fence" in serial_log(desktop), 30, "the user's typing")
    assert marker not in serial_log(desktop), "a watcher's keys reach nothing"

    users_page.click("#btn-end-watching")
    problem = page.wait_for_selector("#console-problem:not([hidden])", timeout=30_000)
    assert "ended the watching" in problem.inner_text()
    users_page.wait_for_selector("#console-watchers", state="hidden")
    page.close()


def test_console_of_a_stopped_desktop_says_why(browser, portal, tiny_pool, vm_host, tiny_version):
    user = User.objects.create_user("demo", password="demo-password-123")
    desktop = Desktop.objects.create(
        owner=user, pool=tiny_pool, host=vm_host, image_version=tiny_version,
        domain_name="vditest-e2e-stopped", disk_path="/nonexistent", serial_log_path="/x",
        vcpus=1, memory_mib=256, status="stopped",
    )
    page = browser.new_page()
    sign_in(page, portal, "demo", "demo-password-123")
    page.goto(f"{portal.origin}/desktops/{desktop.pk}/console/")
    problem = page.wait_for_selector("#console-problem:not([hidden])", timeout=15_000)
    assert "not running" in problem.inner_text()
    assert page.inner_text("#console-state") == "Disconnected"
    assert page.is_visible("#btn-reconnect")
    page.close()
