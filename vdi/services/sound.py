"""The SPICE console's "Test sound": the desktop plays a short tone, which reaches the
browser through SPICE's sound channel, so a user can hear that sound works. The desktop's
worker plays it through the guest agent (``vdi.worker.sound``); VNC consoles carry no sound."""

from __future__ import annotations

import logging

from kombu.exceptions import OperationalError as KombuOperationalError

from vdi import task_names
from vdi.choices import DesktopStatus, DisplayProtocol
from vdi.models import Desktop
from vdi.services import access, dispatch
from vdi.services.access import ConsoleMode, User
from vdi.services.errors import AccessDenied, ServiceError
from vdi.services.preferences import has_session_agent

log = logging.getLogger(__name__)


def check_may_test_sound(user: User, desktop: Desktop) -> None:
    if access.console_mode(user, desktop) is not ConsoleMode.INTERACTIVE:
        raise AccessDenied("You may not use this desktop.")
    if desktop.display_protocol != DisplayProtocol.SPICE:
        raise ServiceError("only a SPICE console carries the desktop's sound")
    if not has_session_agent(desktop):
        raise ServiceError("this desktop has no guest agent to play a tone")
    if desktop.status != DesktopStatus.RUNNING:
        raise ServiceError(f"the desktop is {desktop.status}: start it first")


def request_test_tone(user: User, desktop: Desktop) -> None:
    """Have the desktop's worker play the tone; ServiceError when it can't be asked now."""
    check_may_test_sound(user, desktop)
    try:
        dispatch.send(task_names.PLAY_TEST_TONE, (desktop.pk,), desktop.host.queue)
    except (KombuOperationalError, ConnectionError, OSError) as exc:
        log.error("could not queue the test tone for %s: %s", desktop, exc)
        raise ServiceError("the portal could not reach the desktop's worker; try again") \
            from None


