"""A pool that records: the user is told on the console page, types on the guest's console,
and an administrator's replay of the recording, sped up and sought to its end, shows the
screen the user last saw."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser_fixtures import canvas_shows_something, screen_thumbnail, sign_in
from vdi.images.tiny import READY_MARKER
from vdi.models import Desktop, Recording
from vdi.testing.processes import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.vm, pytest.mark.django_db(transaction=True)]


def settled(page, selector: str = "#screen canvas") -> list[int]:
    """The screen once two looks a second apart agree but for a blinking text cursor (a cell
    of the 128x96 thumbnail or two)."""
    previous: list[list[int]] = [[]]

    def same_twice() -> bool:
        now = screen_thumbnail(page, selector)
        same = len(now) == len(previous[0]) and differing(now, previous[0]) < 0.002
        previous[0] = now
        return same

    wait_for(same_twice, 30, "the screen to settle", every=1.0)
    return previous[0]


def differing(first: list[int], second: list[int]) -> float:
    assert len(first) == len(second)
    return sum(abs(a - b) > 24 for a, b in zip(first, second, strict=True)) / len(first)


def test_a_recording_replays_the_screen_the_user_saw(browser, portal, worker, tiny_pool,
                                                     admin_user, artifacts):
    tiny_pool.record_sessions = True
    tiny_pool.save()
    tiny_pool.users.add(User.objects.create_user("demo", password="demo-password-123"))
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    sign_in(page, portal, "demo", "demo-password-123")
    page.click("text=Get a desktop")
    desktop = wait_for(lambda: Desktop.objects.filter(owner__username="demo").first(), 10,
                       "the desktop row")
    serial = Path(desktop.serial_log_path)
    wait_for(lambda: serial.exists() and READY_MARKER in serial.read_text(errors="replace"),
             120, "the guest to boot")
    page.goto(f"{portal.origin}/desktops/{desktop.pk}/console/")
    page.wait_for_selector("#console-state:text-is('Connected')", timeout=30_000)
    assert page.is_visible("#console-recorded"), "the user is told"
    wait_for(lambda: canvas_shows_something(page), 30, "the guest's screen")
    page.click("#screen canvas")
    page.keyboard.type(f"echo recorded {secrets.token_hex(4)}")
    page.keyboard.press("Enter")
    seen = settled(page)
    page.close()  # the console closes: the recording is finished
    recording = wait_for(lambda: Recording.objects.filter(ended_at__isnull=False).first(), 30,
                         "the recording to be finished")
    assert recording.user.username == "demo" and recording.size_bytes > 1000

    admin = browser.new_page(viewport={"width": 1024, "height": 768})
    sign_in(admin, portal, admin_user.username, "boss-password")
    admin.goto(f"{portal.origin}/admin/vdi/recording/")
    errors: list[str] = []
    admin.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    admin.on("pageerror", lambda e: errors.append(str(e)))
    admin.click("a:text-is('Replay')")
    try:
        admin.wait_for_selector("#replay[data-state=playing]", timeout=30_000)
    except PlaywrightTimeout:
        raise AssertionError(f"{admin.url}: {admin.inner_text('body')[:500]!r}: {errors}"
                             ) from None
    admin.select_option("#replay-speed", "32")
    admin.evaluate("window.vdiReplay.seekTo(window.vdiReplay.duration)")
    admin.wait_for_selector("#replay[data-state=finished]", timeout=30_000)
    replayed = settled(admin)
    admin.screenshot(path=str(artifacts / "replay.png"))
    assert differing(seen, replayed) < 0.02, "the replay ends on the screen the user saw"
    assert len(set(replayed)) > 2, "and it is not blank"
