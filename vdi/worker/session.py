"""Settings applied inside a running desktop's graphical session, through its guest agent."""

from __future__ import annotations

import logging

from vdi.choices import DesktopStatus, KeyboardLayout
from vdi.hypervisor import HypervisorError
from vdi.models import Desktop
from vdi.worker.hosts import driver_for

log = logging.getLogger(__name__)
DISPLAY = ":0"  # the session the desktop image starts on tty1


def session_user(desktop: Desktop) -> str | None:
    """The user signed in to the desktop's session, as its agent last said."""
    users = (desktop.guest_facts or {}).get("users") or []
    return str(users[0]) if users else None


def run_in_session(desktop: Desktop, program: str, *args: str) -> str | None:
    """Run ``program`` as the session's user on its display; None when it ran, else why not."""
    user = session_user(desktop)
    if user is None:
        return "nobody is signed in to its session yet"
    result = driver_for(desktop.host).agent.run(desktop.domain_name, "/usr/sbin/runuser", [
        "-u", user, "--", "env", f"DISPLAY={DISPLAY}", f"XAUTHORITY=/home/{user}/.Xauthority",
        program, *args])
    if result.exitcode != 0:
        return f"{program} exited with {result.exitcode}: {result.stderr.strip()[:200]}"
    return None


def apply_keyboard_layout(desktop_id: int, layout: str) -> str:
    """Set the session's XKB layout; says what happened (a task's result, and the log)."""
    chosen = KeyboardLayout(layout)  # never passes anything else to the guest
    desktop = Desktop.objects.select_related("host").filter(pk=desktop_id).first()
    if desktop is None or desktop.status != DesktopStatus.RUNNING:
        return "not running"
    try:
        problem = run_in_session(desktop, "setxkbmap", "-layout", chosen.value)
    except HypervisorError as exc:
        problem = str(exc)
    if problem:
        log.warning("keyboard layout %s for %s not applied: %s", chosen, desktop, problem)
        return f"not applied: {problem}"
    return f"layout {chosen.value}"
