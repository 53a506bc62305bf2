"""Typing into a guest with ``virsh send-key`` (Linux key codes) and reading its serial log."""

from __future__ import annotations

import subprocess
from pathlib import Path

from django.conf import settings

from vdi.models import Desktop
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
