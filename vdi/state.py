"""The desktop state machine. Every status change is a compare-and-set UPDATE.

A user action claims a desktop by moving it from one of the allowed states to a transitional
state; the task that does the work moves it on to a final state. Each move is
``UPDATE desktop SET status = new WHERE id = ? AND status IN (...)`` and succeeds only if it
touched exactly one row, so a double click or a duplicate task delivery changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from vdi.choices import DesktopStatus as S
from vdi.models import Desktop


@dataclass(frozen=True)
class Action:
    name: str
    allowed_from: frozenset[S]
    claims: S
    succeeds_to: S


ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        Action("start", frozenset({S.STOPPED, S.ERROR}), S.STARTING, S.RUNNING),
        Action("stop", frozenset({S.RUNNING}), S.STOPPING, S.STOPPED),
        Action("restart", frozenset({S.RUNNING}), S.RESTARTING, S.RUNNING),
        Action("delete", frozenset({S.RUNNING, S.STOPPED, S.ERROR}), S.DELETING, S.DELETED),
        Action("reset", frozenset({S.RUNNING, S.STOPPED, S.ERROR}), S.RESETTING, S.RUNNING),
        Action("release", frozenset({S.RUNNING, S.STOPPED, S.ERROR}), S.RESETTING, S.RUNNING),
        Action("provision", frozenset(), S.PROVISIONING, S.RUNNING),
    )
}


class TransitionRefused(Exception):
    """The desktop is not in a state that allows the action."""

    def __init__(self, desktop: Desktop, action: str) -> None:
        super().__init__(
            f"Can't {action} desktop {desktop}: it is {desktop.get_status_display()}."
        )
        self.action = action
        self.status = desktop.status


def compare_and_set(desktop_id: int, old: set[S] | frozenset[S], new: S, error: str = "") -> bool:
    """Move the desktop from any of ``old`` to ``new``; True if exactly one row changed."""
    changed = Desktop.objects.filter(Q(pk=desktop_id) & Q(status__in=old)).update(
        status=new, last_error=error, status_changed_at=timezone.now(), updated_at=timezone.now()
    )
    return changed == 1


def claim(desktop: Desktop, action: str) -> None:
    """Move ``desktop`` into the transitional state of ``action`` or raise TransitionRefused."""
    spec = ACTIONS[action]
    if not compare_and_set(desktop.pk, spec.allowed_from, spec.claims):
        desktop.refresh_from_db(fields=["status"])
        raise TransitionRefused(desktop, action)
    desktop.refresh_from_db(fields=["status", "last_error", "status_changed_at", "updated_at"])


def allowed_actions(status: str) -> list[str]:
    """The user actions the UI may offer for a desktop in ``status``."""
    return [name for name, spec in ACTIONS.items() if status in spec.allowed_from]


def succeed(desktop_id: int, action: str) -> bool:
    spec = ACTIONS[action]
    return compare_and_set(desktop_id, {spec.claims}, spec.succeeds_to)


def fail(desktop_id: int, action: str, error: str) -> bool:
    spec = ACTIONS[action]
    return compare_and_set(desktop_id, {spec.claims}, S.ERROR, error=error[:4000])
