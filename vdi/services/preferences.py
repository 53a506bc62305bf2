"""A user's own choices, and their effect on the user's desktops: the keyboard layout goes to
each running desktop's session (through the worker and the guest agent) when the user
changes it and whenever the user opens a console; the user's open consoles show the new
layout's name."""

from __future__ import annotations

import logging

from django.db import transaction
from kombu.exceptions import OperationalError as KombuOperationalError

from vdi import task_names
from vdi.choices import DesktopStatus, KeyboardLayout, Readiness
from vdi.console.notify import keyboard_changed
from vdi.models import Desktop, Preferences
from vdi.services import audit, dispatch
from vdi.services.access import Account, User

log = logging.getLogger(__name__)


def preferences_of(user: User) -> Preferences:
    """The user's preferences (the defaults, unsaved, for a user who never chose)."""
    if not isinstance(user, Account):
        return Preferences()
    found = Preferences.objects.filter(user=user).first()
    return found if found is not None else Preferences(user=user)


def keyboard_layout(user: User) -> KeyboardLayout:
    return KeyboardLayout(preferences_of(user).keyboard_layout)


def set_keyboard_layout(user: Account, layout: KeyboardLayout,
                        source_address: str | None = None) -> None:
    """Record the user's layout and apply it to their running desktops."""
    preferences = preferences_of(user)
    before = preferences.keyboard_layout
    preferences.keyboard_layout = layout
    preferences.save()
    audit.record(user, "preferences.keyboard", user, source_address,
                 before=before, after=str(layout))
    for desktop in Desktop.objects.filter(owner=user, status=DesktopStatus.RUNNING):
        apply_keyboard_layout(desktop, layout)
    user_id, label = user.pk, str(layout.label)
    transaction.on_commit(lambda: keyboard_changed(user_id, label))


def has_session_agent(desktop: Desktop) -> bool:
    """A graphical session the guest agent can reach (the Debian desktop image's kind)."""
    version = desktop.image_version
    return bool(version is not None and version.session_process
                and version.readiness == Readiness.AGENT)


def apply_keyboard_layout(desktop: Desktop, layout: KeyboardLayout) -> None:
    """Ask the desktop's worker to set ``layout`` in its session (after the transaction);
    a desktop without a session agent keeps its own (the page's "Type it" serves those)."""
    if not has_session_agent(desktop):
        return
    queue = desktop.host.queue

    def send() -> None:
        try:
            dispatch.send(task_names.APPLY_KEYBOARD_LAYOUT, (desktop.pk, str(layout)), queue)
        except (KombuOperationalError, ConnectionError, OSError) as exc:
            log.warning("keyboard layout for desktop %s not sent: %s", desktop.pk, exc)

    transaction.on_commit(send)


def keyboard_for_console(desktop_id: int, user: User) -> None:
    """Its owner opened the desktop's console: their layout, in case it changed inside."""
    desktop = Desktop.objects.select_related("host", "image_version").filter(pk=desktop_id).first()
    if desktop is not None and desktop.owner_id == getattr(user, "pk", None):
        apply_keyboard_layout(desktop, keyboard_layout(user))
