"""Typing into a guest with ``virsh send-key`` (Linux key codes) and reading its serial log;
a tiny desktop claimed and booted, files written on it and looked for; a shell script run in
a graphical desktop's session through its guest agent."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any

from django.conf import settings

from tests.support import wait_status
from vdi.choices import DesktopStatus
from vdi.hypervisor import get_driver
from vdi.images.tiny import READY_MARKER
from vdi.models import Desktop, Pool
from vdi.services.claims import claim_desktop
from vdi.testing.processes import wait_for

_PLAIN = {" ": "KEY_SPACE", "\n": "KEY_ENTER", "-": "KEY_MINUS", "=": "KEY_EQUAL",
          "/": "KEY_SLASH", ".": "KEY_DOT", ";": "KEY_SEMICOLON", ",": "KEY_COMMA",
          "'": "KEY_APOSTROPHE"}
_SHIFTED = {">": "KEY_DOT", "<": "KEY_COMMA", "|": "KEY_BACKSLASH", "&": "KEY_7",
            "_": "KEY_MINUS", ":": "KEY_SEMICOLON", '"': "KEY_APOSTROPHE"}


def _keys(char: str) -> list[str]:
    if char.isdigit():
        return [f"KEY_{char}"]
    if char.isalpha():
        return (["KEY_LEFTSHIFT"] if char.isupper() else []) + [f"KEY_{char.upper()}"]
    if char in _PLAIN:
        return [_PLAIN[char]]
    return ["KEY_LEFTSHIFT", _SHIFTED[char]]


def type_text(domain: str, text: str) -> None:
    for char in text:
        subprocess.run(["virsh", "-c", settings.LIBVIRT_URI, "send-key", domain,
                        "--codeset", "linux", *_keys(char)], check=True, capture_output=True)


def serial(path: str | Path) -> str:
    path = Path(path)
    return path.read_text(errors="replace") if path.exists() else ""


def wait_serial(path: str | Path, text: str, timeout: float = 120, count: int = 1) -> None:
    wait_for(lambda: serial(path).count(text) >= count, timeout,
             f"{text!r} x{count} on the serial log {path}")


def ask(desktop: Desktop, command: str, answer: str) -> None:
    """Type ``command`` on the guest's console; wait for ``answer`` on its serial port."""
    type_text(desktop.domain_name, command + "\n")
    wait_serial(desktop.serial_log_path, answer, timeout=60)


def booted(owner: Any, pool: Pool) -> Desktop:
    """A desktop of the tiny ``pool`` claimed for ``owner``, up to its ready marker (and, in a
    persistent pool, its data disk mounted)."""
    desktop = claim_desktop(owner, pool)
    wait_status(desktop, DesktopStatus.RUNNING)
    wait_serial(desktop.serial_log_path, "VDI-DATA-MOUNTED")
    wait_serial(desktop.serial_log_path, READY_MARKER)
    return desktop


def write(desktop: Desktop, name: str) -> None:
    """A file ``name`` on the system disk (/root) and on the data disk (/data)."""
    mark = secrets.token_hex(3)
    ask(desktop, f"echo {name} > /root/{name}; echo {name} > /data/{name}; sync; "
                 f"echo W{mark} > /dev/ttyS0", f"W{mark}")


def present(desktop: Desktop, names: list[str]) -> dict[str, tuple[bool, bool]]:
    """Which of the files exist now: name -> (on the system disk, on the data disk)."""
    probe = secrets.token_hex(3)
    checks = "; ".join(f"test -e /root/{n} && echo R{n}{probe} > /dev/ttyS0; "
                       f"test -e /data/{n} && echo D{n}{probe} > /dev/ttyS0" for n in names)
    ask(desktop, f"{checks}; echo P{probe} > /dev/ttyS0", f"P{probe}")
    log = serial(desktop.serial_log_path)
    return {n: (f"R{n}{probe}" in log, f"D{n}{probe}" in log) for n in names}


def in_session(domain: str, script: str, *args: str, uri: str | None = None) -> str:
    """Run a shell script in the desktop user's X session (the Debian desktop image's
    ``user``), through the guest agent; what it printed."""
    agent = get_driver(uri or settings.LIBVIRT_URI).agent
    result = agent.run(domain, "/usr/sbin/runuser", [
        "-u", "user", "--", "env", "DISPLAY=:0", "XAUTHORITY=/home/user/.Xauthority",
        "sh", "-c", script, "sh", *args])
    assert result.exitcode == 0, result.stderr
    return str(result.stdout)
