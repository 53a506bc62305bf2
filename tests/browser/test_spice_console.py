"""A SPICE pool in Chromium: spice-html5 links its channels through the portal with the
console ticket, types into the guest, opens the sound channel, and never sees the SPICE
password (every frame the page sent or received is checked)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from tests.browser_fixtures import canvas_shows_something, echo_to_serial, sign_in
from tests.spice_frames import Frames
from vdi.choices import DisplayProtocol
from vdi.console.spice_link import Channel
from vdi.images.tiny import READY_MARKER
from vdi.models import Desktop
from vdi.testing.processes import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.vm, pytest.mark.django_db(transaction=True)]


def test_a_spice_console_types_plays_sound_and_never_holds_the_password(
        browser, portal, worker, tiny_pool, artifacts):
    tiny_pool.display_protocol = DisplayProtocol.SPICE
    tiny_pool.save()
    tiny_pool.users.add(User.objects.create_user("demo", password="demo-password-123"))
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    frames = Frames(page)
    sign_in(page, portal, "demo", "demo-password-123")
    page.click("text=Get a desktop")
    desktop = wait_for(lambda: Desktop.objects.filter(owner__username="demo").first(), 10,
                       "the desktop row")
    serial = Path(desktop.serial_log_path)
    wait_for(lambda: serial.exists() and READY_MARKER in serial.read_text(errors="replace"),
             120, "the guest to boot")
    page.goto(f"{portal.origin}/desktops/{desktop.pk}/console/")
    page.wait_for_selector("#console-state:text-is('Connected')", timeout=30_000)
    wait_for(lambda: canvas_shows_something(page, "#spice-screen canvas"), 30,
             "the guest's screen")
    # Keys typed before the inputs channel has linked are dropped by spice-html5.
    wait_for(lambda: frames.linked(Channel.INPUTS), 15, "the inputs channel")
    marker = f"spice{secrets.token_hex(4)}"
    page.click("#spice-screen canvas")
    echo_to_serial(page, marker)
    wait_for(lambda: marker in serial.read_text(errors="replace"), 30,
             "the typed command's output")
    wait_for(lambda: frames.linked(Channel.PLAYBACK), 15, "the sound channel")
    for channel in (Channel.MAIN, Channel.DISPLAY, Channel.INPUTS):
        assert frames.linked(channel), channel
    page.screenshot(path=str(artifacts / "spice-console.png"))
    desktop.refresh_from_db()
    assert desktop.display_protocol == DisplayProtocol.SPICE and len(desktop.vnc_password) >= 8
    assert desktop.vnc_password.encode() not in frames.everything()
    page.close()
