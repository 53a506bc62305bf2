"""The desktop state machine. Every status change is a compare-and-set UPDATE.

A user action claims a desktop by moving it from one of the allowed states to a transitional
state; the task that does the work moves it on to a final state. Each move is
``UPDATE desktop SET status = new WHERE id = ? AND status IN (...)`` and succeeds only if it
touched exactly one row, so a double click or a duplicate task delivery changes nothing.
The states of each action come from its one definition in ``vdi.actions``.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from vdi import actions
from vdi.choices import DesktopStatus as S
from vdi.live import events as live
from vdi.models import DeletedDesktop, Desktop

# Where no guest of the desktop runs any more (a stop, a failure): its agent's facts go.
GUEST_GONE = frozenset({S.STOPPED, S.ERROR})


class TransitionRefused(Exception):
    """The desktop is not in a state that allows the action."""

    def __init__(self, desktop: Desktop, action: str) -> None:
        super().__init__(
            f"Can't {action} desktop {desktop}: it is {desktop.get_status_display()}."
        )
        self.action = action
        self.status = desktop.status


def compare_and_set(desktop_id: int, old: set[S] | frozenset[S], new: S, error: str = "",
                    detail: str = "") -> bool:
    """Move the desktop from any of ``old`` to ``new``; True if exactly one row changed.

    ``error`` is what the user reads; ``detail`` what operators read (the raw cause).
    """
    now = timezone.now()
    # What the guest agent said (who is signed in...) is not true of a guest that stopped.
    forget: dict[str, object] = {"guest_facts": {}} if new in GUEST_GONE else {}
    changed = Desktop.objects.filter(Q(pk=desktop_id) & Q(status__in=old)).update(
        status=new, last_error=error, error_detail=detail, status_changed_at=now, updated_at=now,
        **forget,
    )
    if changed == 1:
        live.desktop_changed(desktop_id)
    return changed == 1


def claim(desktop: Desktop, action: str, only_from: str | None = None) -> None:
    """Move ``desktop`` into the transitional state of ``action`` or raise TransitionRefused;
    ``only_from`` narrows the states it may come from to that one."""
    spec = actions.get(action)
    allowed = spec.allowed_from & {S(only_from)} if only_from is not None else spec.allowed_from
    if not compare_and_set(desktop.pk, allowed, spec.claims):
        desktop.refresh_from_db(fields=["status"])
        raise TransitionRefused(desktop, action)
    desktop.refresh_from_db(fields=["status", "last_error", "error_detail", "status_changed_at",
                                    "updated_at"])


def allowed_actions(status: str) -> list[str]:
    """The requestable actions whose states include ``status``."""
    return [a.name for a in actions.REQUESTABLE if status in a.allowed_from]


def succeed(desktop_id: int, action: str, to: S | None = None) -> bool:
    """The action's end state, or ``to`` for actions that end where they began or where
    their step says (``returns``, ``ends_as_step_says``)."""
    spec = actions.get(action)
    if to is not None and (spec.returns or spec.ends_as_step_says):
        return compare_and_set(desktop_id, {spec.claims}, to)
    if spec.succeeds_to is None:
        return archive(desktop_id, spec.claims)
    return compare_and_set(desktop_id, {spec.claims}, spec.succeeds_to)


def archive(desktop_id: int, status: S) -> bool:
    """The final move of a deleted desktop: its row, if still in ``status``, becomes a
    ``DeletedDesktop`` in words and leaves the table, so it pins no pool, host or version."""
    with transaction.atomic():
        rows = Desktop.objects.filter(pk=desktop_id, status=status).select_related(
            "pool", "host", "image_version__image", "owner", "install_media")
        if connection.vendor == "postgresql":
            rows = rows.select_for_update(of=("self",))
        desktop = rows.first()
        if desktop is None:
            return False
        live.desktop_changed(desktop_id)  # its audience, while the row is there to say it
        DeletedDesktop.objects.create(
            desktop_id=desktop.pk, name=str(desktop), domain_name=desktop.domain_name,
            pool_name=desktop.pool.name if desktop.pool else "", host_name=desktop.host.name,
            image_version=str(desktop.image_version or f"installing {desktop.install_media}"),
            owner_name=desktop.owner.get_username() if desktop.owner else "",
            created_at=desktop.created_at)
        desktop.delete()
    return True


def fail(desktop_id: int, action: str, error: str, detail: str = "",
         origin: S | None = None) -> bool:
    """The action's failure state (the state it began in, for actions that return)."""
    spec = actions.get(action)
    to = origin if spec.returns and origin is not None else spec.fails_to
    return compare_and_set(desktop_id, {spec.claims}, to, error=error[:4000],
                           detail=detail[:4000])
