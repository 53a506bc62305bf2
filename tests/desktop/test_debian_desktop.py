"""Real desktops: the Debian desktop image built from Debian's packages, claimed on a test host
that lives in namespaces of its own (so its guests may have a network), with one booted
(persistent) desktop shared by every check that can share it: the agent answers and reports
an address on the pool's network, its data disk is the user's on /data and ~/Data (a file
written there still on it after a restart), a graphical session is on screen in Chromium
through the portal (pixels, and the session's process running for the desktop's user, as the
agent says), and a stop goes through the agent when the guest ignores ACPI. The Windows
profile shows its firmware through the console."""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests import guest
from tests.browser_fixtures import sign_in
from tests.desktop import console_checks, spice_checks
from tests.desktop.console_checks import wait_until
from tests.support import wait_for, wait_gone, wait_status
from tests.vm_fixtures import hvhost, hvhost_base, remove_test_domains
from vdi.choices import ClipboardPolicy, DesktopStatus, KeyboardLayout
from vdi.console.client_filter import ECHO_SECONDS
from vdi.hypervisor import HypervisorError, get_driver
from vdi.hypervisor.backups import flatten, read_file
from vdi.hypervisor.network_xml import pool_network
from vdi.images.desktop import build as desktop_build
from vdi.images.desktop import cache as desktop_cache
from vdi.images.registry import VersionFiles, register_version
from vdi.models import Desktop, Host, ImageVersion, Operation, Pool, Snapshot
from vdi.services import snapshots
from vdi.services.claims import claim_desktop
from vdi.services.desktops import perform, request_action
from vdi.services.errors import ServiceError
from vdi.services.preferences import set_keyboard_layout
from vdi.testing.processes import ROOT, WorkerProcess
from vdi.worker.reconcile import reconcile
from vdi.worker.specs import hostname

pytestmark = [pytest.mark.desktop, pytest.mark.django_db(transaction=True)]
HOST = "desks"


def forget_image_files(name: str) -> None:
    """An earlier test's registered files (the database forgot them between tests)."""
    shutil.rmtree(settings.IMAGE_DIR / name, ignore_errors=True)


@pytest.fixture(scope="session")
def built_desktop() -> desktop_build.BuiltImage:
    """The Debian desktop image, built once per run (and kept in the image cache: an unchanged
    recipe with the same package versions is not built again)."""
    return desktop_cache.build_into_cache(settings.IMAGE_CACHE_DIR, lambda p, s: None)


@pytest.fixture
def desktop_version(built_desktop, transactional_db) -> ImageVersion:
    forget_image_files("debian-desktop")
    return register_version("debian-desktop", VersionFiles(
        built_desktop.disk, built_desktop.kernel, built_desktop.initrd, built_desktop.cmdline,
        profile="linux-desktop", readiness="agent", packages=built_desktop.packages,
        session_process=desktop_build.SESSION_PROCESS,
        build_key=built_desktop.build_key))


@pytest.fixture(scope="module")
def namespaced_host() -> Iterator[str]:
    """A hypervisor host of its own (libvirtd in mount, network and UTS namespaces): its
    guests' networks live inside those namespaces only."""
    uri = hvhost("start", HOST)
    remove_test_domains(uri)
    try:
        yield uri
    finally:
        remove_test_domains(uri)
        hvhost("stop", HOST)


@pytest.fixture
def desks(namespaced_host, transactional_db) -> Host:
    Host.objects.update(enabled=False)
    return Host.objects.create(
        name=HOST, libvirt_uri=namespaced_host, domain_type="qemu",
        storage_dir=str(settings.DISK_DIR), memory_capacity_mib=8192,
        vnc_socket_dir=str(hvhost_base() / HOST / "vnc"),
        isolated_networks=True)  # its bridges live in its own network namespace


def test_the_image_records_what_it_was_built_from(desktop_version, built_desktop):
    packages = dict(line.split(" ", 1) for line in desktop_version.packages.splitlines())
    for name in ("icewm", "pcmanfm", "xterm", "qemu-guest-agent", "spice-vdagent"):
        assert name in packages, name
    assert desktop_version.sha256 and desktop_version.size_bytes > 100 * 1024**2
    assert (desktop_version.profile, desktop_version.readiness) == ("linux-desktop", "agent")
    assert desktop_version.build_key == built_desktop.build_key == desktop_build.build_key()


def image_file(disk: Path, path: str, scratch: Path) -> bytes:
    """A file of the image's root (ext4 on the whole disk), read with debugfs from a raw copy:
    no guest booted, nothing mounted (as the backups' single-file restore does). Raises
    HypervisorError when the file is not there."""
    raw, out = scratch / "root.raw", scratch / "file"
    if not raw.exists():
        flatten(disk, raw, fmt="raw")
    out.unlink(missing_ok=True)
    read_file(raw, path, out)
    return out.read_bytes()


def test_the_image_leaves_each_clone_its_own_identity(built_desktop, tmp_path):
    """Clone hygiene, on the image file: an empty machine-id (each clone's systemd makes its
    own at first boot), no D-Bus copy of one, a generic host name (the seed names each
    desktop), and no SSH server, so no host keys to share."""
    try:
        assert image_file(built_desktop.disk, "/etc/machine-id", tmp_path) == b""
        for absent in ("/var/lib/dbus/machine-id", "/etc/ssh/ssh_host_ed25519_key",
                       "/etc/ssh/ssh_host_rsa_key"):
            with pytest.raises(HypervisorError):
                image_file(built_desktop.disk, absent, tmp_path)
        assert image_file(built_desktop.disk, "/etc/hostname", tmp_path) == b"vdi-desktop\n"
    finally:
        (tmp_path / "root.raw").unlink(missing_ok=True)  # pytest keeps tmp_path: 1 GB less
    packages = dict(line.split(" ", 1) for line in built_desktop.packages.splitlines())
    assert "openssh-server" not in packages and "icewm" in packages


def in_namespace(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "scripts" / "hvhost"), "exec", HOST, "--",
                           *command], capture_output=True, text=True, timeout=60,
                          env={"HVHOST_BASE": str(hvhost_base()),
                               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


@pytest.mark.timeout(1200)  # one booted desktop for every check: longer than one test's 600 s
def test_a_debian_desktop_on_a_host_with_a_network(
        desks, desktop_version, owner, tmp_path, browser, portal, artifacts, settings):
    pool = Pool.objects.create(name="Debian", image=desktop_version.image, vcpus=2,
                               memory_mib=1024, assignment="dedicated",
                               persistence="persistent",  # with a data disk (vdb)
                               network_mode="isolated")
    pool.users.add(owner)
    worker = WorkerProcess(tmp_path / "worker.log", hosts=(HOST,),
                           env={"VDI_SHUTDOWN_TIMEOUT": "40"})
    worker.start()
    try:
        desktop = claim_desktop(owner, pool)
        started = time.monotonic()
        wait_status(desktop, DesktopStatus.RUNNING, timeout=180)
        wait_for(lambda: Desktop.objects.get(pk=desktop.pk).guest_ready_at, 420,
                 "the guest agent to answer and the session to start")
        print(f"claim -> agent and session ready: {time.monotonic() - started:.0f} s")
        desktop.refresh_from_db()
        check_the_agent_and_the_network(desktop, pool)
        check_the_data_disk(desktop)
        check_the_graphical_session(desktop, browser, portal, owner, artifacts)
        check_the_clipboard(desktop, pool, browser, portal, owner)
        console_checks.check_panel_text_pastes_with_shift_insert_in_xterm(
            desktop, pool, browser, portal, owner)
        console_checks.check_text_selected_in_xterm_reaches_the_browser(
            desktop, pool, browser, portal, owner)
        console_checks.check_no_clipboard_note_on_connect(desktop, browser, portal, owner)
        console_checks.check_the_xterm_icon_starts_xterm(desktop, browser, portal, owner,
                                                         artifacts)
        check_the_resolution_follows_the_window(desktop, browser, portal, owner)
        console_checks.check_the_console_fills_a_wide_window(desktop, browser, portal, owner)
        console_checks.check_the_keyboard_line_follows_a_change(desktop, browser, portal, owner)
        check_keyboard_layouts(desktop, browser, portal, owner)
        check_phones_and_tablets(desktop, browser, portal, owner)
        check_files_both_ways(desktop, browser, portal, owner, tmp_path)
        console_checks.check_a_shared_file_downloads_in_one_click(desktop, browser, portal, owner,
                                                                  tmp_path)
        check_freeze_and_thaw(desktop)
        check_a_live_snapshot_freezes_and_its_revert_thaws(desktop, owner)
        spice_checks.check_the_spice_console(desktop, browser, portal, owner, tmp_path)
        check_a_stop_through_the_agent(desktop, owner)
        perform(desktop, "delete", None)
        wait_gone(desktop)
    finally:
        worker.stop()


def check_the_agent_and_the_network(desktop: Desktop, pool: Pool) -> None:
    facts = desktop.guest_facts
    assert facts["hostname"] == hostname(desktop), "the seed named it"
    machine_id = get_driver(desktop.host.libvirt_uri).agent.run(
        desktop.domain_name, "/usr/bin/cat", ["/etc/machine-id"])
    made = machine_id.stdout.strip()
    assert machine_id.exitcode == 0 and re.fullmatch(r"[0-9a-f]{32}", made), \
        f"the clone made its machine-id at first boot (the image's is empty): {made!r}"
    builders = Path("/etc/machine-id")
    assert made != "0" * 32 and made != (builders.read_text().strip() if builders.exists()
                                         else ""), "its own, not a copy of the build machine's"
    assert "Debian" in facts["os"] and facts["users"] == ["user"]
    subnet = pool_network(pool.pk).subnet.rsplit(".", 1)[0] + "."
    addresses = [a for a in facts["addresses"] if a.startswith(subnet)]
    assert addresses, f"an address on the pool's network {subnet}0/24: {facts['addresses']}"
    answer = in_namespace("ping", "-c", "1", "-W", "5", addresses[0])
    assert answer.returncode == 0, f"reachable inside the host's namespace: {answer.stdout}"
    bridge = in_namespace("ip", "-br", "addr", "show", pool_network(pool.pk).bridge)
    assert bridge.returncode == 0 and subnet in bridge.stdout
    assert subprocess.run(["ip", "link", "show", pool_network(pool.pk).bridge],
                          capture_output=True).returncode != 0, "no bridge outside"
    Desktop.objects.filter(pk=desktop.pk).update(guest_facts={})
    reconcile(desktop.host)
    again = Desktop.objects.get(pk=desktop.pk).guest_facts
    assert again["addresses"] == facts["addresses"], "the reconciler asks the agent again"


DATA_NOTE = "on the data disk, été\n"


def check_the_data_disk(desktop: Desktop, written: bool = False) -> None:
    """A persistent desktop's data disk (vdb, ext4 labelled vdi-data) is mounted on /data as
    it boots and is the desktop user's; ~/Data (and the desktop's Data icon) lead there, and a file
    the user writes under ~/Data lands on the disk. ``written``: after a boot, the file is still
    there (and the disk mounted and the user's again)."""
    agent = get_driver(desktop.host.libvirt_uri).agent

    def root(*command: str) -> str:
        result = agent.run(desktop.domain_name, command[0], list(command[1:]))
        assert result.exitcode == 0, f"{command}: {result.stderr}"
        return str(result.stdout)

    def mounted() -> bool:
        found = agent.run(desktop.domain_name, "/usr/bin/findmnt",
                          ["-n", "-o", "SOURCE,FSTYPE,LABEL", "/data"])
        return found.exitcode == 0 and found.stdout.split() == ["/dev/vdb", "ext4", "vdi-data"]

    try:
        wait_for(mounted, 60, "the data disk (vdb, vdi-data) mounted on /data")
    except AssertionError:
        said = agent.run(desktop.domain_name, "/bin/sh", ["-c", (
            "findmnt /data; ls -l /dev/disk/by-label; journalctl -b --no-pager -o "
            "short-monotonic | grep -E 'vdi-data|/data|data\\.mount|vdb' | tail -n 20")])
        raise AssertionError(f"/data is not the data disk; the boot said:\n{said.stdout}"
                             f"{said.stderr}") from None
    wait_for(lambda: root("/usr/bin/stat", "-c", "%U:%G", "/data").strip() == "user:user",
             30, "/data to become the desktop user's")
    mounted_at = root("/usr/bin/systemctl", "show", "-P", "ActiveEnterTimestampMonotonic",
                      "data.mount").strip()
    print(f"/data mounted {int(mounted_at) / 1e6:.1f} s after the kernel started")
    links = in_session(desktop, 'readlink "$HOME/Data" "$HOME/Desktop/Data"').split()
    assert links == ["/data", "/data"], links
    if not written:
        in_session(desktop, 'printf %s "$1" > "$HOME/Data/note.txt"', DATA_NOTE)
    assert in_session(desktop, 'cat "$HOME/Data/note.txt"') == DATA_NOTE
    assert root("/usr/bin/cat", "/data/note.txt") == DATA_NOTE
    assert root("/usr/bin/findmnt", "-n", "-o", "SOURCE", "--target",
                "/data/note.txt").strip() == "/dev/vdb", "on the data disk"
    assert root("/usr/bin/stat", "-c", "%U", "/data/note.txt").strip() == "user"


def check_the_graphical_session(desktop, browser, portal, owner, artifacts) -> None:
    driver = get_driver(desktop.host.libvirt_uri)
    session = driver.agent.run(desktop.domain_name, "/usr/bin/pgrep", ["-u", "user", "-x",
                                                                       "icewm"])
    assert session.exitcode == 0, "IceWM runs for the desktop's user"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, portal, owner.username, "owner-password")
    page.goto(f"{portal.origin}/desktops/{desktop.pk}/console/")
    page.wait_for_selector("#console[data-state=ok]", timeout=60_000)
    shot = artifacts / "debian-desktop.png"

    def rich_screen() -> bool:
        page.locator("#screen canvas").screenshot(path=str(shot))
        picture = Image.open(shot).convert("RGB")
        return len(set(picture.resize((320, 200)).get_flattened_data())) > 200

    wait_for(rich_screen, 120, "a graphical desktop (many colours) on the console")
    picture = Image.open(shot).convert("RGB")
    width, height = picture.size
    taskbar = picture.crop((0, int(height * 0.93), width, height))
    assert len(set(taskbar.get_flattened_data())) > 10, "IceWM's taskbar along the bottom"
    page.close()


def in_session(desktop: Desktop, script: str, *args: str) -> str:
    """Run a shell script in the desktop user's X session, through the guest agent."""
    return guest.in_session(desktop.domain_name, script, *args, uri=desktop.host.libvirt_uri)


def copy_in_guest(desktop: Desktop, text: str) -> None:
    in_session(desktop, 'printf %s "$1" | xclip -selection clipboard -i >/dev/null 2>&1', text)


def guest_clipboard(desktop: Desktop) -> str:
    return console_checks.guest_selection(desktop, "clipboard")


def open_console(page, portal, desktop: Desktop) -> None:
    logged: list[str] = []
    page.on("console", lambda message: logged.append(f"{message.type}: {message.text}"))
    page.goto(f"{portal.origin}/desktops/{desktop.pk}/console/")
    try:
        page.wait_for_selector("#console[data-state=ok]", timeout=60_000)
    except PlaywrightTimeout:
        raise AssertionError(f"the console did not connect: {page.inner_text('.console-bar')!r}, "
                             f"{page.inner_text('#console-problem')!r}; its log: {logged}"
                             ) from None


def check_the_clipboard(desktop, pool, browser, portal, owner) -> None:
    """Both ways through QEMU's vdagent clipboard and spice-vdagent, Unicode included; then
    each refusing policy, against a page that ignores it (the proxy holds it)."""
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    sign_in(page, portal, owner.username, "owner-password")
    open_console(page, portal, desktop)
    browser_clipboard = lambda: page.evaluate("navigator.clipboard.readText()")  # noqa: E731

    in_session(desktop, "until pgrep -u user -x spice-vdagent >/dev/null; do sleep 1; done")
    copied = "Grüße aus dem Gast: 5 € ✓"

    def copied_out() -> bool:  # each try owns the selection anew (the agents may be starting)
        copy_in_guest(desktop, copied)
        return bool(wait_until(lambda: browser_clipboard() == copied, 5))

    wait_for(copied_out, 90, "the guest's copy in the browser", every=0)
    assert page.input_value("#clipboard-text") == copied

    tries: list[str] = []

    def pasted_in() -> bool:  # a new text each try: the page sends a text once
        tries.append(f"Bonjour, ça marche — 日本語 {len(tries)}")
        page.evaluate("text => navigator.clipboard.writeText(text)", tries[-1])
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.focus("#screen canvas")  # back to the console: the browser's clipboard goes in
        return bool(wait_until(lambda: guest_clipboard(desktop) == tries[-1], 5))

    wait_for(pasted_in, 60, "the browser's copy in the guest", every=0)
    pasted = tries[-1]

    pool.clipboard = ClipboardPolicy.TO_GUEST
    pool.save()
    open_console(page, portal, desktop)
    # (the proxy keeps quiet for a few seconds after text went in: what the guest offers back
    # then is the echo of that paste, not a copy of the user's)
    time.sleep(ECHO_SECONDS)
    copy_in_guest(desktop, "kept inside")
    # The session's vdi-selections gives PRIMARY the copy too, which spice-vdagent offers the
    # console as a second copy: offered to this page, not to the next one (which may copy out).
    wait_for(lambda: console_checks.guest_selection(desktop, "primary") == "kept inside", 30,
             "the guest's PRIMARY to follow its clipboard")
    page.wait_for_selector("#console-clipboard:has-text('copying out of this desktop is "
                           "turned off')", timeout=60_000)
    assert browser_clipboard() == pasted

    pool.clipboard = ClipboardPolicy.FROM_GUEST
    pool.save()
    open_console(page, portal, desktop)
    page.evaluate("window.vdiConsole.rfb.clipboardPasteFrom('smuggled in')")
    page.wait_for_selector("#console-clipboard:has-text('pasting into this desktop is turned "
                           "off')", timeout=30_000)
    assert guest_clipboard(desktop) == "kept inside"

    pool.clipboard = ClipboardPolicy.OFF
    pool.save()
    open_console(page, portal, desktop)
    assert page.locator("#btn-clip-send").count() == 0
    page.evaluate("window.vdiConsole.rfb.clipboardPasteFrom('smuggled again')")
    page.wait_for_selector("#console-clipboard:has-text('pasting into this desktop')",
                           timeout=30_000)
    copy_in_guest(desktop, "still inside")
    page.wait_for_selector("#console-clipboard:has-text('copying out of this desktop')",
                           timeout=60_000)
    assert browser_clipboard() == pasted
    assert guest_clipboard(desktop) == "still inside"
    context.close()


def guest_resolution(desktop: Desktop) -> tuple[int, int]:
    current = re.search(r"current (\d+) x (\d+)", in_session(desktop, "xrandr -q | head -n 1"))
    assert current is not None
    return int(current.group(1)), int(current.group(2))


def check_the_resolution_follows_the_window(desktop, browser, portal, owner) -> None:
    """noVNC asks QEMU for the console's size, virtio-gpu offers it to the guest as its
    preferred mode and the session's hook applies it; on a high-DPI screen too (the size
    is in CSS pixels). Modes are whole character cells: within 8 pixels."""
    for scale in (1, 2):
        context = browser.new_context(viewport={"width": 1100, "height": 800},
                                      device_scale_factor=scale)
        page = context.new_page()
        sign_in(page, portal, owner.username, "owner-password")
        open_console(page, portal, desktop)
        for width, height in ((1100, 800), (860, 620)):
            page.set_viewport_size({"width": width, "height": height})
            wanted = page.evaluate(
                "() => { const s = document.getElementById('screen');"
                " return [s.clientWidth, s.clientHeight]; }")

            def follows(wanted: list[int] = wanted) -> bool:
                got = guest_resolution(desktop)
                return all(abs(g - w) < 8 for g, w in zip(got, wanted, strict=True))

            wait_for(follows, 90, f"the guest's resolution to become {wanted} (scale {scale})")
            box = page.locator("#screen canvas").bounding_box()
            assert box is not None and box["width"] <= wanted[0] + 1, "no scroll bars"
        context.close()


LAYOUT_KEYS = {  # physical keys pressed -> what the layout prints (dead keys last)
    KeyboardLayout.DE: (["KeyZ", "KeyY", "BracketLeft", "Semicolon", "Quote", "Minus",
                         "Equal", "KeyE"], "yzüöäßé"),
    KeyboardLayout.FR: (["KeyQ", "KeyA", "KeyW", "Semicolon", "Digit2", "Digit7",
                         "BracketLeft", "KeyE"], "aqzméèê"),
}


def check_keyboard_layouts(desktop, browser, portal, owner) -> None:
    """The user's layout reaches the session (the worker runs setxkbmap through the agent);
    the browser sends physical keys, so a German or French keyboard prints its own
    characters, dead keys included, in a terminal of the session."""
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    sign_in(page, portal, owner.username, "owner-password")
    for layout, (keys, expected) in LAYOUT_KEYS.items():
        set_keyboard_layout(owner, layout)
        wanted = f"layout:     {layout.value}"
        wait_for(lambda: wanted in in_session(desktop, "setxkbmap -query"), 60,  # noqa: B023
                 f"the session's layout to become {layout}")
        open_console(page, portal, desktop)
        in_session(desktop, "rm -f /tmp/typed; LANG=C.UTF-8 xterm -geometry 60x5+0+0 "
                            "-e sh -c 'cat > /tmp/typed' >/dev/null 2>&1 &")
        page.focus("#screen canvas")

        def lines() -> list[str]:
            return in_session(desktop, "cat /tmp/typed 2>/dev/null || true").splitlines()

        def terminal_ready() -> bool:  # its window is up and has the focus
            page.keyboard.press("Enter")
            return bool(lines())

        wait_for(terminal_ready, 90, "the terminal to take the keyboard", every=2)
        for key in keys:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        wait_for(lambda: expected in lines(), 30, f"{expected!r} typed on {layout.label}")  # noqa: B023
        in_session(desktop, "pkill -x xterm || true")
    set_keyboard_layout(owner, KeyboardLayout.US)
    page.close()


MOUSE_REPORTER = ("rm -f /tmp/touched; xterm -geometry 40x10+0+0 -e sh -c "
                  "'printf \"\\033[?1000h\"; stty -icanon -echo; exec cat -v > /tmp/touched' "
                  ">/dev/null 2>&1 &")
LEFT_CLICK, RIGHT_CLICK, WHEEL = "^[[M ", '^[[M"', ("^[[M`", "^[[Ma")


def check_phones_and_tablets(desktop, browser, portal, owner) -> None:
    """Chromium's phone emulation, portrait then landscape: the console fits the screen; a
    tap clicks, a two-finger tap right-clicks, a two-finger drag scrolls and the device's
    keyboard types (a terminal in the session reports the mouse: xterm's mode 1000)."""
    context = browser.new_context(viewport={"width": 412, "height": 860},
                                  device_scale_factor=2.6, is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, portal, owner.username, "owner-password")
    open_console(page, portal, desktop)
    fits_the_screen(page)
    in_session(desktop, MOUSE_REPORTER)
    cdp = context.new_cdp_session(page)

    def terminal_spot() -> tuple[float, float]:
        """Inside the terminal (top left of the guest's screen), wherever the canvas is now:
        it moves while the guest's resolution follows the phone's."""
        canvas = page.locator("#screen canvas").bounding_box()
        assert canvas is not None
        return canvas["x"] + 60, canvas["y"] + 60

    def reported() -> str:
        return in_session(desktop, "cat /tmp/touched 2>/dev/null || true")

    def touch(kind: str, *points: tuple[float, float]) -> None:
        cdp.send("Input.dispatchTouchEvent", {
            "type": kind, "touchPoints": [{"x": px, "y": py, "id": n}
                                          for n, (px, py) in enumerate(points)]})

    def tapped() -> bool:
        page.touchscreen.tap(*terminal_spot())
        return LEFT_CLICK in reported()

    wait_for(lambda: "up" in in_session(desktop, "test -e /tmp/touched && echo up || true"),
             60, "the terminal to start")
    try:
        wait_for(tapped, 90, "a tap to click in the terminal", every=2)
    except AssertionError:
        page.screenshot(path="test-artifacts/touch-failed.png")
        raise AssertionError(f"no click reported: {reported()!r}; windows: "
                             f"{in_session(desktop, 'ps -eo args | grep -c xterm')}") from None
    x, y = terminal_spot()
    touch("touchStart", (x, y), (x + 40, y))
    touch("touchEnd")
    wait_for(lambda: RIGHT_CLICK in reported(), 30, "a two-finger tap to right-click")
    touch("touchStart", (x, y), (x + 40, y))
    for step in range(1, 8):
        touch("touchMove", (x, y + 15 * step), (x + 40, y + 15 * step))
    touch("touchEnd")
    wait_for(lambda: any(w in reported() for w in WHEEL), 30, "a two-finger drag to scroll")

    page.tap("#btn-menu")  # the toolbar, folded away over the screen
    page.tap("#btn-keyboard")
    page.keyboard.type("hi there")
    page.keyboard.press("Backspace")
    wait_for(lambda: "hi there^?" in reported(), 30, "the device's keyboard to type")
    in_session(desktop, "pkill -x xterm || true")

    page.set_viewport_size({"width": 860, "height": 412})  # landscape
    fits_the_screen(page)
    context.close()


def fits_the_screen(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), \
        "nothing sticks out sideways"
    box = page.locator("#screen").bounding_box()
    viewport = page.viewport_size
    assert box is not None and viewport is not None
    assert box["y"] + box["height"] <= viewport["height"] + 1, "the screen fits the height"
    assert box["height"] > viewport["height"] * 0.6, "and takes most of it"


DROP = """([name, bytes]) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new Uint8Array(bytes)], name));
    document.getElementById("screen").dispatchEvent(
        new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
}"""


def transfer_done(page, what: str) -> None:
    try:
        page.wait_for_selector(f"#files-transfers li:has-text('{what}: done')", timeout=60_000)
    except PlaywrightTimeout:
        raise AssertionError(f"{what} not done: {page.inner_text('#files-panel')!r}") from None


def check_files_both_ways(desktop, browser, portal, owner, tmp_path) -> None:
    """A chosen file and a file dropped on the screen land in the desktop's Downloads (read
    back through the agent); a file the desktop puts in Shared is downloaded in the page."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, portal, owner.username, "owner-password")
    open_console(page, portal, desktop)
    page.click("#btn-menu")
    page.click("#btn-files")
    chosen, dropped = "notes été.txt", "data.bin"
    chosen_bytes, dropped_bytes = "Grüße\n".encode() * 1000, secrets.token_bytes(300_000)
    page.set_input_files("#files-choose", files=[
        {"name": chosen, "mimeType": "text/plain", "buffer": chosen_bytes}])
    transfer_done(page, f"{chosen} to Downloads")
    page.evaluate(DROP, [dropped, list(dropped_bytes)])
    transfer_done(page, f"{dropped} to Downloads")
    for name, data in ((chosen, chosen_bytes), (dropped, dropped_bytes)):
        digest = in_session(desktop, 'sha256sum < "$HOME/Downloads/$1"', name).split()[0]
        assert digest == hashlib.sha256(data).hexdigest(), f"{name} arrived whole"

    made = in_session(desktop, 'mkdir -p "$HOME/Shared"; head -c 200000 /dev/urandom '
                               '> "$HOME/Shared/report.bin"; sha256sum < "$HOME/Shared/report.bin"')
    page.click("#btn-files-refresh")
    page.click("#files-shared button[data-name='report.bin']", timeout=60_000)
    save = page.wait_for_selector("#files-transfers a[data-name='report.bin']", timeout=60_000)
    with page.expect_download() as download:
        save.click()
    saved = tmp_path / "report.bin"
    download.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == made.split()[0]
    page.close()


def check_freeze_and_thaw(desktop: Desktop) -> None:
    """For consistent snapshots and backups: the agent freezes the file systems and thaws
    them again."""
    agent = get_driver(desktop.host.libvirt_uri).agent
    assert agent.freeze(desktop.domain_name) >= 1
    try:
        status = agent.command(desktop.domain_name, "guest-fsfreeze-status")
        assert status == "frozen"
    finally:
        assert agent.thaw(desktop.domain_name) >= 1
    assert agent.command(desktop.domain_name, "guest-fsfreeze-status") == "thawed"


def check_a_live_snapshot_freezes_and_its_revert_thaws(desktop: Desktop, owner) -> None:
    """QEMU can't save the VNC clipboard's vdagent with the memory, so a VNC desktop has no
    live snapshot (and says so). Restarted as a SPICE desktop (its data disk mounted again,
    the file written before the restart still on it), a live snapshot is taken with its file
    systems frozen by the agent; going back to it thaws them (the memory was saved frozen),
    and the session goes on."""
    pool = desktop.pool
    assert pool is not None and pool.is_persistent
    desktop.refresh_from_db()
    with pytest.raises(ServiceError, match="VNC clipboard channel"):
        snapshots.take(owner, desktop, "refused")
    Pool.objects.filter(pk=pool.pk).update(display_protocol="spice")
    restart = request_action(owner, desktop, "restart")
    wait_for(lambda: Operation.objects.get(pk=restart.pk).finished_at, 300, "the restart")
    wait_for(lambda: Desktop.objects.get(pk=desktop.pk).guest_ready_at, 420, "the session")
    desktop.refresh_from_db()
    assert desktop.display_protocol == "spice"
    check_the_data_disk(desktop, written=True)
    agent = get_driver(desktop.host.libvirt_uri).agent
    taken = snapshots.take(owner, desktop, "frozen")
    wait_for(lambda: Operation.objects.get(pk=taken.pk).finished_at, 300, "the snapshot")
    snapshot = Snapshot.objects.get(desktop=desktop, name="frozen")
    assert snapshot.status == "ready" and snapshot.frozen, snapshot.desktop.last_error
    assert agent.command(desktop.domain_name, "guest-fsfreeze-status") == "thawed"
    operation = snapshots.revert(owner, snapshot)
    wait_for(lambda: Operation.objects.get(pk=operation.pk).finished_at, 300, "the revert")
    wait_status(desktop, DesktopStatus.RUNNING)
    wait_for(lambda: _thawed(agent, desktop), 60, "the agent to answer after the revert")
    wrote = agent.run(desktop.domain_name, "/usr/bin/touch", ["/var/tmp/after-revert"])
    assert wrote.exitcode == 0, "its file systems take writes again"
    wait_for(lambda: Desktop.objects.get(pk=desktop.pk).guest_facts.get("users") == ["user"],
             60, "the session's user known again (files and layouts go to that user)")


def _thawed(agent, desktop: Desktop) -> bool:
    try:
        return bool(agent.command(desktop.domain_name, "guest-fsfreeze-status") == "thawed")
    except HypervisorError:
        return False


def check_a_stop_through_the_agent(desktop: Desktop, owner) -> None:
    """The guest ignores the power button (an inhibitor lock): the stop goes through its
    agent instead of pulling the plug."""
    driver = get_driver(desktop.host.libvirt_uri)
    driver.agent.command(desktop.domain_name, "guest-exec", {
        "path": "/usr/bin/systemd-inhibit",
        "arg": ["--what=handle-power-key", "--mode=block", "sleep", "600"]})
    time.sleep(2)
    request_action(owner, desktop, "stop")
    wait_status(desktop, DesktopStatus.STOPPED, timeout=120)
    stop = Operation.objects.filter(desktop=desktop, kind="stop").latest("created_at")
    assert stop.step == "shut down by its guest agent (it ignored ACPI)"


def test_the_windows_profile_shows_its_firmware_through_the_console(
        worker, vm_host, owner, tmp_path):
    from asgiref.sync import async_to_sync

    from tests.console_helpers import communicator, session_cookie, ticket_for
    from vdi.testing.rfb import Stream, colours, framebuffer, handshake

    blank = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(blank), "1G"], check=True)
    forget_image_files("windows-blank")
    version = register_version("windows-blank", VersionFiles(blank, profile="windows",
                                                             readiness="none"))
    pool = Pool.objects.create(name="Windows", image=version.image, vcpus=2, memory_mib=2048)
    pool.users.add(owner)
    desktop = claim_desktop(owner, pool)
    wait_status(desktop, DesktopStatus.RUNNING, timeout=180)
    swtpm = subprocess.run(["pgrep", "-af", "swtpm"], capture_output=True, text=True).stdout
    assert str(desktop.domain_uuid) in swtpm, "its TPM runs (swtpm)"
    session = session_cookie(owner)
    time.sleep(12)  # the firmware's first screen, under software emulation
    ticket = ticket_for(owner, session, Desktop.objects.get(pk=desktop.pk))

    async def screen() -> list[bytes]:
        import asyncio

        ws = communicator(desktop.pk, session, ticket)
        assert (await ws.connect())[0]
        loop = asyncio.get_running_loop()
        stream = Stream(
            lambda: asyncio.run_coroutine_threadsafe(ws.receive_from(timeout=20), loop).result(),
            lambda d: asyncio.run_coroutine_threadsafe(ws.send_to(bytes_data=d), loop).result())
        init = await asyncio.to_thread(handshake, stream)
        rows = await asyncio.to_thread(framebuffer, stream, init)
        await ws.disconnect()
        return rows

    rows = async_to_sync(screen)()
    assert colours(rows) > 2, "the firmware draws its screen (not a blank one)"
    request_action(owner, desktop, "delete")
    wait_gone(desktop)
    assert not list(Path("/var/lib/libvirt/qemu/nvram").glob(f"{desktop.domain_name}_VARS*")), \
        "its UEFI variables went with it"
