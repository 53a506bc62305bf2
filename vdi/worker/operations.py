"""Recording an Operation's progress from the worker."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import F, Q
from django.utils import timezone

from vdi.choices import OperationStatus
from vdi.models import Operation

LEASE = timedelta(minutes=10)  # a delivery that held an operation this long is presumed dead


def claim(operation_id: int) -> bool:
    """Take the operation for this delivery; False if another live delivery has it.

    A compare-and-set: two copies of the same task message running at once (a duplicate
    delivery) cannot both act. A claim older than ``LEASE`` (its worker was killed) can be
    taken over by the redelivered message.
    """
    now = timezone.now()
    free = Q(status=OperationStatus.QUEUED) | Q(status=OperationStatus.RUNNING,
                                                 started_at__lt=now - LEASE)
    taken = Operation.objects.filter(free, pk=operation_id).update(
        status=OperationStatus.RUNNING, started_at=now, attempts=F("attempts") + 1, error="",
    )
    return taken == 1


def requeue(operation_id: int, step: str) -> None:
    """Hand the operation back for the retry of the same message."""
    Operation.objects.filter(pk=operation_id).update(status=OperationStatus.QUEUED,
                                                     step=step[:200])


def progress(operation_id: int, percent: int, step: str) -> None:
    Operation.objects.filter(pk=operation_id).update(progress=percent, step=step[:200])


def finish(operation_id: int, error: str = "", step: str = "") -> None:
    status = OperationStatus.FAILED if error else OperationStatus.SUCCEEDED
    fields = {"status": status, "finished_at": timezone.now(), "error": error}
    if not error:
        fields["progress"] = 100
    if step:
        fields["step"] = step[:200]
    Operation.objects.filter(pk=operation_id).update(**fields)
