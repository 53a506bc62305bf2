"""The last failure of a kind of work on a desktop, as that work's page shows it.

A desktop's snapshots part (take, delete, revert) and its backups part (back up, restore) show
the last failed operation of their work in the words written for the person who asked (the
Operation's ``error``; its ``detail``, the raw cause, only to those who hold the work's
permission), until a later operation of the same kind succeeds or someone who may do that
work dismisses it. A dismissal is kept on the failed Operation (``params["dismissed_by"]``) and
audited; the dashboard's failed operations still list it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from vdi import actions
from vdi.actions import DesktopAction
from vdi.choices import OperationStatus
from vdi.live import events as live
from vdi.models import Desktop, Operation
from vdi.services import access, audit
from vdi.services.access import Standing, User
from vdi.services.errors import AccessDenied

SNAPSHOT_WORK = (actions.SNAPSHOT, actions.DELETE_SNAPSHOT, actions.REVERT)
BACKUP_WORK = (actions.BACKUP, actions.RESTORE)
DISMISSED = "dismissed_by"
RECENT = 50  # finished operations of the work looked at, newest first


@dataclass(frozen=True)
class Failure:
    operation: Operation
    label: str  # what was asked, in words ("Take a snapshot")
    detail: str  # the raw cause, for those who hold the work's permission; "" for others


def last_failure(user: User, desktop: Desktop, work: tuple[DesktopAction, ...]) -> Failure | None:
    """The newest failure among ``work``'s kinds on ``desktop`` that no later operation of its
    kind undid by succeeding and nobody dismissed, or None. One query."""
    newest: dict[str, Operation] = {}
    finished = (Operation.objects.filter(desktop=desktop, kind__in=[a.name for a in work],
                                         finished_at__isnull=False)
                .order_by("-finished_at", "-pk")[:RECENT])
    for operation in finished:
        newest.setdefault(operation.kind, operation)
    failed = [op for op in newest.values()
              if op.status == OperationStatus.FAILED and DISMISSED not in op.params]
    if not failed:
        return None
    operation = max(failed, key=lambda op: (op.finished_at, op.pk))
    action = actions.get(operation.kind)
    privileged = access.standing(user, action, desktop) is Standing.PRIVILEGED
    return Failure(operation, action.label, operation.detail if privileged else "")


def dismiss(user: User, desktop: Desktop, operation_id: int, work: tuple[DesktopAction, ...],
            source_address: str | None = None) -> Operation:
    """Put the failure away from ``desktop``'s page of ``work``. AccessDenied if it is not a
    failure of that work on that desktop, or ``user`` may not do that work there."""
    operation = Operation.objects.filter(
        pk=operation_id, desktop=desktop, status=OperationStatus.FAILED,
        kind__in=[a.name for a in work]).first()
    if operation is None or not access.can_see_desktop(user, desktop) or \
            access.standing(user, actions.get(operation.kind), desktop) is Standing.NONE:
        raise AccessDenied("No such failure.")
    with transaction.atomic():
        operation.params = {**operation.params, DISMISSED: user.pk}
        operation.save(update_fields=["params"])
        audit.record(user, "operation.dismiss", desktop, source_address,
                     operation=operation.pk, kind=operation.kind)
        live.desktop_changed(desktop.pk)  # the desktop's other open pages put it away too
    return operation
