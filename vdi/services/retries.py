"""Trying a failed operation again (the dashboard's Retry): the same request again, through
the same service, with the same rules and the same audit as the first time.

What a retry is, by the operation's kind:

- **provision**: a failed provisioning removed what it had made and left the desktop in error;
  the same desktop (its pool, owner and the request's parameters) is provisioned again. It
  needs the permission to reset the desktop: it makes it afresh from its image, as a reset
  does.
- **start, stop, restart, reset, release, delete**: the action is asked for again, as the
  desktop list asks it (``request_action``): the action's permission, its rules, and the
  state the desktop is in now (a stop that failed left the desktop in error, where only
  start, reset, release and delete apply: the refusal says so).
- snapshots, reverts, backups, restores and publishing name what they act on (a snapshot, a
  backup, an image's name): they are asked again from their own pages; image builds and
  imports from the images' admin.

A pool's upkeep also provisions again, by itself, a desktop whose provisioning failed
(``retry_failed_provisions``): a few times, further apart each time.

Never retried: an operation that did not fail, one whose desktop is gone, one that a later
operation on the same desktop superseded (its failure is history).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from vdi import actions
from vdi.actions import DesktopAction
from vdi.choices import DesktopStatus, ImageOperation, OperationStatus
from vdi.models import Desktop, Operation
from vdi.services import access, desktops
from vdi.services.access import User
from vdi.services.errors import AccessDenied, ServiceError
from vdi.state import TransitionRefused

ASKED_ELSEWHERE = {
    "publish": "A publish names the image it makes: publish it again from the desktop's "
               "Publish page.",
    "snapshot": "It names a snapshot: take it again from the desktop's Snapshots page.",
    "unsnapshot": "It names a snapshot: delete it again from the desktop's Snapshots page.",
    "revert": "It names a snapshot: revert again from the desktop's Snapshots page.",
    "backup": "Back the desktop up again from its Backups page.",
    "restore": "It names a backup: restore again from the desktop's Backups page.",
    ImageOperation.BUILD: "Image builds are started again from the images' admin.",
    ImageOperation.IMPORT: "Image imports are started again from the images' admin.",
}


@dataclass(frozen=True)
class Refusal:
    """Why an operation can't be retried. ``not_theirs``: the person lacks the permission (the
    page then shows neither a button nor a reason)."""

    reason: str
    not_theirs: bool = False


def _action(operation: Operation) -> DesktopAction | None:
    """The action a retry asks for, or None when it is not retried here."""
    if operation.kind == actions.PROVISION.name:
        return actions.PROVISION
    action = actions.ACTIONS.get(operation.kind)
    return action if action in actions.REQUESTABLE else None


def _permission(action: DesktopAction) -> str:
    """A provisioning again makes the desktop afresh from its image: a reset's permission."""
    return actions.RESET.permission if action is actions.PROVISION else action.permission


def refusal(user: User, operation: Operation, superseded: bool) -> Refusal | None:
    """Why ``user`` can't retry ``operation`` now, or None when they can. ``superseded``: a
    later operation ran on its desktop."""
    action = _action(operation)
    desktop = operation.desktop
    if action is not None and desktop is not None and not access.holds(
            user, _permission(action), desktop):
        return Refusal(f"You may not {action.name} this desktop.", not_theirs=True)
    if operation.status != OperationStatus.FAILED:
        return Refusal(f"Only a failed operation is retried; this one is "
                       f"{operation.get_status_display()}.")
    if action is None:
        return Refusal(ASKED_ELSEWHERE.get(operation.kind,
                                           f"A {operation.kind} is not retried from here."))
    if desktop is None:
        return Refusal("Its desktop no longer exists.")
    if superseded:
        return Refusal("A later operation ran on this desktop since; retry that one if it "
                       "failed.")
    if desktop.status not in action.allowed_from:
        return Refusal(_wrong_state(user, action, desktop))
    reason = action.refusal(desktop, as_owner=False)
    return Refusal(reason) if reason is not None else None


def _wrong_state(user: User, action: DesktopAction, desktop: Desktop) -> str:
    words = f"The desktop is {desktop.get_status_display()} now, so a {action.name} can't start."
    if action is actions.PROVISION:
        return words
    offers = [offer.label for offer in desktops.available_actions(user, desktop)]
    return f"{words} What it can do now: {', '.join(offers)}." if offers else words


def retry(user: User, operation_id: int, source_address: str | None = None) -> Operation:
    """Ask for the failed operation again; the new Operation. Raises AccessDenied (the
    operation is not one the user sees, or they may not retry it), ServiceError (why it can't
    be retried) or TransitionRefused (the desktop's state changed meanwhile)."""
    visible = Q(desktop__in=access.visible_desktops(user).values("pk"))
    operation = (Operation.objects.filter(visible, pk=operation_id)
                 .select_related("desktop__pool", "desktop__host").first())
    if operation is None:
        raise AccessDenied("No such operation.")
    superseded = operation.desktop_id is not None and Operation.objects.filter(
        desktop_id=operation.desktop_id, pk__gt=operation.pk).exists()
    found = refusal(user, operation, superseded)
    if found is not None:
        raise (AccessDenied if found.not_theirs else ServiceError)(found.reason)
    desktop, action = operation.desktop, _action(operation)
    assert desktop is not None and action is not None
    if action is actions.PROVISION:
        return desktops.perform(desktop, action.name, user, source_address,
                                params=operation.params, retry_of=operation.pk)
    return desktops.request_action(user, desktop, action.name, source_address,
                                   retry_of=operation.pk)



AUTO_PROVISION_RETRIES = 3  # a pool's upkeep tries a failed provisioning again this often
AUTO_RETRY_AFTER = 60  # seconds after the first failure; doubled after each later one


def retry_failed_provisions(pool_id: int, now: datetime) -> list[Operation]:
    """The pool's upkeep: a desktop whose provisioning failed (its cause may have gone away:
    a host's libvirt back, an image finished building, a permission fixed) is provisioned
    again, after 1, 2 and 4 minutes, then left in error for a person. The new Operations."""
    retried = []
    for desktop in Desktop.objects.filter(pool_id=pool_id, status=DesktopStatus.ERROR):
        latest = desktop.operations.order_by("-pk").first()
        if latest is None or latest.kind != actions.PROVISION.name or \
                latest.status != OperationStatus.FAILED or latest.finished_at is None:
            continue
        failures = desktop.operations.filter(kind=actions.PROVISION.name,
                                             status=OperationStatus.FAILED).count()
        wait = timedelta(seconds=AUTO_RETRY_AFTER * 2 ** (failures - 1))
        if failures > AUTO_PROVISION_RETRIES or latest.finished_at + wait > now:
            continue
        try:
            retried.append(desktops.perform(
                desktop, actions.PROVISION.name, None, params=latest.params,
                retry_of=latest.pk, reason=f"pool upkeep: try {failures + 1} after "
                                           f"'{latest.error}'"))
        except (ServiceError, TransitionRefused):
            continue  # its state moved on meanwhile (a person acted): nothing to retry
    return retried
