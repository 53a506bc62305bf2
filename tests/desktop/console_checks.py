"""Checks of the console page against the shared graphical Debian desktop (run by
``test_debian_desktop.test_a_debian_desktop_on_a_host_with_a_network``): the screen takes the
whole window and the desktop's resolution follows it, the panels float over it without
changing it, the keyboard line follows a layout change while the console is open, and a file
in the desktop's Shared folder is downloaded with one click."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import guest
from tests.browser_fixtures import sign_in
from tests.support import wait_for
from vdi.choices import KeyboardLayout
from vdi.models import Desktop
from vdi.services.preferences import set_keyboard_layout

CELL = 8  # the session's modes are whole character cells: within 8 pixels of the window
SIZES = """() => {
    const screen = document.getElementById("screen");
    const canvas = screen.querySelector("canvas");
    return {screen: [screen.clientWidth, screen.clientHeight],
            canvas: canvas ? [canvas.width, canvas.height] : [0, 0]};
}"""


def in_session(desktop: Desktop, script: str, *args: str) -> str:
    return guest.in_session(desktop.domain_name, script, *args, uri=desktop.host.libvirt_uri)


def guest_resolution(desktop: Desktop) -> list[int]:
    current = re.search(r"current (\d+) x (\d+)", in_session(desktop, "xrandr -q | head -n 1"))
    assert current is not None
    return [int(current.group(1)), int(current.group(2))]


def console(browser: Any, portal: Any, owner: Any, desktop: Desktop, **context: Any) -> Any:
    """A signed-in page with the desktop's console connected."""
    page = browser.new_context(**context).new_page()
    sign_in(page, portal, owner.username, "owner-password")
    page.goto(f"{portal.origin}/desktops/{desktop.pk}/console/")
    page.wait_for_selector("#console[data-state=ok]", timeout=60_000)
    return page


def stays(condition: Callable[[], bool], seconds: float) -> bool:
    """``condition`` holds at every look for ``seconds`` (looked at twice a second)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(0.5)
    return condition()


def check_the_console_fills_a_wide_window(desktop, browser, portal, owner) -> None:
    """In a 1400x900 window the screen is the whole window, the desktop's framebuffer (the
    canvas noVNC draws it on) and the session's mode are as wide as it; opening the
    Clipboard and Files panels (from the folded menu) changes neither."""
    page = console(browser, portal, owner, desktop, viewport={"width": 1400, "height": 900})
    sizes = page.evaluate(SIZES)
    assert sizes["screen"] == [1400, 900], f"the screen takes the whole window: {sizes}"

    def framebuffer_follows() -> bool:
        now = page.evaluate(SIZES)
        got = guest_resolution(desktop)
        return all(abs(g - w) < CELL and c == g
                   for g, w, c in zip(got, now["screen"], now["canvas"], strict=True))

    wait_for(framebuffer_follows, 90, "the desktop's resolution to become the window's")
    before = guest_resolution(desktop)
    assert before[0] > 1100, f"wider than the old page's box: {before}"

    for button, panel in (("#btn-clipboard", "#clipboard-panel"), ("#btn-files", "#files-panel")):
        page.click("#btn-menu")
        page.click(button)
        page.wait_for_selector(panel, state="visible")
    assert page.evaluate(SIZES)["screen"] == [1400, 900], "the panels float over the screen"
    assert stays(lambda: page.evaluate(SIZES)["canvas"] == before
                 and guest_resolution(desktop) == before, 5), \
        f"the resolution stays {before} with the panels open: {page.evaluate(SIZES)}, " \
        f"{guest_resolution(desktop)}"
    page.context.close()


def check_the_keyboard_line_follows_a_change(desktop, browser, portal, owner) -> None:
    """The open console's "Keyboard:" line names the layout the user chooses meanwhile, on
    the settings page its "change" link opens beside the console, or elsewhere."""
    set_keyboard_layout(owner, KeyboardLayout.US)
    page = console(browser, portal, owner, desktop, viewport={"width": 1280, "height": 800})
    line = "#console-keyboard"
    assert page.text_content(line) == KeyboardLayout.US.label
    page.click("#btn-menu")
    with page.context.expect_page() as opened:
        page.click("#console-menu-body a:text-is('change')")
    settings_page = opened.value
    settings_page.select_option("select[name=keyboard_layout]", KeyboardLayout.DE.value)
    settings_page.click("button[type=submit]:has-text('Save')")
    wait_for(lambda: page.text_content(line) == KeyboardLayout.DE.label, 30,
             "the Keyboard line to name DE")  # (the page's CSP forbids eval's polling)
    set_keyboard_layout(owner, KeyboardLayout.FR)
    wait_for(lambda: page.text_content(line) == KeyboardLayout.FR.label, 30,
             "the Keyboard line to name FR")  # (the page's CSP forbids eval's polling)
    assert page.evaluate("window.vdiConsole.connected"), "the console stayed open throughout"
    set_keyboard_layout(owner, KeyboardLayout.US)
    page.context.close()


def check_a_shared_file_downloads_in_one_click(desktop, browser, portal, owner,
                                               tmp_path: Path) -> None:
    """A click on a file of the desktop's Shared folder copies it out and the browser's
    download starts by itself when it is there; the status lines follow both directions to
    their end (an upload's too), and the transfer's Save link stays as a fallback."""
    made = in_session(desktop, 'mkdir -p "$HOME/Shared"; head -c 150000 /dev/urandom '
                               '> "$HOME/Shared/one-click.bin"; '
                               'sha256sum < "$HOME/Shared/one-click.bin"').split()[0]
    page = console(browser, portal, owner, desktop, viewport={"width": 1280, "height": 900},
                   accept_downloads=True)
    page.click("#btn-menu")
    page.click("#btn-files")
    page.set_input_files("#files-choose", files=[
        {"name": "in-one-go.txt", "mimeType": "text/plain", "buffer": b"sent\n"}])
    page.wait_for_selector("#files-status:has-text('in-one-go.txt is in the desktop')",
                           timeout=60_000)
    page.click("#btn-files-refresh")
    # a locator, not an element handle: the panel redraws its list at each poll
    download_button = page.locator("#files-shared button[data-name='one-click.bin']")
    download_button.wait_for(timeout=60_000)
    with page.expect_download(timeout=90_000) as download:
        download_button.click()
    saved = tmp_path / "one-click.bin"
    download.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == made
    assert download.value.suggested_filename == "one-click.bin"
    page.wait_for_selector("#files-status:has-text('one-click.bin is downloaded')")
    page.wait_for_selector("#files-transfers li:has-text('one-click.bin from Shared: done') "
                           "a[data-name='one-click.bin']")
    page.context.close()
