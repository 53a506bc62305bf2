"""The SPICE console on par with VNC, against the shared graphical Debian desktop once it is a
SPICE desktop (run by ``test_debian_desktop.test_a_debian_desktop_on_a_host_with_a_network``):
the desktop's resolution follows the window, the clipboard goes both ways through the SPICE
agent, the Files panel moves files both ways; and (not run yet) "Test sound" plays a tone
that reaches the browser as sound, not silence."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from tests.browser_fixtures import sign_in
from tests.desktop import console_checks
from tests.desktop.console_checks import (
    CELL,
    console,
    guest_resolution,
    guest_selection,
    wait_until,
)
from tests.spice_frames import Frames
from tests.support import wait_for
from vdi.choices import ClipboardPolicy
from vdi.console.spice_link import Channel
from vdi.models import Desktop

SCREEN = """() => { const s = document.getElementById("spice-screen");
                    return [s.clientWidth, s.clientHeight]; }"""


def check_the_spice_console(desktop: Desktop, browser: Any, portal: Any, owner: Any,
                            tmp_path: Path) -> None:
    assert desktop.display_protocol == "spice"
    assert desktop.pool is not None
    desktop.pool.refresh_from_db()
    assert desktop.pool.clipboard == ClipboardPolicy.BOTH, "restarted as SPICE with it on"
    check_the_resolution_follows_the_window(desktop, browser, portal, owner)
    check_the_clipboard_both_ways(desktop, browser, portal, owner)
    console_checks.check_a_shared_file_downloads_in_one_click(desktop, browser, portal, owner,
                                                              tmp_path)
    # check_the_test_tone_is_heard is not run yet: here the guest's HDA stream stalls at once
    # (ALSA's hw_ptr stays 0) and QEMU never starts SPICE playback; see issue 21's notes.


def check_the_resolution_follows_the_window(desktop, browser, portal, owner) -> None:
    """The page asks the guest's agent for the screen's size (the whole window) and follows
    the window when it changes."""
    page = console(browser, portal, owner, desktop, viewport={"width": 1400, "height": 900})
    for width, height in ((1400, 900), (1000, 700)):
        page.set_viewport_size({"width": width, "height": height})
        wanted = page.evaluate(SCREEN)
        assert wanted == [width, height], f"the screen is the whole window: {wanted}"

        def follows(wanted: list[int] = wanted) -> bool:
            got = guest_resolution(desktop)
            return all(abs(g - w) < CELL for g, w in zip(got, wanted, strict=True))

        wait_for(follows, 90, f"the SPICE desktop's resolution to become {wanted}")
    page.context.close()


def check_the_clipboard_both_ways(desktop, browser, portal, owner) -> None:
    """Text sent from the Clipboard panel is the guest's clipboard; text copied in the guest
    reaches the panel (and the browser's clipboard)."""
    page = console(browser, portal, owner, desktop, viewport={"width": 1280, "height": 800},
                   permissions=["clipboard-read", "clipboard-write"])
    sent = "Vom Browser über SPICE: 5 € ✓"
    page.click("#btn-menu")
    page.click("#btn-clipboard")
    page.fill("#clipboard-text", sent)

    def pasted_in() -> bool:  # the guest's agent may still be starting: send again
        page.click("#btn-clip-send")
        return console_checks.wait_until(lambda: guest_selection(desktop, "clipboard") == sent,
                                         10)

    wait_for(pasted_in, 90, "the panel's text in the guest's clipboard", every=0)
    copied = "Aus dem SPICE-Gast: 日本語"
    console_checks.in_session(
        desktop, 'printf %s "$1" | xclip -selection clipboard -i >/dev/null 2>&1', copied)
    wait_for(lambda: page.input_value("#clipboard-text") == copied, 60,
             "the guest's copy in the panel")
    assert page.evaluate("navigator.clipboard.readText()") == copied
    page.context.close()


def check_the_test_tone_is_heard(desktop, browser, portal, owner) -> None:
    """"Test sound": the guest plays a second of a 440 Hz tone; the sound channel carries it
    to the browser as Opus packets of sound (silence packs into a few bytes a packet)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    frames = Frames(page)
    sign_in(page, portal, owner.username, "owner-password")
    page.goto(f"{portal.origin}/desktops/{desktop.pk}/console/")
    page.wait_for_selector("#console[data-state=ok]", timeout=60_000)
    page.click("#spice-screen canvas")  # a browser plays sound once the page was clicked
    wait_for(lambda: frames.linked(Channel.PLAYBACK), 30, "the sound channel")
    before = len(frames.sound_packets())
    page.click("#btn-menu")
    page.click("#btn-sound")
    page.wait_for_selector("#console-state:has-text('test tone')")
    if not wait_until(lambda: len(frames.sound_packets()) - before >= 40, 60):
        raise AssertionError(f"no tone came: {frames.playback_messages()[-20:]}, "
                             f"{page.text_content('#console-state')!r}, "
                             f"{page.text_content('#console-problem')!r}")
    tone = frames.sound_packets()[before:]
    assert statistics.median(tone) > 20, f"sound, not silence: {tone[:40]}"
    context.close()
