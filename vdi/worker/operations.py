"""Recording an Operation's progress from the worker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from vdi.choices import DesktopStatus, OperationStatus
from vdi.live import events as live
from vdi.models import Operation


def lease() -> timedelta:
    """A delivery that held an operation this long is presumed dead (VDI_OPERATION_LEASE)."""
    return timedelta(seconds=settings.OPERATION_LEASE)


def claim(operation_id: int) -> bool:
    """Take the operation for this delivery; False if another live delivery has it.

    A compare-and-set: two copies of the same task message running at once (a duplicate
    delivery) cannot both act. A claim older than the lease (its worker was killed) can be
    taken over by the redelivered message.
    """
    now = timezone.now()
    free = Q(status=OperationStatus.QUEUED) | Q(status=OperationStatus.RUNNING,
                                                 started_at__lt=now - lease())
    taken = Operation.objects.filter(free, pk=operation_id).update(
        status=OperationStatus.RUNNING, started_at=now, attempts=F("attempts") + 1, error="",
    )
    return taken == 1


TRANSIENT_ATTEMPTS = 5  # tries for an error that may pass (a busy daemon), host reachable


def may_retry(operation_id: int, host_unreachable: bool) -> bool:
    """Whether to try again: while its host is unreachable, within the outage window
    (VDI_HOST_OUTAGE_WINDOW) since the operation began to wait; otherwise a few times."""
    row = Operation.objects.filter(pk=operation_id).values("waiting_since", "attempts").first()
    if row is None:
        return False
    if not host_unreachable:
        return bool(row["attempts"] < TRANSIENT_ATTEMPTS)
    first = row["waiting_since"]
    return first is None or timezone.now() - first < timedelta(
        seconds=settings.HOST_OUTAGE_WINDOW)


def wait(operation_id: int, words: str, detail: str) -> None:
    """Hand the operation back for a retry of the same message, saying why it waits."""
    Operation.objects.filter(pk=operation_id).update(
        status=OperationStatus.QUEUED, step=words[:200], detail=detail,
        waiting_since=Coalesce(F("waiting_since"), Value(timezone.now(),
                                                         output_field=DateTimeField())))


def progress(operation_id: int, percent: int, step: str) -> None:
    Operation.objects.filter(pk=operation_id).update(progress=percent, step=step[:200])
    _tell(operation_id)


def _tell(operation_id: int) -> None:
    """The pages showing the operation's desktop fetch what they show again."""
    desktop_id = Operation.objects.filter(pk=operation_id).values_list("desktop_id",
                                                                       flat=True).first()
    if desktop_id is not None:
        live.desktop_changed(desktop_id)


def finish(operation_id: int, error: str = "", step: str = "", detail: str = "") -> None:
    """How it ended; pages showing its desktop hear of it (a desktop's pages show the last
    failure of their kind of work, which ends after the desktop's state has moved on)."""
    status = OperationStatus.FAILED if error else OperationStatus.SUCCEEDED
    fields: dict[str, object] = {"status": status, "finished_at": timezone.now(), "error": error}
    if not error:
        fields["progress"] = 100
    if step:
        fields["step"] = step[:200]
    if detail:
        fields["detail"] = detail
    Operation.objects.filter(pk=operation_id).update(**fields)
    _tell(operation_id)


def origin(operation_id: int) -> DesktopStatus | None:
    """The state its desktop was in when asked (actions that go back to it)."""
    params = Operation.objects.filter(pk=operation_id).values_list("params", flat=True).first()
    value = (params or {}).get("origin")
    return DesktopStatus(value) if value in DesktopStatus.values else None


def params(operation_id: int) -> dict[str, Any]:
    found = Operation.objects.filter(pk=operation_id).values_list("params", flat=True).first()
    return dict(found or {})


def params_update(operation_id: int, **values: Any) -> None:
    """Note what the step made (a backup's row), for its failure cleanup."""
    operation = Operation.objects.get(pk=operation_id)
    operation.params = {**operation.params, **values}
    operation.save(update_fields=["params"])
