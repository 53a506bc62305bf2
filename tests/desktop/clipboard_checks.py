"""The clipboard as a user meets it on the Debian desktop, in Chromium ("a clipboard that just
works", issue 21), and the desktop's icons: checks that test_debian_desktop runs on its shared
desktop. Connecting says nothing about the clipboard; text sent from the Clipboard panel stays
sent when the user clicks back into the console (the browser's clipboard goes over it only when
it changed since); that text pastes with Shift+Insert in xterm (the guest keeps PRIMARY in step
with CLIPBOARD); a double click on the XTerm icon starts xterm."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PIL import Image

from tests import guest
from tests.browser_fixtures import sign_in
from tests.support import wait_for
from vdi.choices import ClipboardPolicy
from vdi.models import Desktop, Pool

BACKGROUND = (0x3A, 0x6E, 0xA5)  # the desktop's colour (files/etc/skel/.../desktop-items-0.conf)
XTERM_ICON = (200, 40)  # where that file pins the XTerm icon, in the guest's pixels


def in_session(desktop: Desktop, script: str, *args: str) -> str:
    return guest.in_session(desktop.domain_name, script, *args, uri=desktop.host.libvirt_uri)


def guest_selection(desktop: Desktop, selection: str = "clipboard") -> str:
    return in_session(desktop, f"xclip -selection {selection} -o 2>/dev/null || true")


def copy_in_guest(desktop: Desktop, text: str) -> None:
    in_session(desktop, 'printf %s "$1" | xclip -selection clipboard -i >/dev/null 2>&1', text)


def within(condition: Callable[[], Any], seconds: float) -> bool:
    """``condition`` within ``seconds``, or False (no error: the caller tries again)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def both_ways(pool: Pool) -> None:
    pool.clipboard = ClipboardPolicy.BOTH
    pool.save()


def console_page(browser: Any, portal: Any, owner: Any, desktop: Desktop) -> tuple[Any, Any]:
    """A signed-in page on the desktop's console, connected, the clipboard allowed."""
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"],
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, portal, owner.username, "owner-password")
    page.goto(f"{portal.origin}/desktops/{desktop.pk}/console/")
    page.wait_for_selector("#console[data-state=ok]", timeout=60_000)
    return context, page


def write_browser_clipboard(page: Any, text: str) -> None:
    page.evaluate("text => navigator.clipboard.writeText(text)", text)


def back_to_the_console(page: Any) -> None:
    """Focus leaves the console and comes back (as when the user returns from another tab)."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.focus("#screen canvas")


def looks_done(page: Any) -> int:
    return int(page.evaluate(
        "Number(document.getElementById('console').dataset.clipboardLooks || 0)"))


def open_clipboard_panel(page: Any) -> None:
    # The button sits in the console's menu, which floats over the screen and opens on
    # demand: its click is dispatched to it, wherever the layout puts it.
    page.dispatch_event("#btn-clipboard", "click")
    page.wait_for_selector("#clipboard-panel", state="visible")


def send_from_panel(page: Any, desktop: Desktop, text: str) -> None:
    if not page.is_visible("#clipboard-panel"):
        open_clipboard_panel(page)
    page.fill("#clipboard-text", text)
    page.click("#btn-clip-send")
    wait_for(lambda: guest_selection(desktop) == text, 60, "the panel's text in the guest")


def check_no_clipboard_message_on_connect(desktop, pool, browser, portal, owner) -> None:
    """Connecting exchanges clipboard capabilities with the desktop (noVNC names several
    actions in its own): the proxy takes them, so no 'Not copied' note and no refusal notice.
    A copy made in the guest after the connect reaching the browser proves the exchange is
    over (the browser's capabilities went through the proxy before its request did)."""
    both_ways(pool)
    frames: list[str] = []
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.on("websocket", lambda socket: socket.on(
        "framereceived", lambda payload: frames.append(payload) if isinstance(payload, str)
        else None))
    sign_in(page, portal, owner.username, "owner-password")
    page.goto(f"{portal.origin}/desktops/{desktop.pk}/console/")
    page.wait_for_selector("#console[data-state=ok]", timeout=60_000)
    tries: list[str] = []

    def copied_out() -> bool:
        tries.append(f"after the connect {len(tries)}")
        copy_in_guest(desktop, tries[-1])
        return within(lambda: page.evaluate("navigator.clipboard.readText()") == tries[-1], 5)

    wait_for(copied_out, 90, "a copy in the guest to reach the browser", every=0)
    refusals = [frame for frame in frames if "clipboard_refused" in frame]
    assert refusals == [], f"the proxy refused a clipboard message on connect: {refusals}"
    note = page.text_content("#console-clipboard") or ""
    assert "Not copied" not in note, note
    context.close()


def check_panel_text_stays_sent(desktop, pool, browser, portal, owner) -> None:
    """Text sent from the Clipboard panel is what the guest pastes after the user clicks back
    into the console: the browser's clipboard, unchanged since, does not go over it. When the
    browser's clipboard does change, going back to the console sends it. Into the desktop
    only: both ways, the guest hands the text back to the browser's clipboard (its PRIMARY
    selection follows, and QEMU passes that on too), which would hide the difference."""
    pool.clipboard = ClipboardPolicy.TO_GUEST
    pool.save()
    context, page = console_page(browser, portal, owner, desktop)
    write_browser_clipboard(page, "copied on this computer")
    back_to_the_console(page)
    wait_for(lambda: guest_selection(desktop) == "copied on this computer", 60,
             "the browser's clipboard in the guest")
    page.evaluate("""() => {
        const rfb = window.vdiConsole.rfb;
        const send = rfb.clipboardPasteFrom.bind(rfb);
        window.sentToDesktop = [];
        rfb.clipboardPasteFrom = (text) => { window.sentToDesktop.push(text); send(text); };
    }""")
    send_from_panel(page, desktop, "sent from the panel: ça reste")
    looked = looks_done(page)
    box = page.locator("#screen canvas").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.6)
    wait_for(lambda: looks_done(page) > looked, 30, "the page to look at the browser's clipboard")
    assert guest_selection(desktop) == "sent from the panel: ça reste"
    assert page.evaluate("window.sentToDesktop") == ["sent from the panel: ça reste"], \
        "nothing sent over the panel's text"

    write_browser_clipboard(page, "copied again on this computer")
    back_to_the_console(page)
    wait_for(lambda: guest_selection(desktop) == "copied again on this computer", 60,
             "the browser's changed clipboard in the guest")
    context.close()


def check_shift_insert_pastes_the_panel_text(desktop, pool, browser, portal, owner) -> None:
    """Text sent from the panel lands in the guest's CLIPBOARD and, kept in step, its PRIMARY
    selection: Shift+Insert pastes it into xterm."""
    both_ways(pool)
    context, page = console_page(browser, portal, owner, desktop)
    text = "pasted with Shift+Insert: déjà ✓"
    send_from_panel(page, desktop, text)
    wait_for(lambda: guest_selection(desktop, "primary") == text, 30,
             "the guest's PRIMARY selection to follow its CLIPBOARD")
    in_session(desktop, "rm -f /tmp/pasted; LANG=C.UTF-8 xterm -geometry 60x5+0+0 "
                        "-e sh -c 'cat > /tmp/pasted' >/dev/null 2>&1 &")
    page.focus("#screen canvas")

    def lines() -> list[str]:
        return in_session(desktop, "cat /tmp/pasted 2>/dev/null || true").splitlines()

    def terminal_ready() -> bool:  # its window is up and has the focus
        page.keyboard.press("Enter")
        return bool(lines())

    wait_for(terminal_ready, 90, "the terminal to take the keyboard", every=2)
    page.keyboard.press("Shift+Insert")
    page.keyboard.press("Enter")
    wait_for(lambda: text in lines(), 30, "Shift+Insert to paste the panel's text in xterm")
    in_session(desktop, "pkill -x xterm || true")
    context.close()


def icon_spot(page: Any, desktop: Desktop, shot: str) -> tuple[float, float] | None:
    """Where the XTerm icon is drawn on the page (the middle of what differs from the
    desktop's colour around its pinned place), or None while it is not drawn."""
    canvas = page.locator("#screen canvas")
    box = canvas.bounding_box()
    assert box is not None
    canvas.screenshot(path=shot)
    picture = Image.open(shot).convert("RGB")
    width = int(in_session(desktop, "xrandr -q | head -n 1").split("current ")[1].split()[0])
    if abs(picture.width - width) > 8:
        return None  # the guest's resolution is still following the window
    x0, y0 = XTERM_ICON
    pixels = picture.load()
    assert pixels is not None

    def differs(x: int, y: int) -> bool:
        pixel: tuple[int, int, int] = pixels[x, y]  # type: ignore[assignment]
        return sum(abs(a - b) for a, b in zip(pixel, BACKGROUND, strict=True)) > 60

    drawn = [(x, y) for x in range(x0, min(x0 + 180, picture.width))
             for y in range(y0, min(y0 + 100, picture.height)) if differs(x, y)]
    if len(drawn) < 100:
        return None
    xs, ys = [x for x, _ in drawn], [y for _, y in drawn]
    middle_x, middle_y = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    return (box["x"] + middle_x * box["width"] / picture.width,
            box["y"] + middle_y * box["height"] / picture.height)


def check_the_terminal_icon_starts_xterm(desktop, browser, portal, owner, artifacts) -> None:
    """A double click on the desktop's XTerm icon starts xterm (PCManFM asked 'Execute File'
    for every desktop entry before)."""
    in_session(desktop, "pkill -x xterm || true")
    context, page = console_page(browser, portal, owner, desktop)
    shot = str(artifacts / "desktop-icons.png")
    spot = wait_for(lambda: icon_spot(page, desktop, shot), 90, "the XTerm icon on the desktop")

    def started() -> bool:
        page.mouse.dblclick(*spot)
        return within(lambda: "xterm" in in_session(
            desktop, "pgrep -u user -x xterm -l || true"), 10)

    try:
        wait_for(started, 60, "a double click on the XTerm icon to start xterm", every=0)
    except AssertionError:
        page.locator("#screen canvas").screenshot(path=str(artifacts / "xterm-icon-failed.png"))
        raise
    in_session(desktop, "pkill -x xterm || true")
    context.close()
