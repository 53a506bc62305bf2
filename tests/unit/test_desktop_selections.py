"""The Debian desktop image's vdi-selections, run under Xvfb with Debian's Python and GTK (as
in the image's session): text put in CLIPBOARD is then in PRIMARY and the other way round,
Unicode included, and the selection the text came from stays its owner's (CLIPBOARD stays
spice-vdagent's when the browser's text came through it): no echo takes it over."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vdi.images.desktop import build
from vdi.testing.processes import wait_for

SCRIPT = build.HERE / "files" / "usr" / "local" / "bin" / "vdi-selections"
NEEDED = ("Xvfb", "xclip")


def _has_gtk() -> bool:
    found = subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version('Gtk', "
                            "'3.0'); from gi.repository import Gtk"], capture_output=True)
    return found.returncode == 0


def _xvfb() -> tuple[subprocess.Popen[bytes], int]:
    """An Xvfb on the first free display from :90, once it takes clients."""
    for number in range(90, 140):
        if Path(f"/tmp/.X{number}-lock").exists():
            continue
        server = subprocess.Popen(["Xvfb", f":{number}", "-nolisten", "tcp"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        socket = Path(f"/tmp/.X11-unix/X{number}")
        wait_for(lambda: socket.exists() or server.poll() is not None, 20,  # noqa: B023
                 f"Xvfb :{number} to listen")
        if server.poll() is None:
            return server, number
    raise AssertionError("no free X display from :90 to :139")


@pytest.fixture
def display(tmp_path: Path) -> Iterator[dict[str, str]]:
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing or not _has_gtk():
        pytest.skip(f"needs {', '.join(NEEDED)} and Debian's python3-gi with GTK 3 "
                    "(scripts/test installs them)")
    server, number = _xvfb()
    env = {"DISPLAY": f":{number}", "PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "NO_AT_BRIDGE": "1", "LANG": "C.UTF-8"}
    selections = subprocess.Popen([str(SCRIPT)], env=env)
    try:
        yield env
    finally:
        selections.terminate()
        selections.wait(10)
        server.terminate()
        server.wait(10)


def put(env: dict[str, str], selection: str, text: str) -> bool:
    """``text`` in ``selection``, owned by xclip (which serves it in the background)."""
    subprocess.run(["xclip", "-selection", selection, "-i"], input=text.encode(), env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True


def read(env: dict[str, str], selection: str, target: str = "UTF8_STRING") -> str:
    done = subprocess.run(["xclip", "-selection", selection, "-o", "-t", target],
                          capture_output=True, env=env, timeout=10, check=False)
    return done.stdout.decode(errors="replace")


def test_clipboard_and_primary_follow_each_other(display):
    time.sleep(0.5)
    text = "Grüße aus dem Browser: 5 € ✓ 日本語"
    wait_for(lambda: put(display, "clipboard", text) and read(display, "primary") == text, 30,
             "PRIMARY to follow CLIPBOARD (the script may still be starting)", every=1)
    assert read(display, "clipboard", "TARGETS").split() == ["TARGETS", "UTF8_STRING"], \
        "CLIPBOARD still the program's that set it (xclip's targets, not GTK's)"
    assert "COMPOUND_TEXT" in read(display, "primary", "TARGETS").split(), "PRIMARY is GTK's"

    selected = "selected in xterm"
    put(display, "primary", selected)
    wait_for(lambda: read(display, "clipboard") == selected, 10, "CLIPBOARD to follow PRIMARY")
    assert read(display, "primary", "TARGETS").split() == ["TARGETS", "UTF8_STRING"]

    put(display, "clipboard", text)  # the same text again, from a new owner: PRIMARY too
    wait_for(lambda: read(display, "primary") == text, 10, "PRIMARY to follow again")
