"""Checks of the console page against the shared graphical Debian desktop (run by
``test_debian_desktop.test_a_debian_desktop_on_a_host_with_a_network``): the screen takes the
whole window and the desktop's resolution follows it, the panels float over it without
changing it, the keyboard line follows a layout change while the console is open, a file
in the desktop's Shared folder is downloaded with one click; text sent from the Clipboard panel
pastes in xterm with Shift+Insert and the middle button, a word selected in xterm reaches the
browser, and the desktop's XTerm icon starts xterm on a double click."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from tests import guest
from tests.browser_fixtures import sign_in
from tests.support import wait_for
from vdi.choices import ClipboardPolicy, KeyboardLayout
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


def resolution_of_the_window(page: Any, desktop: Desktop) -> list[int]:
    """The desktop's resolution once it is the window's (and the framebuffer the canvas
    draws is as large)."""
    def framebuffer_follows() -> bool:
        now = page.evaluate(SIZES)
        got = guest_resolution(desktop)
        return all(abs(g - w) < CELL and c == g
                   for g, w, c in zip(got, now["screen"], now["canvas"], strict=True))

    wait_for(framebuffer_follows, 90, "the desktop's resolution to become the window's")
    return guest_resolution(desktop)


def check_the_console_fills_a_wide_window(desktop, browser, portal, owner) -> None:
    """In a 1400x900 window the screen is the whole window, the desktop's framebuffer (the
    canvas noVNC draws it on) and the session's mode are as wide as it; opening the
    Clipboard and Files panels (from the folded menu) changes neither."""
    page = console(browser, portal, owner, desktop, viewport={"width": 1400, "height": 900})
    sizes = page.evaluate(SIZES)
    assert sizes["screen"] == [1400, 900], f"the screen takes the whole window: {sizes}"

    before = resolution_of_the_window(page, desktop)
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


def check_no_clipboard_note_on_connect(desktop, browser, portal, owner) -> None:
    """Connecting exchanges noVNC's clipboard capabilities and the clipboards' texts: no
    note about the clipboard comes up (it used to say "Not copied: an unknown clipboard
    message." on every connect)."""
    page = console(browser, portal, owner, desktop, viewport={"width": 1280, "height": 800},
                   permissions=["clipboard-read", "clipboard-write"])
    note = page.locator("#console-clipboard")
    assert stays(note.is_hidden, 8), f"a note on connect: {note.text_content()!r}"
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


def guest_selection(desktop: Desktop, selection: str) -> str:
    """The text of the guest's ``selection`` (clipboard or primary). ``timeout``: spice-vdagent
    leaves a request waiting when another for the same selection came in while QEMU fetched
    the text (it answers the later one), so a read is bounded and the caller asks again."""
    return in_session(desktop, f"timeout 10 xclip -selection {selection} -o 2>/dev/null || true")


def guest_point(page: Any, x: float, y: float) -> tuple[float, float]:
    """Where the guest's pixel (x, y) is on the page (the canvas may be scaled)."""
    box = page.locator("#screen canvas").bounding_box()
    sizes = page.evaluate(SIZES)
    assert box is not None and sizes["canvas"][0] > 0
    return (box["x"] + x * box["width"] / sizes["canvas"][0],
            box["y"] + y * box["height"] / sizes["canvas"][1])


def double_click(page: Any, x: float, y: float) -> None:
    """A double click as a hand makes it: Playwright's comes in one burst, which the guest
    may take as one click (libinput's debouncing, with events batched under emulation)."""
    page.mouse.click(x, y)
    page.wait_for_timeout(150)
    page.mouse.click(x, y, click_count=2)


def guest_terminal(desktop: Desktop, page: Any, geometry: str) -> Callable[[], list[str]]:
    """An xterm at ``geometry`` whose input lands in /tmp/pasted, up and holding the keyboard's
    focus (Enter pressed in the console until a line arrives); the lines it received so far."""
    in_session(desktop, "pkill -x xterm; rm -f /tmp/pasted; LANG=C.UTF-8 xterm -geometry "
                        f"{geometry} -e sh -c 'cat > /tmp/pasted' >/dev/null 2>&1 &")
    page.focus("#screen canvas")

    def lines() -> list[str]:
        return in_session(desktop, "cat /tmp/pasted 2>/dev/null || true").splitlines()

    def ready() -> bool:
        page.keyboard.press("Enter")
        return bool(lines())

    wait_for(ready, 90, "the terminal to take the keyboard", every=2)
    return lines


def entered(lines: Callable[[], list[str]], page: Any, done: Callable[[list[str]], bool],
            what: str) -> None:
    """Enter pressed until the terminal's lines are ``done``: a paste arrives after xterm has
    asked the selection's owner for it, which may be after an Enter pressed at once (and a
    line is only read once it is ended)."""
    def ended() -> bool:
        page.keyboard.press("Enter")
        return done(lines())

    try:
        wait_for(ended, 30, what, every=2)
    except AssertionError as failed:
        raise AssertionError(f"{failed}: the terminal got {lines()!r}") from None


def check_panel_text_pastes_with_shift_insert_in_xterm(desktop, pool, browser, portal,
                                                       owner) -> None:
    """Text sent from the Clipboard panel lands in the guest's CLIPBOARD (QEMU's vdagent and
    spice-vdagent) and, kept in step by the session's vdi-selections, in its PRIMARY: xterm
    pastes it with Shift+Insert and with the middle button. The guest's CLIPBOARD stays the
    browser's text (it is not taken over by the echo of PRIMARY)."""
    pool.clipboard = ClipboardPolicy.BOTH
    pool.save()
    page = console(browser, portal, owner, desktop, viewport={"width": 1280, "height": 800},
                   permissions=["clipboard-read", "clipboard-write"])
    width = resolution_of_the_window(page, desktop)[0]
    lines = guest_terminal(desktop, page, "60x10-20+200")  # right: clear of the menu, panels
    text = f"pasted in xterm: déjà vu ✓ {secrets.token_hex(3)}"
    page.click("#btn-menu")
    page.click("#btn-clipboard")
    page.fill("#clipboard-text", text)
    page.click("#btn-clip-send")
    wait_for(lambda: guest_selection(desktop, "clipboard") == text, 60,
             "the panel's text in the guest's CLIPBOARD")
    wait_for(lambda: guest_selection(desktop, "primary") == text, 30,
             "the guest's PRIMARY to follow its CLIPBOARD")
    page.click("#btn-menu")
    page.click("#btn-clipboard")  # the panel folded away again (choosing a tool folds the menu)
    page.focus("#screen canvas")
    page.keyboard.press("Shift+Insert")
    entered(lines, page, lambda got: text in got, "Shift+Insert to paste the panel's text")
    page.mouse.click(*guest_point(page, width - 200, 280), button="middle")
    entered(lines, page, lambda got: got.count(text) == 2, "the middle button to paste it too")
    assert guest_selection(desktop, "clipboard") == text, "CLIPBOARD still the browser's"
    in_session(desktop, "pkill -x xterm || true")
    page.context.close()


WORD = "selectedinxtermreachesthebrowser"


def check_text_selected_in_xterm_reaches_the_browser(desktop, pool, browser, portal,
                                                     owner) -> None:
    """A word selected in xterm (a double click: its PRIMARY) is in the browser's clipboard
    (spice-vdagent offers PRIMARY too) and in the guest's CLIPBOARD (vdi-selections)."""
    pool.clipboard = ClipboardPolicy.BOTH
    pool.save()
    page = console(browser, portal, owner, desktop, viewport={"width": 1280, "height": 800},
                   permissions=["clipboard-read", "clipboard-write"])
    page.evaluate("text => navigator.clipboard.writeText(text)", "before the selection")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.focus("#screen canvas")  # the browser's clipboard goes in first, out of the way
    wait_for(lambda: guest_selection(desktop, "clipboard") == "before the selection", 60,
             "the browser's clipboard in the guest")
    width = resolution_of_the_window(page, desktop)[0]
    in_session(desktop, "pkill -x xterm; xterm -geometry 60x10-20+200 -e sh -c "
                        f"'yes {WORD} | head -n 100; exec sleep 600' >/dev/null 2>&1 &")

    def selected() -> bool:  # the terminal may still be starting: click again
        double_click(page, *guest_point(page, width - 200, 280))
        return wait_until(lambda: guest_selection(desktop, "primary") == WORD, 5)

    wait_for(selected, 90, "a double click to select the word in xterm", every=0)
    wait_for(lambda: page.evaluate("navigator.clipboard.readText()") == WORD, 30,
             "the selected word in the browser's clipboard")
    wait_for(lambda: guest_selection(desktop, "clipboard") == WORD, 30,
             "the guest's CLIPBOARD to follow its PRIMARY")
    in_session(desktop, "pkill -x xterm || true")
    page.context.close()


BACKGROUND = (0x3A, 0x6E, 0xA5)  # PCManFM's desktop (files/etc/skel/.../desktop-items-0.conf)


def xterm_icon(page: Any, shot: Path) -> tuple[float, float] | None:
    """The middle of the XTerm icon on the page (its red X: the only red in the icons' column
    at the left of PCManFM's desktop), or None while that desktop is not drawn (IceWM's
    wallpaper, with red in it, is there until PCManFM draws its own)."""
    page.locator("#screen canvas").screenshot(path=str(shot))
    picture = Image.open(shot).convert("RGB")
    column = picture.crop((0, 0, min(240, picture.width), picture.height // 2))
    pixels: list[tuple[int, int, int]] = list(column.get_flattened_data())  # type: ignore[arg-type]
    background = sum(1 for pixel in pixels
                     if sum(abs(a - b) for a, b in zip(pixel, BACKGROUND, strict=True)) < 30)
    red = [(i % column.width, i // column.width) for i, (r, g, b) in enumerate(pixels)
           if r > 180 and g < 90 and b < 90]
    if background < len(pixels) / 2 or len(red) < 50:
        return None
    xs, ys = [x for x, _ in red], [y for _, y in red]
    canvas = page.evaluate(SIZES)["canvas"]
    return guest_point(page, (min(xs) + max(xs)) / 2 * canvas[0] / picture.width,
                       (min(ys) + max(ys)) / 2 * canvas[1] / picture.height)


def check_the_xterm_icon_starts_xterm(desktop, browser, portal, owner, artifacts) -> None:
    """A double click on the desktop's XTerm icon starts xterm for the desktop's user
    (PCManFM asked "Execute File" first before libfm's quick_exec was turned on)."""
    in_session(desktop, "pkill -x xterm || true")
    page = console(browser, portal, owner, desktop, viewport={"width": 1280, "height": 800})
    shot = artifacts / "desktop-icons.png"
    spot = wait_for(lambda: xterm_icon(page, shot), 90, "the XTerm icon on the desktop")

    def started() -> bool:  # a double click the guest took as two single ones: again
        double_click(page, *spot)
        return wait_until(lambda: in_session(desktop, "pgrep -u user -x xterm || true")
                          .strip() != "", 30)  # long: a second try would start a second one

    try:
        wait_for(started, 90, "a double click on the XTerm icon to start xterm", every=0)
    except AssertionError:
        page.locator("#screen canvas").screenshot(path=str(artifacts / "xterm-icon-failed.png"))
        raise

    def gone() -> bool:  # a late one too (a second try)
        return in_session(desktop, "pkill -x xterm; sleep 1; pgrep -x xterm || true") == ""

    wait_for(lambda: stays(gone, 5), 60, "no terminal left for the next checks")
    page.mouse.click(*guest_point(page, 640, 400))  # deselected: Enter would start it again
    page.context.close()


def wait_until(condition: Callable[[], Any], seconds: float) -> bool:
    """``condition`` within ``seconds``, or False (no error: the caller tries again)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False
